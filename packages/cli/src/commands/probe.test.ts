/**
 * `l4fleet probe`: the pool's check once per member, with the agent's probe, against real servers on loopback; the
 * fleet comes from the memory store.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Probe } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { MemoryFleetStore } from '@l4fleet/store';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';
import { probeChecks } from './probe.js';

let server: Server;
let store: MemoryFleetStore;
/** A loopback port nothing listens on, and one a plain TCP server accepts on. */
let closed: number;
let sidecar: ReturnType<typeof createServer>;

beforeAll(async () => {
  server = createHttpServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 503).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  // A port nothing listens on: one the kernel handed out, then closed.
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  closed = (tmp.address() as AddressInfo).port;
  await new Promise((r) => tmp.close(r));
  sidecar = createServer((s) => s.end());
  await new Promise<void>((r) => sidecar.listen(0, '127.0.0.1', r));
  const open = (sidecar.address() as AddressInfo).port;
  store = new MemoryFleetStore();
  await store.apply(
    parseFleet({
      hashSeed: 1,
      pools: [
        {
          name: 'web',
          healthCheck: { type: 'http', path: '/healthz', intervalMs: 2000, timeoutMs: 500 },
          members: [
            { name: 'good', address: '127.0.0.1', port },
            { name: 'gone', address: '127.0.0.1', port: closed },
          ],
        },
        {
          name: 'api',
          healthCheck: { type: 'http', path: '/other', timeoutMs: 500 },
          members: [{ name: 'sick', address: '127.0.0.1', port }],
        },
        {
          // The http check passes; the sidecar's tcp port is closed.
          name: 'deps',
          healthCheck: { type: 'http', path: '/healthz', timeoutMs: 500 },
          additionalHealthChecks: [{ type: 'tcp', port: closed, timeoutMs: 500 }],
          members: [{ name: 'half', address: '127.0.0.1', port }],
        },
        {
          // Either check will do: `alive` answers TCP but 503 on /other, `dead` answers neither.
          name: 'either',
          healthCheck: { type: 'http', path: '/other', timeoutMs: 500 },
          additionalHealthChecks: [{ type: 'tcp', timeoutMs: 500 }],
          healthChecksRequired: 1,
          members: [
            { name: 'alive', address: '127.0.0.1', port },
            { name: 'dead', address: '127.0.0.1', port: closed },
          ],
        },
        {
          name: 'both',
          healthCheck: { type: 'http', path: '/healthz', timeoutMs: 500 },
          additionalHealthChecks: [{ type: 'tcp', port: open, timeoutMs: 500 }],
          members: [{ name: 'whole', address: '127.0.0.1', port }],
        },
      ],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' },
        { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'api' },
        { address: '198.51.100.12', port: 80, protocol: 'tcp', pool: 'deps' },
        { address: '198.51.100.13', port: 80, protocol: 'tcp', pool: 'both' },
        { address: '198.51.100.14', port: 80, protocol: 'tcp', pool: 'either' },
      ],
    }),
    { expectRevision: 0 },
  );
});

