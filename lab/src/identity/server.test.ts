import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { scriptArgv } from '../runtime/scripts.js';
import {
  IDENTITY_USAGE,
  type IdentityServer,
  parseIdentityArgs,
  parseListenSpec,
  startIdentityServer,
} from './server.js';

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

// The backend image's entrypoint hands its arguments ("$@") to identity/main: main.ts's own example
// (`--listen tcp:::80`) was refused with a LabError stack trace, exit 1, and a misspelt option was ignored.
describe('lab identity server - its arguments', () => {
  test('the documented example: --listen tcp:[::]:80 and a UDP VIP', () => {
    expect(
      parseIdentityArgs(['--name', 'backend1', '--listen', 'tcp:[::]:80', '--listen', 'udp:198.51.100.11:7000']),
    ).toEqual({
      name: 'backend1',
      listen: [
        { protocol: 'tcp', address: '::', port: 80 },
        { protocol: 'udp', address: '198.51.100.11', port: 7000 },
      ],
    });
  });

  test.each([
    [['--name', 'b1', '--lsiten', 'tcp:[::]:80'], 'unknown argument "--lsiten"'],
    [['--name', 'b1', '--listen', 'tcp:[::]:80', 'extra'], 'unknown argument "extra"'],
    [['--name', 'b1', '--listen', 'tcp:::80'], 'listen "tcp:::80" is not PROTO:ADDRESS:PORT'],
    [['--name', 'b1', '--listen'], '--listen needs a value'],
    [['--name'], '--name needs a value'],
    [['--listen', 'tcp:[::]:80'], '--name is required'],
    [['--name', 'b1'], 'at least one --listen is required'],
  ])('%j is refused: %s', (args, message) => {
    expect(() => parseIdentityArgs(args)).toThrow(new LabError('OPTION_INVALID', message));
  });

  test('main: a bad argument is the usage line and the error, exit 2, no stack trace', () => {
    const [node, ...argv] = scriptArgv('identity/main');
    const run = spawnSync(node as string, [...argv, '--name', 'b1', '--listen', 'tcp:::80'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`${IDENTITY_USAGE}\nidentity: listen "tcp:::80" is not PROTO:ADDRESS:PORT\n`);
    expect(run.stdout).toBe('');
  });
});
