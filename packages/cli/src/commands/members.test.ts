/** `l4fleet get members`: every member across pools with its decision, new flows and who sees it down (memory store). */
import { MemoryFleetStore, type NodeStatusReport } from '@l4fleet/store';
import { beforeEach, describe, expect, test } from 'vitest';
import { fleetFiles, memoryCli, writeDecided } from '../cli.test-helper.js';

const file = fleetFiles('members');
const base: NodeStatusReport = { tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 };

const FLEET = `
hashSeed: 0x5eed
pools:
  - name: web
    healthCheck: { type: tcp }
    members:
      - { name: a, address: 198.18.0.21, port: 80 }
      - { name: b, address: 198.18.0.22, port: 80, weight: 2 }
      - { name: c, address: 198.18.0.23, port: 80 }
      - { name: d, address: 198.18.0.24, port: 80, state: draining }
      - { name: e, address: 198.18.0.25, port: 80, state: disabled }
      - { name: spare, address: 198.18.0.26, port: 80, backup: true }
  - name: dns
    healthCheck: { type: none }
    members:
      - { name: d1, address: 198.18.0.31, port: 53 }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
  - { address: 198.51.100.11, port: 53, protocol: udp, pool: dns }
`;

let store: MemoryFleetStore;
const cli = memoryCli(() => store);

describe('cli - get members', () => {
  beforeEach(async () => {
    store = new MemoryFleetStore();
    expect((await cli('apply', '-f', file('f.yaml', FLEET), '--new-fleet')).code).toBe(0);
    // c down; spare never decided (a backup the aggregator has not judged yet).
    await writeDecided(store, { 'web/a': 'up', 'web/b': 'up', 'web/c': 'down', 'web/d': 'up' });
    const failure = (reason: string) => ({ reason, sinceMs: Date.UTC(2026, 11, 5, 17, 0) });
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...base,
      probeFailures: { 'web/c': failure('ECONNREFUSED') },
    });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({
      ...base,
      probeFailures: { 'web/b': failure('timeout'), 'web/c': failure('timeout') },
    });
  });

  test('every member of every pool: state, weight, decision, whether it takes new flows, the nodes that see it down', async () => {
    const r = await cli('get', 'members');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toEqual([
      'POOL  MEMBER  ENDPOINT        STATE          WEIGHT  DECIDED    NEW FLOWS  SEEN DOWN BY',
      'web   a       198.18.0.21:80  active         1       up         yes',
      'web   b       198.18.0.22:80  active         2       up         yes        lb2: timeout',
      'web   c       198.18.0.23:80  active         1       down       no         lb1: ECONNREFUSED; lb2: timeout',
      'web   d       198.18.0.24:80  draining       1       up         no',
      'web   e       198.18.0.25:80  disabled       1       undecided  no',
      'web   spare   198.18.0.26:80  active backup  1       undecided  no',
      'dns   d1      198.18.0.31:53  active         1       unchecked  yes',
    ]);
  });

  test('--down: decided down or not yet decided, or seen down by a node; not disabled or unchecked members', async () => {
    const r = await cli('get', 'members', '--down');
    expect(r.out.split('\n').map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'POOL MEMBER',
      'web b',
      'web c',
      'web spare',
    ]);
  });

  test('--pool and -o json: the rows of one pool, each node its reason and since when', async () => {
    const r = await cli('get', 'members', '--pool', 'web', '--down', '-o', 'json');
    const rows = JSON.parse(r.out);
    expect(rows.map((m: { member: string }) => m.member)).toEqual(['b', 'c', 'spare']);
    expect(rows[1]).toEqual({
      pool: 'web',
      member: 'c',
      name: 'c',
      address: '198.18.0.23',
      port: 80,
      endpoint: '198.18.0.23:80',
      state: 'active',
      backup: false,
      weight: 1,
      decided: 'down',
      takesNewFlows: false,
      probeFailures: {
        lb1: { reason: 'ECONNREFUSED', since: '2026-12-05T17:00:00.000Z' },
        lb2: { reason: 'timeout', since: '2026-12-05T17:00:00.000Z' },
      },
    });
    const dns = JSON.parse((await cli('get', 'members', '--pool', 'dns', '-o', 'json')).out);
    expect(dns).toEqual([expect.objectContaining({ member: 'd1', decided: 'unchecked', takesNewFlows: true })]);
  });

  test('-o json: every row has at least the fields of the fleet file (README)', async () => {
    const rows = JSON.parse((await cli('get', 'members', '-o', 'json')).out);
    const stored = (await store.getDesired()).fleet.pools.flatMap((p) => p.members);
    expect(rows).toHaveLength(stored.length);
    rows.forEach((row: Record<string, unknown>, i: number) => {
      const m = stored[i] as (typeof stored)[number];
      expect(row).toMatchObject({ ...m, backup: m.backup === true });
    });
  });

  // The table escapes them; -o json keeps the reason as stored, as `status -o json` does (printable.ts: scripts read
  // JSON, which escapes C0): it held `\\x1b` text, unlike status's, for the same reason of the same node.
  test('control characters of a stored reason are printed escaped in the table, as stored in -o json (an older agent may have stored them)', async () => {
    await (await store.registerNode({ name: 'lb3' })).reportStatus({
      ...base,
      probeFailures: {
        'web/a': { reason: 'agent says drain: \u001b]0;pwned\u0007\u001b[2J\u009b1m', sinceMs: Date.UTC(2026, 11, 5) },
      },
    });
    const table = (await cli('get', 'members', '--pool', 'web')).out;
    expect(table).not.toMatch(/[^\P{Cc}\n]/u); // no control character but the line ends
    expect(table).toContain('lb3: agent says drain: \\x1b]0;pwned\\x07\\x1b[2J\\x9b1m');
    const json = (await cli('get', 'members', '--pool', 'web', '-o', 'json')).out;
    expect(JSON.parse(json)[0].probeFailures.lb3.reason).toBe(
      'agent says drain: \u001b]0;pwned\u0007\u001b[2J\u009b1m',
    );
  });

  test('a pool not in the fleet, and the members-only flags on another kind, are refused by name', async () => {
    const unknown = await cli('get', 'members', '--pool', 'api');
    expect([unknown.code, unknown.err]).toEqual([
      1,
      'error: --pool: "api" is not a pool of the fleet (pools: web, dns)',
    ]);
    const other = await cli('get', 'vips', '--down');
    expect([other.code, other.err]).toEqual([2, 'error: --down: only with `get members` (not vips)']);
  });
});