afterAll(() => {
  server.closeAllConnections();
  server.close();
  sidecar.close();
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  // One store for every call: a command's close() must not end it.
  const shared = Object.assign(Object.create(store) as MemoryFleetStore, { close: async () => undefined });
  const code = await runCli(argv, io, { openStore: () => shared });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('l4fleet probe', () => {
  test('every member of the pool, once: up and down with the reason; exit 1 when one fails', async () => {
    const r = await cli('probe', 'web');
    expect(r.out).toContain('Pool web: http GET /healthz expect 200, every 2000 ms, timeout 500 ms, rise 2, fall 4');
    expect(r.out).toMatch(/^good\s+127\.0\.0\.1:\d+\s+up\s+[\d.]+ ms\s*$/m);
    expect(r.out).toMatch(/^gone\s+127\.0\.0\.1:\d+\s+down\s+[\d.]+ ms\s+ECONNREFUSED$/m);
    expect(r.out).toContain('1 up, 1 down');
    expect(r.code).toBe(1);
    expect(r.err).toBe('error: 1 of 2 members failed the check');
  });

  test('named members only; all up is exit 0; JSON carries each result', async () => {
    const r = await cli('probe', 'web', 'good', '-o', 'json');
    expect(r.code).toBe(0);
    const data = JSON.parse(r.out);
    expect(data.results).toEqual([
      {
        member: 'good',
        endpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        ok: true,
        latencyMs: expect.any(Number),
      },
    ]);
    expect(data.healthCheck.type).toBe('http');
    expect(data.from).toBe('the fleet (revision 1)');
  });

  test("a status the check does not expect is named as the agent's log would", async () => {
    const r = await cli('probe', 'api');
    expect(r.out).toMatch(/^sick\s+127\.0\.0\.1:\d+\s+down\s+[\d.]+ ms\s+status 503 \(expected 200\)$/m);
    expect(r.code).toBe(1);
  });

  test('additional checks: a member passing healthCheck but not the tcp check is down, named by that check', async () => {
    const r = await cli('probe', 'deps');
    expect(r.out.split('\n').slice(0, 4)).toEqual([
      'Pool deps: http GET /healthz expect 200, every 2000 ms, timeout 500 ms, rise 2, fall 4',
      `      and: tcp port ${closed}, every 2000 ms, timeout 500 ms, rise 2, fall 4`,
      '           (a member must pass all 2 checks: a node sees it down once one fails, up once all pass)',
      'One probe per member and check from this host, all at once (LATENCY: the slowest); rise and fall do not apply.',
    ]);
    const row = new RegExp(
      `^half\\s+127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:${closed}\\s+down\\s+[\\d.]+ ms\\s+check 2 of 2 \\(tcp port ${closed}\\): ECONNREFUSED$`,
      'm',
    );
    expect(r.out).toMatch(row);
    expect(r.out).toContain('0 up, 1 down');
    expect([r.code, r.err]).toEqual([1, 'error: 1 of 1 members failed a check']);
    const json = JSON.parse((await cli('probe', 'deps', '-o', 'json')).out);
    expect(json.additionalHealthChecks).toMatchObject([{ type: 'tcp', port: closed }]);
    expect(json.results).toEqual([
      {
        member: 'half',
        endpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        ok: false,
        latencyMs: expect.any(Number),
        reason: `check 2 of 2 (tcp port ${closed}): ECONNREFUSED`,
        checks: [
          { check: 1, type: 'http', endpoint: json.results[0].endpoint, ok: true, latencyMs: expect.any(Number) },
          {
            check: 2,
            type: 'tcp',
            endpoint: `127.0.0.1:${closed}`,
            ok: false,
            latencyMs: expect.any(Number),
            reason: 'ECONNREFUSED',
          },
        ],
      },
    ]);
  });

  test('healthChecksRequired: a member passing enough of its checks is up (the failed one named), one passing too few down', async () => {
    const r = await cli('probe', 'either');
    expect(r.out.split('\n').slice(2, 3)).toEqual([
      '             (a member must pass at least 1 of the 2 checks: a node sees it up while 1 passes, down once 2 fail)',
    ]);
    expect(r.out).toMatch(
      /^alive\s+127\.0\.0\.1:\d+\s+up\s+[\d.]+ ms\s+1 of 2 checks failed \(1 must pass\): check 1 of 2 \(http\): status 503 \(expected 200\)$/m,
    );
    expect(r.out).toMatch(
      /^dead\s+127\.0\.0\.1:\d+\s+down\s+[\d.]+ ms\s+2 of 2 checks failed \(1 must pass\): check 1 of 2/m,
    );
    expect(r.out).toContain('1 up, 1 down');
    expect([r.code, r.err]).toEqual([1, 'error: 1 of 2 members failed more than 1 of their 2 checks']);
    const json = JSON.parse((await cli('probe', 'either', '-o', 'json')).out);
    expect(json.healthChecksRequired).toBe(1);
    expect(json.results.map((m: { ok: boolean }) => m.ok)).toEqual([true, false]);
  });

  test('additional checks: a member passing every check is up, exit 0', async () => {
    const r = await cli('probe', 'both');
    expect(r.out).toMatch(/^whole\s+127\.0\.0\.1:\d+,127\.0\.0\.1:\d+\s+up\s+[\d.]+ ms\s*$/m);
    expect(r.out).toContain('1 up, 0 down');
    expect([r.code, r.err]).toEqual([0, '']);
    const json = JSON.parse((await cli('probe', 'both', '-o', 'json')).out);
    expect(json.results[0]).toMatchObject({ member: 'whole', ok: true });
    expect(json.results[0]).not.toHaveProperty('reason');
    expect(json.results[0].checks.map((c: { ok: boolean }) => c.ok)).toEqual([true, true]);
  });

  test('-f: the pool from a fleet file, before apply (etcd is not read)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-probe-'));
    try {
      const file = join(dir, 'fleet.yaml');
      const port = (server.address() as AddressInfo).port;
      writeFileSync(
        file,
        `pools:\n  - name: next\n    healthCheck: { type: http, path: /healthz, expect: nothing-like-this }\n    members:\n      - { name: a, address: 127.0.0.1, port: ${port} }\nvips: []\n`,
      );
      const r = await cli('probe', 'next', '-f', file);
      expect(r.out).toMatch(/^a\s+127\.0\.0\.1:\d+\s+down\s+[\d.]+ ms\s+body lacks "nothing-like-this" \(got ""\)$/m);
      expect(r.code).toBe(1);
      expect((await cli('probe', 'web', '-f', file)).err).toBe(`error: pool "web": not in ${file}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Not found is exit 1 (as `member drain web nosuch` and `probe nosuch`), and so is a named file that cannot be
  // read or holds no certificate: neither is a usage error (README "Exit codes").
  test('an unknown pool or member, and a bad --ca-file, are named; exit 1', async () => {
    expect(await cli('probe', 'nope')).toMatchObject({
      code: 1,
      err: 'error: pool "nope": not in the fleet (revision 1)',
    });
    expect(await cli('probe', 'web', 'good', 'bogus')).toMatchObject({
      code: 1,
      err: 'error: pool web: no member "bogus" (members: good, gone)',
    });
    const bad = await cli('probe', 'web', '--ca-file', '/nonexistent/ca.pem');
    expect(bad).toMatchObject({ code: 1, err: 'error: --ca-file: "/nonexistent/ca.pem" cannot be read (ENOENT)' });
    expect(await cli('probe', 'web', '--ca-file', tmpdir())).toMatchObject({
      code: 1,
      err: `error: --ca-file: "${tmpdir()}" is not a regular file`,
    });
  });

  test.each([['not-an-ip'], [''], ['198.18.0.256']])('--source %j is a usage error naming it', async (source) => {
    expect(await cli('probe', 'web', '--source', source)).toMatchObject({
      code: 2,
      err: `error: --source: ${JSON.stringify(source)} is not an IPv4 or IPv6 address`,
      out: '',
    });
  });

  // health.sourceAddress takes no zone (its address parser reads none): probe refuses one alike, as a usage error
  // naming --source (it reached the IPv4-in-IPv6 check, which threw naming a field `address`, exit 1).
  test.each([['fe80::1%eth0'], ['::%eth0'], ['2001:db8::11%1']])(
    '--source %j (with a zone) is a usage error naming it, as health.sourceAddress refuses it',
    async (source) => {
      expect(await cli('probe', 'web', '--source', source)).toMatchObject({
        code: 2,
        err: `error: --source: ${JSON.stringify(source)} is not an IPv4 or IPv6 address`,
        out: '',
      });
    },
  );

  // The agent's health.sourceAddress refuses these (no interface lists them): probe, run to see what the node's checks
  // see, refuses them alike, in the same words.
  test.each([
    ['::ffff:198.18.0.11', 'an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)'],
    ['::c612:b', 'an IPv4-compatible address (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 address)'],
  ])('--source %j (IPv4 in IPv6) is a usage error, as health.sourceAddress refuses it', async (source, why) => {
    expect(await cli('probe', 'web', '--source', source)).toMatchObject({
      code: 2,
      err: `error: --source: ${JSON.stringify(source)} is ${why}`,
      out: '',
    });
  });
  // health.sourceAddress refuses the unspecified address (a socket bound to it is what no source address gives):
  // probe refuses it alike, in the same words (--source named where the agent names its field).
  test.each([['0.0.0.0'], ['::'], ['0::0'], ['0:0:0:0:0:0:0:0']])(
    '--source %j (the unspecified address) is a usage error, as health.sourceAddress refuses it',
    async (source) => {
      expect(await cli('probe', 'web', '--source', source)).toMatchObject({
        code: 2,
        err: `error: --source: ${JSON.stringify(source)} is the unspecified address: leave --source out for the kernel's choice`,
        out: '',
      });
    },
  );
});

