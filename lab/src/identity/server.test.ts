import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { type IdentityServer, parseListenSpec, startIdentityServer } from './server.js';

let server: IdentityServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function tcpExchange(port: number, send: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    const expected = `backend=b7\n${send.join('')}`.length;
    s.on('data', (d) => {
      got += d.toString();
      if (got.length === 'backend=b7\n'.length) for (const m of send) s.write(m);
      if (got.length >= expected) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error(`timeout, got ${JSON.stringify(got)}`)), 5_000).unref();
  });
}

describe('lab identity server - the contract', () => {
  test('TCP: first the line backend=<name>, then an echo of everything received', async () => {
    server = await startIdentityServer({ name: 'b7', listen: [{ protocol: 'tcp', address: '127.0.0.1', port: 0 }] });
    const port = server.bound[0]?.port ?? 0;
    expect(await tcpExchange(port, ['hello\n', '2\n', 'x'])).toBe('backend=b7\nhello\n2\nx');
  });

  test('UDP: each datagram is answered with "backend=<name> " + payload', async () => {
    server = await startIdentityServer({ name: 'b7', listen: [{ protocol: 'udp', address: '127.0.0.1', port: 0 }] });
    const port = server.bound[0]?.port ?? 0;
    const client = createSocket('udp4');
    try {
      const answers: string[] = [];
      const done = new Promise<void>((resolve) => {
        client.on('message', (m) => {
          answers.push(m.toString());
          if (answers.length === 2) resolve();
        });
      });
      client.send('ping 1', port, '127.0.0.1');
      client.send('ping 2', port, '127.0.0.1');
      await done;
      expect(answers.sort()).toEqual(['backend=b7 ping 1', 'backend=b7 ping 2']);
    } finally {
      client.close();
    }
  });

  test('a port in use is reported naming the address', async () => {
    server = await startIdentityServer({ name: 'a', listen: [{ protocol: 'tcp', address: '127.0.0.1', port: 0 }] });
    const port = server.bound[0]?.port ?? 0;
    await expect(
      startIdentityServer({ name: 'b', listen: [{ protocol: 'tcp', address: '127.0.0.1', port }] }),
    ).rejects.toThrow(`tcp 127.0.0.1:${port}`);
  });

  test.each([
    ['tcp:198.51.100.10:80', { protocol: 'tcp', address: '198.51.100.10', port: 80 }],
    ['udp:[2001:db8::1]:7000', { protocol: 'udp', address: '2001:db8::1', port: 7000 }],
    ['tcp:[::]:80', { protocol: 'tcp', address: '::', port: 80 }],
  ])('listen spec %s', (text, spec) => {
    expect(parseListenSpec(text)).toEqual(spec);
  });

  test.each(['sctp:1.2.3.4:80', 'tcp:1.2.3.4', 'udp:1.2.3.4:70000'])('bad listen spec %s is refused', (text) => {
    expect(() => parseListenSpec(text)).toThrow(LabError);
  });
});
