/**
 * Hostile records in etcd (issue 12): keys written by hand, as anyone with etcd write access could, in every key
 * family. For each: the CLI exits with a message naming the key, the field and the value (or, for the families the
 * agent watches, the store API reports `INVALID_RECORD` through onError and keeps the last good state), nothing
 * crashes or hangs (each command bounded), and etcd did not change (same revision before and after).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type CliIo, runCli } from '@l4fleet/cli';
import { parseFleet } from '@l4fleet/config';
import { CHUNK_BYTES, EtcdFleetStore, type FleetStore, type StoreError } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { until } from '@l4fleet/test-support/eventually';
import { largeFleet } from '@l4fleet/test-support/fleets';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
/** Every command here reads a few keys; a hostile record must not make one take longer than this. */
const COMMAND_BOUND_MS = 10_000;

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let etcd: EtcdHandle;
let raw: Etcd3;
let n = 0;
const stores: FleetStore[] = [];

beforeAll(async () => {
  // Large enough for the over-limit records below (etcd's default request limit is 1.5 MiB).
  etcd = await startEtcd({ extraArgs: ['--max-request-bytes=10485760'] });
  raw = new Etcd3({ hosts: etcd.endpoints });
});
afterAll(async () => {
  for (const s of stores) await s.close();
  raw?.close();
  await etcd?.stop();
});

/** A fresh fleet under its own prefix, with one good apply. */
async function fleetPrefix(fleet = parseFleet({ hashSeed: 7, pools: [], vips: [] })) {
  const prefix = `/hostile-${++n}`;
  const store = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
  stores.push(store);
  const applied = await store.apply(fleet);
  const key = (k: string) => `${prefix}/v1/${k}`;
  return { prefix, store, applied, key };
}

