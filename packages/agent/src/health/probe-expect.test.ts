/** `payload` and `expect` probes against real sockets on loopback: TCP banners and commands, HTTP bodies, UDP replies. */
import { createSocket, type Socket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import type { HealthCheck } from '@l4fleet/config';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMember } from './probe.js';
import { createReplyMatcher, MAX_PROBE_REPLY_BYTES } from './reply-match.js';

const check = (c: Partial<HealthCheck>): HealthCheck => ({
  type: 'tcp',
  intervalMs: 5000,
  timeoutMs: 2000,
  rise: 1,
  fall: 1,
  ...c,
});

let banner: Server;
let redisLike: Server;
let closer: Server;
let http: HttpServer;
let udp: Socket;
const portOf = (s: Server | HttpServer) => (s.address() as AddressInfo).port;
const listen = async <S extends Server | HttpServer>(s: S): Promise<S> => {
  // A probe closes as soon as it has its answer (a reset, at times): that is no error of the server's.
  s.on('connection', (c: { on(e: 'error', f: () => void): void }) => c.on('error', () => undefined));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
};

beforeAll(async () => {
  // SMTP-like: a banner on connect, then silence.
  banner = await listen(createServer((c) => c.write('220 mail.example ESMTP ready\r\n')));
  // Redis-like: answers PING with +PONG, anything else with an error.
  redisLike = await listen(
    createServer((c) =>
      c.on('data', (d) => c.write(d.toString().startsWith('PING') ? '+PONG\r\n' : '-ERR unknown command\r\n')),
    ),
  );
  // Sends a line and closes.
  closer = await listen(createServer((c) => c.end('503 go away\r\n')));
  http = await listen(
    createHttpServer((req, res) => {
      if (req.url === '/stream') {
        // An endless body without the text: the probe must stop at its cap, not read on.
        res.writeHead(200);
        const chunk = Buffer.alloc(16_384, 'x');
        const pump = () => {
          while (res.write(chunk)) if (res.destroyed) return;
          res.once('drain', pump);
        };
        pump();
        return;
      }
      if (req.url === '/maint') {
        // 200 and "ok" first, the maintenance flag in a later chunk: the probe must read on past expect.
        res.writeHead(200);
        res.write('{"status":"ok"');
        setTimeout(() => res.end(',"mode":"MAINTENANCE"}'), 20);
        return;
      }
      res.writeHead(200).end(req.url === '/healthz' ? '{"status":"ok","db":"up"}' : '{"status":"maintenance"}');
    }),
  );
  udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => udp.send(Buffer.concat([Buffer.from('echo '), msg]), rinfo.port, rinfo.address));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
});

afterAll(() => {
  for (const s of [banner, redisLike, closer]) s.close();
  http.closeAllConnections();
  http.close();
  udp.close();
});

