import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { HealthCheck } from '@l4fleet/config';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMember } from './probe.js';
import { agentReplyState, MAX_AGENT_REPLY_BYTES } from './probe-agent.js';

describe('agent check - what a reply line says (HAProxy agent-check words)', () => {
  test.each([
    ['up', { ok: true }],
    ['ready', { ok: true }],
    ['75%', { ok: true }],
    ['', { ok: true }],
    ['up, 50%, maxconn:30', { ok: true }],
    ['drain', { ok: false, reason: 'agent says drain' }],
    ['DRAIN # deploying v42', { ok: false, reason: 'agent says drain: deploying v42' }],
    ['50%,maint', { ok: false, reason: 'agent says maint' }],
    ['stopped\t#   shutting down  ', { ok: false, reason: 'agent says stopped: shutting down' }],
    ['fail#disk full', { ok: false, reason: 'agent says fail: disk full' }],
    ['down', { ok: false, reason: 'agent says down' }],
    // Words after `#` are the description, never a state.
    ['up # not down', { ok: true }],
  ])('%j', (line, state) => {
    expect(agentReplyState(line)).toEqual(state);
  });

  test('control characters in the description are spaces in the reason (it reaches etcd, NATS and terminals)', () => {
    // ESC ] 0 ; ... BEL retitles a terminal, ESC [ 2 J clears it, U+009B is the one-character CSI.
    const reason = agentReplyState('drain # \u001b]0;pwned\u0007\u001b[2Jbye\u009b1m\u007f.').reason;
    expect(reason).toBe('agent says drain: ]0;pwned [2Jbye 1m .');
    expect(reason).not.toMatch(/\p{Cc}/u);
  });

  test('a long description is cut in the reason', () => {
    expect(agentReplyState(`drain #${'x'.repeat(500)}`).reason).toBe(`agent says drain: ${'x'.repeat(80)}`);
  });
});

/** A real agent on loopback: answers `reply(received)` to each connection (undefined: never answers). */
let server: Server;
let reply: (received: string, sock: Socket) => void = () => undefined;
let port = 0;
const check = (c: Partial<HealthCheck> = {}): HealthCheck => ({
  type: 'agent',
  intervalMs: 1000,
  timeoutMs: 300,
  rise: 1,
  fall: 1,
  port,
  ...c,
});
const probe = (c?: Partial<HealthCheck>) => probeMember({ address: '127.0.0.1', port: 1 }, check(c));

beforeAll(async () => {
  server = createServer((sock) => {
    let received = '';
    sock.on('data', (d) => {
      received += d.toString();
    });
    // Answer once the client has had time to send its payload (agent-send), or at once without one.
    setTimeout(() => reply(received, sock), 20);
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('agent check - probes against a real agent on loopback (the check port, never the member port)', () => {
  test('up and drain, with the description as the reason', async () => {
    reply = (_r, s) => s.end('up\n');
    expect(await probe()).toMatchObject({ ok: true });
    reply = (_r, s) => s.end('drain # deploying v42\r\n');
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says drain: deploying v42' });
  });

  test('the line is read up to its end; the connection may stay open', async () => {
    reply = (_r, s) => s.write('maint\nup\n'); // not closed: the probe ends it
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says maint' });
  });

  test('a reply without a line end counts once the agent closes', async () => {
    reply = (_r, s) => s.end('stopped');
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says stopped' });
  });

  test('payload is sent first (agent-send): an agent answering per service', async () => {
    reply = (received, s) => s.end(received === 'web\n' ? 'ready\n' : 'fail # which service?\n');
    expect(await probe({ payload: 'web\n' })).toMatchObject({ ok: true });
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says fail: which service?' });
  });

  test('closed without a reply, no answer in time, nothing listening: down with why', async () => {
    reply = (_r, s) => s.end();
    expect(await probe()).toMatchObject({ ok: false, reason: 'the agent closed without a reply' });
    reply = () => undefined;
    expect(await probe()).toMatchObject({ ok: false, reason: 'timeout' });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await probe({ port: closedPort })).toMatchObject({ ok: false, reason: 'ECONNREFUSED' });
  });

  test('an agent that streams without a line end is read to MAX_AGENT_REPLY_BYTES, not without bound', async () => {
    reply = (_r, s) => s.write(`${'x'.repeat(MAX_AGENT_REPLY_BYTES * 4)} drain`);
    // The state word lies beyond the bytes read: the reply names no state, so the agent answered (up).
    expect(await probe()).toMatchObject({ ok: true });
  });
});