async function cli(prefix: string, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const t0 = Date.now();
  const code = await runCli([...argv, '--etcd', etcd.endpoints.join(','), '--prefix', prefix], io);
  const ms = Date.now() - t0;
  expect(ms).toBeLessThan(COMMAND_BOUND_MS);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** etcd's revision: reads leave it alone, any write moves it. */
async function revision(): Promise<string> {
  return (await raw.get('x').exec()).header.revision;
}

const pointerOf = async (key: string) => JSON.parse((await raw.get(key).string()) ?? '{}') as Record<string, unknown>;

describe('hostile records - desired/current and its chunks: every read is refused naming key, field, value', () => {
  const smallFleet = parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', members: [{ address: '198.18.0.1', port: 80 }] }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

  type Case = { name: string; big?: boolean; write: (key: (k: string) => string) => Promise<void>; says: RegExp };
  const cases: Case[] = [
    {
      name: 'a chunk bomb (chunks: 1,000,000,000) is refused without fetching',
      write: async (key) => {
        const p = await pointerOf(key('desired/current'));
        await raw.put(key('desired/current')).value(JSON.stringify({ ...p, encoding: 'json', chunks: 1_000_000_000 }));
      },
      says: /desired\/current: chunks 1000000000 is not 1 /,
    },
    {
      name: 'a size bomb (bytes: 10^12)',
      write: async (key) => {
        const p = await pointerOf(key('desired/current'));
        const bytes = 1e12;
        await raw
          .put(key('desired/current'))
          .value(JSON.stringify({ ...p, encoding: 'gzip', bytes, chunks: Math.ceil(bytes / CHUNK_BYTES) }));
      },
      says: /desired\/current: bytes 1000000000000 is not a size of 1\.\.33554432 bytes/,
    },
    {
      name: 'not JSON',
      write: async (key) => void (await raw.put(key('desired/current')).value('{"schema":1,')),
      says: /desired\/current: value: "\{\\"schema\\":1," is not JSON/,
    },
    {
      name: 'a pointer of the wrong shape (an array)',
      write: async (key) => void (await raw.put(key('desired/current')).value('[1,2]')),
      says: /desired\/current: value: \[1,2\] is not a JSON object/,
    },
    {
      name: 'another schema',
      write: async (key) => {
        const p = await pointerOf(key('desired/current'));
        await raw.put(key('desired/current')).value(JSON.stringify({ ...p, schema: 2 }));
      },
      says: /desired\/current: schema 2 is not 1/,
    },
    {
      name: 'a hash seed that is not an integer',
      write: async (key) => {
        const p = await pointerOf(key('desired/current'));
        await raw.put(key('desired/current')).value(JSON.stringify({ ...p, hashSeed: 'NaN' }));
      },
      says: /desired\/current: hashSeed "NaN" is not an integer/,
    },
    {
      // Same length (port 80 -> 81), so the size check passes and only the sha256 comparison can catch it.
      name: 'an inline fleet edited by hand, same size (its sha256 no longer matches)',
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as {
          document: { fleet: { pools: { members: { port: number }[] }[] } };
        };
        const member = p.document.fleet.pools[0]?.members[0];
        if (member?.port !== 80) throw new Error(`test setup: expected member port 80, got ${member?.port}`);
        member.port = 81;
        await raw.put(key('desired/current')).value(JSON.stringify(p));
      },
      says: /desired\/current: sha256 "[0-9a-f]+\.\.\. is not the inline document's sha256 [0-9a-f]{64}/,
    },
    {
      name: 'an inline fleet grown by hand (its bytes no longer match)',
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as {
          document: { fleet: { pools: { members: object[] }[] } };
        };
        p.document.fleet.pools[0]?.members.push({ address: '198.18.0.99', port: 80 });
        await raw.put(key('desired/current')).value(JSON.stringify(p));
      },
      says: /desired\/current: bytes \d+ is not the inline document's size \d+/,
    },
    {
      name: 'an inline fleet with a consistent sha256 but an invalid fleet',
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as Record<string, unknown> & {
          document: { fleet: { vips: { port: unknown }[] } };
        };
        const vip = p.document.fleet.vips[0];
        if (vip) vip.port = 70_000;
        const json = Buffer.from(JSON.stringify(p.document));
        const sha256 = createHash('sha256').update(json).digest('hex');
        await raw.put(key('desired/current')).value(JSON.stringify({ ...p, bytes: json.length, sha256 }));
      },
      says: /desired\/current: document\.fleet: .*port.*70000/,
    },
    {
      name: 'a pointer value over MAX_POINTER_BYTES',
      write: async (key) => void (await raw.put(key('desired/current')).value(`{"x":"${'a'.repeat(200_000)}"}`)),
      says: /desired\/current: value: 200008 bytes is more than the limit of 69632 bytes/,
    },
    {
      name: 'a chunk of the wrong size',
      big: true,
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as { generation: string };
        await raw.put(key(`desired/gen/${p.generation}/000000`)).value('short');
      },
      says: /desired\/current: bytes: generation [a-z0-9-]+ chunk 0 is 5 bytes, not 524288/,
    },
    {
      name: 'a missing chunk',
      big: true,
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as { generation: string };
        await raw.delete().key(key(`desired/gen/${p.generation}/000001`));
      },
      says: /desired\/current: chunks: generation [a-z0-9-]+ chunk 1 of 2 is missing/,
    },
    {
      name: 'a chunk changed in place (same size, bad checksum)',
      big: true,
      write: async (key) => {
        const p = (await pointerOf(key('desired/current'))) as { generation: string };
        const k = key(`desired/gen/${p.generation}/000000`);
        const chunk = (await raw.get(k).buffer()) as Buffer;
        chunk[100] = (chunk[100] as number) ^ 0xff;
        await raw.put(k).value(chunk);
      },
      says: /desired\/current: sha256: [0-9a-f]{64} is not generation [a-z0-9-]+'s [0-9a-f]{64}/,
    },
    {
      name: 'a gzip bomb with a correct checksum (100 MiB of zeros) stops at MAX_DOCUMENT_JSON_BYTES',
      write: async (key) => {
        const body = gzipSync(Buffer.alloc(100 * 1024 * 1024), { level: 9 });
        const p = await pointerOf(key('desired/current'));
        const generation = 'bomb-1';
        await raw.put(key(`desired/gen/${generation}/000000`)).value(body);
        const sha256 = createHash('sha256').update(body).digest('hex');
        const { document: _d, ...rest } = p;
        await raw
          .put(key('desired/current'))
          .value(JSON.stringify({ ...rest, generation, encoding: 'gzip', chunks: 1, bytes: body.length, sha256 }));
      },
      says: /desired\/current: encoding: generation bomb-1 does not decode as gzip JSON of at most 67108864 bytes/,
    },
  ];

  test.each(cases)('$name', async (c) => {
    const { prefix, store, key } = await fleetPrefix(c.big ? largeFleet(100, 1_000) : smallFleet);
    await c.write(key);
    const before = await revision();
    for (const argv of [['get', 'vips'], ['status'], ['apply', '-f', join(dir, 'none.yaml'), '--dry-run']]) {
      writeFileSync(join(dir, 'none.yaml'), 'pools: []\nvips: []\n');
      const r = await cli(prefix, ...argv);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(c.says);
      expect(r.err).toContain('l4fleet recover -f FLEET_FILE');
    }
    // The agent-facing API: a watch started now reports INVALID_RECORD and delivers nothing (a running one keeps
    // its last good state: the contract suite).
    const seen: number[] = [];
    const errors: StoreError[] = [];
    const watch = await store.watchDesired({ onUpdate: (d) => seen.push(d.revision), onError: (e) => errors.push(e) });
    await until('onError', () => errors.find((e) => e.code === 'INVALID_RECORD'), 10_000, 20);
    expect(errors.find((e) => e.code === 'INVALID_RECORD')?.message).toMatch(c.says);
    expect(errors.find((e) => e.code === 'INVALID_RECORD')?.key).toBe('desired/current');
    expect(seen).toEqual([]);
    expect(await revision()).toBe(before);
    await watch.close();
  });

  test('recover --yes replaces a corrupt pointer, keeping the hash seed the nodes serve', async () => {
    const { prefix, key } = await fleetPrefix(smallFleet);
    // The broken pointer's own seed field (9) is not what the nodes serve (7, the last write that reads).
    await raw.put(key('desired/current')).value('{"hashSeed":9,"chunks":1000000000}');
    const f = join(dir, 'recover.yaml');
    writeFileSync(f, 'pools: []\nvips: []\n');
    const before = await revision();
    const dry = await cli(prefix, 'recover', '-f', f);
    expect(dry.code).toBe(1);
    expect(dry.err).toContain('pass --yes');
    expect(await revision()).toBe(before);
    const done = await cli(prefix, 'recover', '-f', f, '--yes');
    expect(done.err).toBe('');
    expect(done.out).toContain('hash seed 0x7 (the one the nodes serve; the file sets none)');
    expect((await cli(prefix, 'get', 'vips')).code).toBe(0);
  });
});