describe('probe - payload and expect', () => {
  test('tcp: a banner that contains expect is up; one that does not is down, naming what came', async () => {
    const target = { address: '127.0.0.1', port: portOf(banner) };
    expect(await probeMember(target, check({ expect: '220 ' }))).toMatchObject({ ok: true });
    const r = await probeMember(target, check({ expect: '230', timeoutMs: 500 }));
    expect(r).toMatchObject({ ok: false, reason: 'timeout' });
  });

  test('tcp: payload is sent once connected and the answer must contain expect', async () => {
    const target = { address: '127.0.0.1', port: portOf(redisLike) };
    expect(await probeMember(target, check({ payload: 'PING\r\n', expect: '+PONG' }))).toMatchObject({ ok: true });
    expect(await probeMember(target, check({ payload: 'PONG\r\n', expect: '+PONG', timeoutMs: 500 }))).toMatchObject({
      ok: false,
      reason: 'timeout',
    });
  });

  test('tcp: a member that closes without the text is down at once, with what it sent', async () => {
    const started = performance.now();
    const r = await probeMember({ address: '127.0.0.1', port: portOf(closer) }, check({ expect: '220' }));
    expect(r).toEqual({
      ok: false,
      latencyMs: expect.any(Number),
      reason: 'reply lacks "220" (got "503 go away\\r\\n")',
    });
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  test('tcp without expect stays a connect check, payload or not', async () => {
    const target = { address: '127.0.0.1', port: portOf(closer) };
    expect(await probeMember(target, check({}))).toMatchObject({ ok: true });
    expect(await probeMember(target, check({ payload: 'QUIT\r\n' }))).toMatchObject({ ok: true });
  });

  test('http: the body must contain expect; a wrong status is still named first', async () => {
    const target = { address: '127.0.0.1', port: portOf(http) };
    const hc = (path: string, expectText: string, expectStatus = 200) =>
      check({ type: 'http', path, expectStatus, expect: expectText });
    expect(await probeMember(target, hc('/healthz', '"status":"ok"'))).toMatchObject({ ok: true });
    expect(await probeMember(target, hc('/other', '"status":"ok"'))).toMatchObject({
      ok: false,
      reason: 'body lacks "\\"status\\":\\"ok\\"" (got "{\\"status\\":\\"maintenance\\"}")',
    });
    expect(await probeMember(target, hc('/healthz', 'ok', 204))).toMatchObject({
      ok: false,
      reason: 'status 200 (expected 204)',
    });
  });

  test.each([
    ['Content-Length not reached', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello'],
    ['chunked without its last chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'],
  ])(
    'http: a body cut short (%s: the member closed mid-answer) is down at once, saying so, not a timeout',
    async (_, answer) => {
      const cutter = await listen(createServer((c) => c.once('data', () => c.end(answer))));
      try {
        for (const c of [{ expect: 'ok' }, { expectNot: 'MAINTENANCE' }]) {
          const r = await probeMember(
            { address: '127.0.0.1', port: portOf(cutter) },
            check({ type: 'http', expectStatus: 200, timeoutMs: 2_000, ...c }),
          );
          expect(r.ok).toBe(false);
          expect(r.reason).toContain('the member closed before the body ended');
        }
      } finally {
        cutter.close();
      }
    },
  );

  test('http: an endless body without the text is down after the cap, not read on', async () => {
    const r = await probeMember(
      { address: '127.0.0.1', port: portOf(http) },
      check({ type: 'http', path: '/stream', expect: 'ok' }),
    );
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(
      new RegExp(`^body lacks "ok" in its first ${MAX_PROBE_REPLY_BYTES} bytes \\(got "x{60}"\\.\\.\\.\\)$`),
    );
  });

  test('http: expectNot takes the member down when the body contains it, even in a chunk after expect (F5 receive disable string)', async () => {
    const target = { address: '127.0.0.1', port: portOf(http) };
    const http200 = { type: 'http' as const, expectStatus: 200 };
    expect(await probeMember(target, check({ ...http200, path: '/healthz', expectNot: 'MAINTENANCE' }))).toMatchObject({
      ok: true,
    });
    expect(await probeMember(target, check({ ...http200, path: '/maint', expectNot: 'MAINTENANCE' }))).toEqual({
      ok: false,
      latencyMs: expect.any(Number),
      reason: 'body contains "MAINTENANCE" (expectNot)',
    });
    const both = check({ ...http200, path: '/maint', expect: '"ok"', expectNot: 'MAINTENANCE' });
    expect(await probeMember(target, both)).toMatchObject({
      ok: false,
      reason: 'body contains "MAINTENANCE" (expectNot)',
    });
    expect(await probeMember(target, { ...both, path: '/healthz' })).toMatchObject({ ok: true });
    // expect is still required beside expectNot.
    expect(await probeMember(target, { ...both, path: '/other' })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('body lacks "\\"ok\\""'),
    });
    // An endless body without the text: judged on the first MAX_PROBE_REPLY_BYTES, not read on.
    expect(await probeMember(target, check({ ...http200, path: '/stream', expectNot: 'MAINTENANCE' }))).toMatchObject({
      ok: true,
    });
  });

  test('udp: a reply that contains expectNot is down', async () => {
    const target = { address: '127.0.0.1', port: (udp.address() as AddressInfo).port };
    const udpCheck = check({ type: 'udp', payload: 'status MAINT', expectNot: 'MAINT' });
    expect(await probeMember(target, udpCheck)).toMatchObject({
      ok: false,
      reason: 'reply contains "MAINT" (expectNot)',
    });
    expect(await probeMember(target, { ...udpCheck, payload: 'status fine' })).toMatchObject({ ok: true });
  });

  test('udp: the reply must contain expect', async () => {
    const target = { address: '127.0.0.1', port: (udp.address() as AddressInfo).port };
    expect(await probeMember(target, check({ type: 'udp', payload: 'ping', expect: 'echo ping' }))).toMatchObject({
      ok: true,
    });
    expect(await probeMember(target, check({ type: 'udp', payload: 'ping', expect: 'pong' }))).toMatchObject({
      ok: false,
      reason: 'reply lacks "pong" (got "echo ping")',
    });
  });
});

describe('probe - what a member sends reaches no terminal', () => {
  test('tcp: a reply with ESC, BEL and C1 (0x9b, CSI) is quoted in the reason without any control character', async () => {
    const evil = await listen(
      createServer((c) =>
        c.end(Buffer.concat([Buffer.from('\x1b]0;owned\x07 \u009b2J', 'utf8'), Buffer.from([0x9b])])),
      ),
    );
    try {
      const r = await probeMember({ address: '127.0.0.1', port: portOf(evil) }, check({ expect: 'ok' }));
      // JSON quoting escapes C0 (ESC, BEL); DEL and C1 it leaves raw, so they are escaped the same way after it. The
      // lone 0x9b byte is no UTF-8: U+FFFD.
      expect(r).toMatchObject({
        ok: false,
        reason: 'reply lacks "ok" (got "\\u001b]0;owned\\u0007 \\u009b2J\ufffd")',
      });
      expect(r.reason).not.toMatch(/\p{Cc}/u);
    } finally {
      evil.close();
    }
  });

  test('tcp: white space in expect and in the reply is quoted exactly: two spaces, a no-break space, DEL', async () => {
    const replying = await listen(createServer((c) => c.end('status: OK ready\u00a0now\u007f')));
    try {
      const at = { address: '127.0.0.1', port: portOf(replying) };
      expect(await probeMember(at, check({ expect: 'status:  OK' }))).toMatchObject({
        ok: false,
        reason: 'reply lacks "status:  OK" (got "status: OK ready\u00a0now\\u007f")',
      });
      expect(await probeMember(at, check({ expect: 'ready now' }))).toMatchObject({
        ok: false,
        reason: 'reply lacks "ready now" (got "status: OK ready\u00a0now\\u007f")',
      });
    } finally {
      replying.close();
    }
  });
});

describe('reply matcher', () => {
  test('finds text split across chunks, and multi-byte text', () => {
    const m = createReplyMatcher('+PONG');
    expect(m.push(Buffer.from('+PO'))).toBe(false);
    expect(m.push(Buffer.from('NG\r\n'))).toBe(true);
    const u = createReplyMatcher('café');
    const bytes = Buffer.from('un café');
    expect(u.push(bytes.subarray(0, 6))).toBe(false); // splits the é
    expect(u.push(bytes.subarray(6))).toBe(true);
  });

  test('searches each byte a bounded number of times: a reply dripped one byte per chunk is linear, not quadratic', () => {
    const m = createReplyMatcher('needle');
    for (let i = 0; i < 10_000; i++) expect(m.push(Buffer.from('x'))).toBe(false);
    // Each push searches its chunk plus the last wanted.length - 1 bytes seen before it, never all of them again.
    expect(m.searchedBytes).toBeLessThanOrEqual(10_000 * 'needle'.length);
    const n = createReplyMatcher('needle');
    for (const b of Buffer.from('xxneedlexx')) if (n.push(Buffer.from([b]))) break;
    expect(n.full).toBe(false);
    expect(createReplyMatcher('needle').push(Buffer.from('xxneedle'))).toBe(true);
  });

  test('the same answers as searching everything seen, for text split anywhere across chunks and at the cap', () => {
    const wanted = 'ab\u00e9cd';
    const bytes = Buffer.from(`zzz${wanted}zz`);
    // Every split of the reply into three chunks.
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const m = createReplyMatcher(wanted);
        const parts = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
        let seen = Buffer.alloc(0);
        parts.forEach((part, k) => {
          seen = Buffer.concat([seen, part]);
          expect(m.push(part), `split ${i},${j} chunk ${k}`).toBe(seen.includes(Buffer.from(wanted)));
        });
      }
    }
    // Ending exactly at the cap, split across the last two chunks: found.
    const m = createReplyMatcher('needle');
    expect(m.push(Buffer.alloc(MAX_PROBE_REPLY_BYTES - 6, 'x'))).toBe(false);
    expect(m.push(Buffer.from('nee'))).toBe(false);
    expect(m.push(Buffer.from('dle'))).toBe(true);
    expect(m.full).toBe(true);
  });

  test('stops keeping bytes at the cap', () => {
    const m = createReplyMatcher('needle');
    expect(m.push(Buffer.alloc(MAX_PROBE_REPLY_BYTES - 3, 'x'))).toBe(false);
    expect(m.full).toBe(false);
    // The text straddles the cap: only its first 3 bytes fit, so it is not found.
    expect(m.push(Buffer.from('needle'))).toBe(false);
    expect(m.full).toBe(true);
    expect(m.push(Buffer.from('needle'))).toBe(false);
  });
});
