/**
 * The backend's agent against the node's own probe (@l4fleet/agent probeMember, type agent) over real loopback
 * sockets: the two sides of the agent check agree on every state.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { probeMember } from '@l4fleet/agent';
import type { HealthCheck } from '@l4fleet/config';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DEFAULT_AGENT_LISTEN,
  DEFAULT_AGENT_PORT,
  listenAddress,
  type Responder,
  startResponder,
} from './responder.js';
import { writeStateFile } from './state-file.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-backend-agent-'));
const stateFile = join(dir, 'state');
const logs: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l));
      done();
    },
  }),
);
let responder: Responder;
let port = 0;

beforeAll(async () => {
  responder = await startResponder({ listen: ['127.0.0.1:0'], stateFile, logger });
  port = Number(responder.addresses[0]?.split(':')[1]);
});
afterAll(async () => {
  await responder.close();
  rmSync(dir, { recursive: true, force: true });
});

const check = (c: Partial<HealthCheck> = {}): HealthCheck => ({
  type: 'agent',
  port,
  intervalMs: 1000,
  timeoutMs: 500,
  rise: 1,
  fall: 1,
  ...c,
});
const probe = (c?: Partial<HealthCheck>) => probeMember({ address: '127.0.0.1', port: 80 }, check(c));

describe('l4fleet backend agent - answering the node probe', () => {
  test('no state file: ready; a state written is what the next probe sees, with its reason', async () => {
    expect(responder.addresses).toEqual([`127.0.0.1:${port}`]);
    expect(await probe()).toMatchObject({ ok: true });
    await writeStateFile(stateFile, { word: 'drain', reason: 'deploying v42' });
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says drain: deploying v42' });
    // A node that sends a payload first (agent-send) gets the same answer.
    expect(await probe({ payload: 'web\n' })).toMatchObject({ ok: false, reason: 'agent says drain: deploying v42' });
    await writeStateFile(stateFile, { word: 'ready' });
    expect(await probe()).toMatchObject({ ok: true });
  });

  test('a file that is not a state: the last good state is still answered, and the problem logged once', async () => {
    await writeStateFile(stateFile, { word: 'maint' });
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says maint' });
    writeFileSync(stateFile, 'ready-ish\n');
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says maint' });
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says maint' });
    const rejected = logs.filter((l) => l.event === 'backendStateRejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({
      answering: 'maint',
      problem: expect.stringContaining('"ready-ish" is not a state'),
    });
    await writeStateFile(stateFile, { word: 'up' });
    expect(await probe()).toMatchObject({ ok: true });
  });

  test.each([
    ['a directory (cannot be read)', (f: string) => mkdirSync(f), 'EISDIR'],
    ['not a state', (f: string) => writeFileSync(f, 'ready-ish\n'), '"ready-ish" is not a state'],
  ])(
    'a state file that is %s at the start: answered down, not ready, and logged with the path',
    async (_n, make, why) => {
      const file = join(dir, `bad-at-start-${logs.length}`);
      make(file);
      const r = await startResponder({ listen: ['127.0.0.1:0'], stateFile: file, logger });
      try {
        const at = Number(r.addresses[0]?.split(':')[1]);
        const got = await probeMember({ address: '127.0.0.1', port: 80 }, check({ port: at }));
        expect(got).toMatchObject({ ok: false, reason: expect.stringContaining('agent says down: state file') });
        const rejected = logs.filter((l) => l.event === 'backendStateRejected' && String(l.problem).includes(file));
        expect(rejected[0]).toMatchObject({
          problem: expect.stringContaining(why),
          answering: expect.stringMatching(/^down # /),
        });
        // A good state written later is answered at the next probe.
        rmSync(file, { recursive: true });
        await writeStateFile(file, { word: 'ready' });
        expect(await probeMember({ address: '127.0.0.1', port: 80 }, check({ port: at }))).toMatchObject({ ok: true });
      } finally {
        await r.close();
      }
    },
  );

  test('the default listen address answers IPv4 and IPv6 probes (a member with an IPv6 address is not refused)', async () => {
    expect(DEFAULT_AGENT_LISTEN).toBe(`[::]:${DEFAULT_AGENT_PORT}`);
    const { host } = listenAddress(DEFAULT_AGENT_LISTEN);
    const r = await startResponder({ listen: [`[${host}]:0`], stateFile, logger });
    try {
      const at = Number(r.addresses[0]?.split(':').at(-1));
      await writeStateFile(stateFile, { word: 'drain', reason: 'v6' });
      for (const address of ['::1', '127.0.0.1']) {
        const got = await probeMember({ address, port: 80 }, check({ port: at }));
        expect(got, address).toMatchObject({ ok: false, reason: 'agent says drain: v6' });
      }
    } finally {
      await r.close();
      await writeStateFile(stateFile, { word: 'ready' });
    }
  });

  test('--listen values: IPv4, [IPv6] and localhost with a port, canonical; anything else is refused naming it', () => {
    expect(listenAddress('0.0.0.0:9777')).toMatchObject({ host: '0.0.0.0', port: 9777 });
    expect(listenAddress('[2001:DB8:0::1]:9777')).toMatchObject({ host: '2001:db8::1', port: 9777 });
    expect(listenAddress('localhost:9777')).toMatchObject({ host: 'localhost', port: 9777 });
    // 300.1.1.1 failed at the bind with 'getaddrinfo ENOTFOUND', naming no flag; 0 and 127.1 (inet_aton shorthand)
    // bound 0.0.0.0 and 127.0.0.1 while the command reported listening on 0:PORT.
    for (const bad of ['9777', '0.0.0.0:70000', '2001:db8::1:9777', '300.1.1.1:9777', '0:0', '127.1:0']) {
      expect(() => listenAddress(bad)).toThrow(`--listen: ${JSON.stringify(bad)} is not ADDRESS:PORT`);
    }
  });

  test('--listen: the address is reported back in canonical form, as bound', async () => {
    const r = await startResponder({ listen: ['[0:0:0:0:0:0:0:1]:0', '127.0.0.1:0'], stateFile, logger });
    try {
      expect(r.addresses).toEqual([
        expect.stringMatching(/^\[::1\]:[1-9]\d*$/),
        expect.stringMatching(/^127\.0\.0\.1:[1-9]/),
      ]);
    } finally {
      await r.close();
    }
  });

  test('--listen 300.1.1.1:9777 is refused before any bind, naming the flag', async () => {
    await expect(startResponder({ listen: ['300.1.1.1:9777'], stateFile, logger })).rejects.toThrow(
      /^--listen: "300\.1\.1\.1:9777" is not ADDRESS:PORT/,
    );
  });
});

describe('l4fleet backend agent - connections that do not end', () => {
  /** A client that sends one byte every 50 ms and never closes its side; resolves when the responder closes it. */
  const dribble = async (at: number) => {
    const sock = connect(at, '127.0.0.1');
    sock.on('error', () => undefined);
    const timer = setInterval(() => sock.write('x'), 50);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    void closed.then(() => clearInterval(timer));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const stop = () => {
      clearInterval(timer);
      sock.destroy();
    };
    return { closed, stop };
  };

  test('a peer that keeps sending a byte at a time is closed at the connection timeout all the same', async () => {
    const r = await startResponder({ listen: ['127.0.0.1:0'], stateFile, logger, connectionTimeoutMs: 300 });
    const c = await dribble(Number(r.addresses[0]?.split(':')[1]));
    try {
      // Each byte used to restart an idle timer: the connection stayed as long as the peer kept sending.
      const outcome = await Promise.race([
        c.closed.then(() => 'closed'),
        new Promise((res) => setTimeout(() => res('still open'), 5_000)),
      ]);
      expect(outcome).toBe('closed');
    } finally {
      c.stop();
      await r.close();
    }
  });

  test('close() ends the connections still open (SIGTERM does not wait on a peer)', { timeout: 10_000 }, async () => {
    const r = await startResponder({ listen: ['127.0.0.1:0'], stateFile, logger });
    const at = Number(r.addresses[0]?.split(':')[1]);
    const held = [await dribble(at), await dribble(at)];
    try {
      await r.close();
      await Promise.all(held.map((c) => c.closed));
    } finally {
      for (const c of held) c.stop();
    }
  });
});