describe('hostile records - nodes, drain, status, health, decided, election', () => {
  type Family = 'nodes' | 'health' | 'decided';
  type Case = { name: string; family: Family; key: string; value: string; says: RegExp };
  const bigMembers = JSON.stringify({
    pool: 'web',
    members: Object.fromEntries(Array.from({ length: 100_001 }, (_, i) => [`m${i}`, 'up'])),
  });
  const cases: Case[] = [
    {
      name: 'node: not JSON',
      family: 'nodes',
      key: 'nodes/lb9',
      value: 'up',
      says: /nodes\/lb9: value: "up" is not JSON/,
    },
    {
      name: 'node: a name other than its key',
      family: 'nodes',
      key: 'nodes/lb9',
      value: '{"name":"lb1","registeredAt":"x"}',
      says: /nodes\/lb9: name: "lb1" is not the key's node "lb9"/,
    },
    {
      name: 'node: a key that is not a node name',
      family: 'nodes',
      key: 'nodes/lb9/x',
      value: '{"name":"lb9","registeredAt":"x"}',
      says: /nodes\/lb9\/x: key: "lb9\/x" is not a node name/,
    },
    {
      name: 'node: an address that is a number',
      family: 'nodes',
      key: 'nodes/lb9',
      value: '{"name":"lb9","address":7,"registeredAt":"x"}',
      says: /nodes\/lb9: address: 7 is not an IP address/,
    },
    {
      name: 'drain: drained is not true',
      family: 'nodes',
      key: 'drain/lb9',
      value: '{"drained":"false"}',
      says: /drain\/lb9: drained: "false" is not true/,
    },
    {
      name: 'status: a revision that is not a number',
      family: 'nodes',
      key: 'status/lb9',
      value: '{"tables":{},"announced":[],"bgp":{},"failStatic":false,"desiredRevision":"NaN"}',
      says: /status\/lb9: desiredRevision: "NaN" is not a revision/,
    },
    {
      name: 'status: failStatic is not a boolean',
      family: 'nodes',
      key: 'status/lb9',
      value: '{"tables":{},"announced":[],"bgp":{},"failStatic":"yes","desiredRevision":1}',
      says: /status\/lb9: failStatic: "yes" is not true \| false/,
    },
    {
      name: 'status: tables is a list',
      family: 'nodes',
      key: 'status/lb9',
      value: '{"tables":[],"announced":[],"bgp":{},"failStatic":false,"desiredRevision":1}',
      says: /status\/lb9: tables: \[\] is not an object/,
    },
    {
      // A state word this version does not know (a newer agent's) keeps the record and reads `unknown`
      // (record-check.test.ts); a state that is not a word at all is still refused.
      name: 'status: a BFD state that is not text',
      family: 'nodes',
      key: 'status/lb9',
      value: '{"tables":{},"announced":[],"bgp":{},"failStatic":false,"desiredRevision":1,"bfd":{"198.18.2.1":7}}',
      says: /status\/lb9: bfd\.198\.18\.2\.1: 7 is not a string/,
    },
    {
      name: 'status: bfd is a list',
      family: 'nodes',
      key: 'status/lb9',
      value: '{"tables":{},"announced":[],"bgp":{},"failStatic":false,"desiredRevision":1,"bfd":["up"]}',
      says: /status\/lb9: bfd: \["up"\] is not an object/,
    },
    {
      name: 'status: a probe failure without its reason',
      family: 'nodes',
      key: 'status/lb9',
      value:
        '{"tables":{},"announced":[],"bgp":{},"failStatic":false,"desiredRevision":1,"probeFailures":{"web/a":{"sinceMs":1}}}',
      says: /status\/lb9: probeFailures\.web\/a\.reason: undefined is not a text of at most 1024 characters/,
    },
    {
      name: 'status: a probe failure at no time',
      family: 'nodes',
      key: 'status/lb9',
      value:
        '{"tables":{},"announced":[],"bgp":{},"failStatic":false,"desiredRevision":1,"probeFailures":{"web/a":{"reason":"timeout","sinceMs":-1}}}',
      says: /status\/lb9: probeFailures\.web\/a\.sinceMs: -1 is not a time/,
    },
    {
      name: 'status: more probe failures than a status may name',
      family: 'nodes',
      key: 'status/lb9',
      value: JSON.stringify({
        tables: {},
        announced: [],
        bgp: {},
        failStatic: false,
        desiredRevision: 1,
        probeFailures: Object.fromEntries(
          Array.from({ length: 257 }, (_, i) => [`web/m${i}`, { reason: 'timeout', sinceMs: 1 }]),
        ),
      }),
      says: /status\/lb9: probeFailures: 257 entries is more than the limit of 256/,
    },
    {
      name: 'health: a status other than up | down',
      family: 'health',
      key: 'health/lb9/web',
      value: '{"pool":"web","members":{"a":"maybe"}}',
      says: /health\/lb9\/web: members\.a: "maybe" is not up \| down/,
    },
    {
      name: 'health: a pool other than its key',
      family: 'health',
      key: 'health/lb9/web',
      value: '{"pool":"dns","members":{}}',
      says: /health\/lb9\/web: pool: "dns" is not the key's pool "web"/,
    },
    {
      name: 'health: more members than MAX_MEMBERS_PER_RECORD',
      family: 'health',
      key: 'health/lb9/web',
      value: bigMembers,
      says: /health\/lb9\/web: members: 100001 entries is more than the limit of 100000/,
    },
    {
      name: 'decided: "UP" is not up',
      family: 'decided',
      key: 'decided/web',
      value: '{"pool":"web","members":{"x":"UP"}}',
      says: /decided\/web: members\.x: "UP" is not up \| down/,
    },
    {
      name: 'decided: a slow-start step that is not a percent',
      family: 'decided',
      key: 'decided/web',
      value: '{"pool":"web","members":{"x":"up"},"ramp":{"x":{"percent":100,"sinceMs":1}}}',
      says: /decided\/web: ramp\.x\.percent: 100 is not a percent \(1-99\)/,
    },
    {
      name: 'decided: a slow-start time that is not a time',
      family: 'decided',
      key: 'decided/web',
      value: '{"pool":"web","members":{"x":"up"},"ramp":{"x":{"percent":20,"sinceMs":"now"}}}',
      says: /decided\/web: ramp\.x\.sinceMs: "now" is not a time/,
    },
    {
      name: 'decided: a ramp of a member decided down',
      family: 'decided',
      key: 'decided/web',
      value: '{"pool":"web","members":{"x":"up","y":"down"},"ramp":{"y":{"percent":20,"sinceMs":1}}}',
      says: /decided\/web: ramp\.y: the member is decided "down": it cannot ramp/,
    },
  ];

  test.each(cases)('$name: skipped and reported, the good records still delivered', async (c) => {
    const { prefix, store, key } = await fleetPrefix();
    // A good record of the same family beside the bad one.
    const reg = await store.registerNode({ name: 'lb1', address: '198.18.2.1' });
    await reg.reportHealth(new Map([['web/good', 'up']]));
    await reg.reportStatus({ tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 });
    const leader = await store.campaign('lb1');
    await store.writeDecided(new Map([['web/x', 'down']]), { leadership: leader });
    const errors: StoreError[] = [];
    const values: unknown[] = [];
    const listener = { onUpdate: (v: unknown) => values.push(v), onError: (e: StoreError) => errors.push(e) };
    const watch =
      c.family === 'nodes'
        ? await store.watchNodes(listener)
        : c.family === 'health'
          ? await store.watchHealthReports(listener)
          : await store.watchDecided(listener);
    await raw.put(key(c.key)).value(c.value);
    await until('reported', () => errors.find((e) => e.code === 'INVALID_RECORD'), 10_000, 20);
    const err = errors.find((e) => e.code === 'INVALID_RECORD') as StoreError;
    expect(err.message).toMatch(c.says);
    expect(err.key).toBe(c.key);
    const last = values.at(-1);
    if (c.family === 'decided') {
      // The pool keeps its last good record: x stays down.
      expect((last as { decided: Map<string, string> }).decided.get('web/x')).toBe('down');
      expect((await store.getDecided()).decided.get('web/x')).toBeUndefined(); // a plain read skips it
    } else if (c.family === 'health') {
      expect((last as { node: string }[]).map((h) => h.node)).toEqual(['lb1']);
    } else {
      const views = last as { name: string; record?: unknown; drained: boolean; status?: unknown }[];
      expect(views.find((v) => v.name === 'lb1')?.record).toBeDefined();
      const bad = views.find((v) => v.name === 'lb9');
      expect(bad?.record).toBeUndefined();
      expect(bad?.status).toBeUndefined();
      expect(bad?.drained ?? false).toBe(false);
    }
    // The CLI: the good records shown, no undefined / NaN, etcd unchanged.
    const before = await revision();
    const nodes = await cli(prefix, 'get', 'nodes', '-o', 'json');
    expect(nodes.code).toBe(0);
    expect(nodes.out).toContain('"lb1"');
    expect(nodes.out).not.toMatch(/undefined|NaN/);
    const status = await cli(prefix, 'status');
    expect(status.code).toBe(0);
    expect(status.out).not.toMatch(/undefined|NaN/);
    expect(await revision()).toBe(before);
    await watch.close();
    await leader.resign();
    await reg.close();
  });

  test('election: a campaign key that is not a node name leaves no leader and is refused by status', async () => {
    const { prefix, store, key } = await fleetPrefix();
    const errors: StoreError[] = [];
    const leaders: (string | undefined)[] = [];
    const watch = await store.observeLeader({ onUpdate: (l) => leaders.push(l), onError: (e) => errors.push(e) });
    await raw.put(key('election/aggregator/1234')).value('not a node!');
    await until('reported', () => errors.find((e) => e.code === 'INVALID_RECORD'), 10_000, 20);
    expect(errors[0]?.message).toMatch(/election\/aggregator\/1234: value: "not a node!" is not a node name/);
    expect(leaders.every((l) => l === undefined)).toBe(true);
    const before = await revision();
    const r = await cli(prefix, 'status');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/election\/aggregator\/1234: value: "not a node!" is not a node name/);
    expect(await revision()).toBe(before);
    await watch.close();
  });
});