describe('probeChecks', () => {
  test('a check with an address is probed once for all members, its result given to each; the others per member', async () => {
    const calls: string[] = [];
    const probe: Probe = async (t, c) => {
      calls.push(`${c.address ?? t.address}:${c.port ?? t.port}`);
      return c.address ? { ok: false, latencyMs: 2, reason: 'ECONNREFUSED' } : { ok: true, latencyMs: 1 };
    };
    const members = Array.from({ length: 50 }, (_, i) => ({
      name: `m${i}`,
      address: `198.18.0.${10 + i}`,
      port: 80,
      weight: 1,
      state: 'active' as const,
    }));
    const own = { type: 'tcp' as const, intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 };
    const database = { ...own, address: '198.18.3.50', port: 5432 };
    const results = await probeChecks(members, [own, database], probe, {});
    expect(calls.filter((c) => c === '198.18.3.50:5432')).toHaveLength(1);
    expect(calls).toHaveLength(51);
    expect(results).toHaveLength(100);
    expect(results.filter((r) => r.check === 2).every((r) => !r.ok && r.reason === 'ECONNREFUSED')).toBe(true);
    expect(results.filter((r) => r.check === 2).map((r) => r.endpoint)).toEqual(Array(50).fill('198.18.3.50:5432'));
  });
});
