/**
 * `l4fleet status` shows the records each node's agent had to reject (issue 12: a bad etcd record is visible in the
 * node's status), read defensively since a status record is etcd data like any other.
 */
import { type DecidedState, MemoryFleetStore, type NodeStatusReport } from '@l4fleet/store';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import type { Logger } from 'pino';
import { describe, expect, test } from 'vitest';
import { memoryCli, writeDecided } from '../cli.test-helper.js';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';
import { checkNodes, statusAgeCell } from './status.js';

const base: NodeStatusReport = { tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 };

async function status(store: MemoryFleetStore, ...argv: string[]) {
  const r = await memoryCli(() => store)('status', ...argv);
  return { code: r.code, out: [r.out, r.err].filter((t) => t !== '').join('\n') };
}

describe('cli status - rejected records', () => {
  test('a node that rejected records: counted in the table and the JSON, with the last message', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    const last = { family: 'nodes', code: 'INVALID_RECORD', error: 'nodes/lb9: address: 7 is not text', at: '' };
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...base,
      rejectedRecords: { total: 3, byFamily: { nodes: 3 }, last },
    } as NodeStatusReport);
    await (await store.registerNode({ name: 'lb2' })).reportStatus(base);
    // a hand-written status whose rejectedRecords is nonsense counts as none
    await (await store.registerNode({ name: 'lb3' })).reportStatus({
      ...base,
      rejectedRecords: { total: 'many' },
    } as NodeStatusReport);

    const table = await status(store);
    expect(table.code).toBe(0);
    expect(table.out).toContain('Node lb1 rejected 3 record(s) from etcd; last: nodes/lb9: address: 7 is not text');
    expect(table.out).toMatch(/^lb1\s+up\s+no\s+no\s+-\s+1\s.*\s3\s+\d+s$/m);
    expect(table.out).toMatch(/^lb2\s+up\s+no\s+no\s+-\s+1\s.*\s0\s+\d+s$/m);
    expect(table.out).not.toContain('Node lb3 rejected');

    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; rejectedRecords: number; lastRejected: string | null }[];
    };
    expect(json.nodes.map((n) => [n.name, n.rejectedRecords, n.lastRejected])).toEqual([
      ['lb1', 3, last.error],
      ['lb2', 0, null],
      ['lb3', 0, null],
    ]);
  });
});

describe('cli status - BFD as each node reports it', () => {
  test('a BFD column (one state, or each peer) and the JSON; nodes without BFD show -', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...base, bfd: { '198.18.2.1': 'up' } });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({
      ...base,
      bfd: { '198.18.2.1': 'shutdown', '198.18.3.1': 'up' },
    });
    await (await store.registerNode({ name: 'lb3' })).reportStatus(base);
    await (await store.registerNode({ name: 'lb4' })).reportStatus({ ...base, bfd: {} });

    const table = await status(store);
    expect(table.out).toMatch(/^NODE\s+LEASE\s+DRAINED\s+FAIL-STATIC\s+BFD\s+REVISION/m);
    expect(table.out).toMatch(/^lb1\s+up\s+no\s+no\s+up\s+1\s/m);
    expect(table.out).toMatch(/^lb2\s+up\s+no\s+no\s+198\.18\.2\.1 shutdown, 198\.18\.3\.1 up\s+1\s/m);
    expect(table.out).toMatch(/^lb3\s+up\s+no\s+no\s+-\s+1\s/m);
    expect(table.out).toMatch(/^lb4\s+up\s+no\s+no\s+no session\s+1\s/m);

    const json = JSON.parse((await status(store, '-o', 'json')).out) as { nodes: { name: string; bfd: unknown }[] };
    expect(json.nodes.map((n) => [n.name, n.bfd])).toEqual([
      ['lb1', { '198.18.2.1': 'up' }],
      ['lb2', { '198.18.2.1': 'shutdown', '198.18.3.1': 'up' }],
      ['lb3', null],
      ['lb4', {}],
    ]);
  });
});

describe('cli status - a node alone in seeing members down', () => {
  test('members a node sees down that the fleet decides up are named with its reasons; decided-down ones are not', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'tcp' }));
    await writeDecided(store, { 'web/a': 'up', 'web/b': 'up', 'web/c': 'down' });
    const failure = (reason: string) => ({ reason, sinceMs: 1 });
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...base,
      probeFailures: { 'web/c': failure('ECONNREFUSED') },
    });
    await (await store.registerNode({ name: 'lb3' })).reportStatus({
      ...base,
      probeFailures: { 'web/a': failure('timeout'), 'web/b': failure('timeout'), 'web/c': failure('timeout') },
    });
    const r = await status(store);
    expect(r.out).toContain(
      'Node lb3 sees 2 member(s) down that the fleet does not: web/a (timeout), web/b (timeout); check the path from lb3 (l4fleet probe there)',
    );
    expect(r.out).not.toContain('Node lb1 sees');
    const json = JSON.parse((await status(store, '-o', 'json')).out);
    expect(json.nodes.find((n: { name: string }) => n.name === 'lb3').seesDownAlone).toEqual({
      'web/a': 'timeout',
      'web/b': 'timeout',
    });
  });
});

describe('cli status - text from status records is shown escaped', () => {
  // A reason is a backend agent's words and a refused record's message quotes etcd data: an escape sequence in one
  // would retitle or clear the operator's terminal (`get members` escaped the same reasons already).
  test('probe-failure reasons, member keys and the last refused record: control characters as \\xNN; -o json as written', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'tcp' }));
    await writeDecided(store, { 'web/a': 'up', 'web/b': 'up' });
    const reason = 'drain # \u009b2J\u001b]0;owned\u0007';
    const error = 'nodes/lb9: address: "\u001b[2J" is not an IP address\u009b';
    await (await store.registerNode({ name: 'lb3' })).reportStatus({
      ...base,
      probeFailures: { 'web/a': { reason, sinceMs: 1 }, 'web/b\u001b[1m': { reason: 'timeout', sinceMs: 1 } },
      rejectedRecords: { total: 1, byFamily: { nodes: 1 }, last: { family: 'nodes', code: 'INVALID_RECORD', error } },
    } as NodeStatusReport);
    const r = await status(store);
    expect(r.code).toBe(0);
    expect([...r.out].filter((c) => '\u001b\u009b\u0007'.includes(c))).toEqual([]); // ESC, CSI, BEL
    expect(r.out).toContain('web/a (drain # \\x9b2J\\x1b]0;owned\\x07), web/b\\x1b[1m (timeout)');
    expect(r.out).toContain('last: nodes/lb9: address: "\\x1b[2J" is not an IP address\\x9b');
    const json = JSON.parse((await status(store, '-o', 'json')).out);
    const lb3 = json.nodes.find((n: { name: string }) => n.name === 'lb3');
    expect(lb3.seesDownAlone['web/a']).toBe(reason);
    expect(lb3.lastRejected).toBe(error);
  });
});

describe('cli status - a disabled VIP', () => {
  test('counted as disabled, and a node without its table is not flagged (no node serves it)', async () => {
    const store = new MemoryFleetStore();
    const fleet = twoPoolFleet({ type: 'none' });
    await store.apply({
      ...fleet,
      vips: fleet.vips.map((v) => (v.protocol === 'udp' ? { ...v, state: 'disabled' as const } : v)),
    });
    const expected = JSON.parse((await status(store, '-o', 'json')).out).expectedChecksums as Record<string, string>;
    expect(Object.keys(expected)).toEqual(['198.51.100.10:80/tcp']);
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...base, tables: expected });
    const table = await status(store);
    expect(table.out).toContain('VIPs: 2 (disabled 1)  pools: 2');
    expect(table.out).toContain('0 with differing tables');
    expect(table.out).toMatch(/^lb1\s+up\s+no\s+no\s+-\s+1\s+ok\s+0\s+\d+s$/m);
  });
});

describe('cli status - VIPs the fleet withdraws', () => {
  test('a pool below its minUpMembers, and one with no member taking flows: named with the reason; JSON too', async () => {
    const store = new MemoryFleetStore();
    const fleet = twoPoolFleet({ type: 'tcp' });
    await store.apply({
      ...fleet,
      pools: fleet.pools.map((p) => (p.name === 'web' ? { ...p, minUpMembers: 3 } : p)),
    });
    await store.writeDecided(new Map([['web/a', 'down']]));
    const table = await status(store);
    expect(table.out).toContain(
      "VIP 198.51.100.10:80/tcp withdrawn by every node: only 2 members take new flows, fewer than the pool's minUpMembers 3",
    );
    expect(table.out).not.toContain('VIP 198.51.100.11');
    expect(JSON.parse((await status(store, '-o', 'json')).out).withdrawn).toEqual([
      {
        vip: '198.51.100.10:80/tcp',
        reason: "only 2 members take new flows, fewer than the pool's minUpMembers 3",
      },
    ]);
  });
});

describe('cli status - what each node announces', () => {
  test("the JSON names each node's announced VIPs from its status record; [] once drained, null without a record", async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...base, announced: ['198.51.100.10:80/tcp'] });
    await (await store.registerNode({ name: 'lb2' })).reportStatus(base);
    await store.registerNode({ name: 'lb3' });
    await store.setNodeDrain('lb2', true);

    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; drained: boolean; announced: string[] | null }[];
    };
    expect(json.nodes.map((n) => [n.name, n.drained, n.announced])).toEqual([
      ['lb1', false, ['198.51.100.10:80/tcp']],
      ['lb2', true, []],
      ['lb3', false, null],
    ]);
  });
});

describe('cli status - how old each node status record is', () => {
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

  test('checkNodes: the age of each status record in s (null without one), from its `at`', () => {
    const now = Date.parse('2026-12-06T05:00:00.000Z');
    const view = (name: string, at: string | undefined) => ({
      name,
      record: { name, address: '198.18.0.1', registeredAt: '2026-12-06T04:00:00.000Z' },
      drained: false,
      status: at === undefined ? undefined : { ...base, at },
    });
    const checks = checkNodes(
      [
        view('lb1', '2026-12-06T04:59:57.500Z'),
        view('lb2', '2026-12-06T03:00:00.000Z'),
        view('lb3', undefined),
        view('lb4', 'not a time'),
      ],
      new Map(),
      new Map(),
      now,
    );
    expect(checks.map((c) => [c.name, c.statusAgeS])).toEqual([
      ['lb1', 2],
      ['lb2', 7_200],
      ['lb3', null],
      ['lb4', null],
    ]);
  });

  test('statusAgeCell: s, then m, then h; - without a record', () => {
    expect([null, 0, 59, 119, 120, 7_199, 7_200, 200_000].map(statusAgeCell)).toEqual([
      '-',
      '0s',
      '59s',
      '119s',
      '2m',
      '119m',
      '2h',
      '55h',
    ]);
  });

  test('a STATUS AGE column, statusAgeS in the JSON, and a line saying what LEASE up means', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...base, at: ago(3 * 3_600_000 + 60_000) });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({ ...base, at: ago(30 * 60_000 + 10_000) });
    await store.registerNode({ name: 'lb3' });

    const table = await status(store);
    expect(table.out).toMatch(
      /^NODE\s+LEASE\s+DRAINED\s+FAIL-STATIC\s+BFD\s+REVISION\s+TABLES\s+REJECTED\s+STATUS AGE$/m,
    );
    expect(table.out).toMatch(/^lb1\s+up\s+no\s+no\s+-\s+1\s.*\s0\s+3h$/m);
    expect(table.out).toMatch(/^lb2\s+up\s+no\s+no\s+-\s+1\s.*\s0\s+30m$/m);
    expect(table.out).toMatch(/^lb3\s+up\s+.*no status\s+0\s+-$/m);
    expect(table.out).toContain('LEASE up: renewed within the last half of its TTL');

    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; statusAgeS: number | null }[];
    };
    expect(json.nodes.map((n) => [n.name, n.statusAgeS === null ? null : n.statusAgeS >= 10_800])).toEqual([
      ['lb1', true],
      ['lb2', false],
      ['lb3', null],
    ]);
  });
});

describe('cli status - a node whose agent stopped renewing its lease', () => {
  test('LEASE late Ns once less than half the TTL is left, counted in the summary and in the JSON', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    await (await store.registerNode({ name: 'lb1' })).reportStatus(base);
    await (await store.registerNode({ name: 'lb2' }, { leaseTtlS: 10 })).reportStatus(base);
    await (await store.registerNode({ name: 'lb3' }, { leaseTtlS: 10 })).reportStatus(base);
    store.ageLease('lb2', 4); // 6 s of 10 left: a renewal every 3.3 s keeps a live agent here
    store.ageLease('lb3', 7); // 3 s left: no renewal for 7 s

    const table = await status(store);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^lb1\s+up\s+no\s/m);
    expect(table.out).toMatch(/^lb2\s+up\s+no\s/m);
    expect(table.out).toMatch(/^lb3\s+late 3s\s+no\s/m);
    expect(table.out).toContain('Nodes: 3 registered (1 renewal late: lb3), 0 drained');

    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; lease: boolean; leaseRemainingS: number | null; leaseLate: boolean }[];
    };
    expect(json.nodes.map((n) => [n.name, n.lease, n.leaseRemainingS, n.leaseLate])).toEqual([
      ['lb1', true, 10, false],
      ['lb2', true, 6, false],
      ['lb3', true, 3, true],
    ]);
  });

  test('lease times that cannot be read: every other column still shown, and the reason said', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'none' }));
    await (await store.registerNode({ name: 'lb1' })).reportStatus(base);
    store.nodeLeases = async () => {
      throw new Error('lease service unavailable');
    };
    const table = await status(store);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/^lb1\s+up\s+no\s/m);
    expect(table.out).toContain(
      'Lease times not read (LEASE shows up for every registered node): lease service unavailable',
    );
  });
});

describe('cli status - a node holding a table the fleet no longer has', () => {
  // Only the expected keys were compared: a node still serving a removed (or disabled) VIP's table read "ok".
  test('EXTRA: the keys in TABLES and in the JSON, and the node counted with differing tables', async () => {
    const store = new MemoryFleetStore();
    const fleet = twoPoolFleet({ type: 'none' });
    await store.apply({
      ...fleet,
      vips: fleet.vips.map((v) => (v.protocol === 'udp' ? { ...v, state: 'disabled' as const } : v)),
    });
    const expected = JSON.parse((await status(store, '-o', 'json')).out).expectedChecksums as Record<string, string>;
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...base, tables: expected });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({
      ...base,
      tables: { ...expected, '198.51.100.10:53/udp': 'aaaa', '198.51.100.99:80/tcp': 'bbbb' },
    });
    await (await store.registerNode({ name: 'lb3' })).reportStatus({
      ...base,
      tables: { '198.51.100.99:80/tcp': 'bbbb' },
    });
    const table = await status(store);
    expect(table.out).toContain('2 with differing tables');
    expect(table.out).toMatch(/^lb1\s+up\s+no\s+no\s+-\s+1\s+ok\s+0\s+\d+s$/m);
    expect(table.out).toMatch(
      /^lb2\s+up\s+no\s+no\s+-\s+1\s+EXTRA: 198\.51\.100\.10:53\/udp 198\.51\.100\.99:80\/tcp\s/m,
    );
    expect(table.out).toMatch(
      /^lb3\s+up\s+no\s+no\s+-\s+1\s+DIFFER: 198\.51\.100\.10:80\/tcp; EXTRA: 198\.51\.100\.99:80\/tcp\s/m,
    );
    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; mismatched: string[]; extraTables: string[] }[];
    };
    expect(json.nodes.map((n) => [n.name, n.mismatched, n.extraTables])).toEqual([
      ['lb1', [], []],
      ['lb2', [], ['198.51.100.10:53/udp', '198.51.100.99:80/tcp']],
      ['lb3', ['198.51.100.10:80/tcp'], ['198.51.100.99:80/tcp']],
    ]);
  });
});

describe('cli status - a node seeing more members down than its status record lists', () => {
  // The record lists the first 256 by key and counts the rest in probeFailuresOmitted; status ignored that count,
  // so a node alone in seeing members past the first 256 down was not named at all.
  test('the omitted count is said in the lone-view line (even with none listed alone) and in the JSON', async () => {
    const store = new MemoryFleetStore();
    await store.apply(twoPoolFleet({ type: 'tcp' }));
    await writeDecided(store, { 'web/a': 'up', 'web/b': 'up', 'web/c': 'down' });
    const failure = (reason: string) => ({ reason, sinceMs: 1 });
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...base,
      probeFailures: { 'web/c': failure('timeout') },
      probeFailuresOmitted: 44,
    });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({
      ...base,
      probeFailures: { 'web/a': failure('timeout') },
      probeFailuresOmitted: 7,
    });
    await (await store.registerNode({ name: 'lb3' })).reportStatus(base);
    const r = await status(store);
    expect(r.out).toContain(
      'Node lb1 sees 44 member(s) down beyond the ones its status record lists (some may be ones the fleet decides up); check the path from lb1 (l4fleet probe there)',
    );
    expect(r.out).toContain(
      'Node lb2 sees 1 member(s) down that the fleet does not: web/a (timeout), and 7 more down its status record does not list; check the path from lb2 (l4fleet probe there)',
    );
    expect(r.out).not.toContain('Node lb3 sees');
    const json = JSON.parse((await status(store, '-o', 'json')).out) as {
      nodes: { name: string; seesDownOmitted: number }[];
    };
    expect(json.nodes.map((n) => [n.name, n.seesDownOmitted])).toEqual([
      ['lb1', 44],
      ['lb2', 7],
      ['lb3', 0],
    ]);
  });
});

/**
 * The memory store reading `decided/web` as the etcd store does when the record does not decode: skipped, and logged
 * to the store's logger (store record-family.ts warnInvalidRecord), here on every read.
 */
class RefusingDecidedStore extends MemoryFleetStore {
  log: Logger | undefined;
  override async getDecided(): Promise<DecidedState> {
    for (let i = 0; i < 2; i++) {
      this.log?.warn({
        event: 'invalidRecord',
        key: 'decided/web',
        code: 'INVALID_RECORD',
        err: 'decided/web: members.c: "draining" is not up | down',
      });
    }
    return await super.getDecided();
  }
}

describe('cli status - records the CLI itself could not read', () => {
  test.each(['table', 'json'])('-o %s: each refused record said once on stderr, key and reason', async (format) => {
    const store = new RefusingDecidedStore();
    await store.apply(twoPoolFleet({ type: 'tcp' }));
    await writeDecided(store, { 'dns/d1': 'up' });
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    const code = await runCli(['status', '-o', format], io, {
      openStore: (_flags, log) => {
        store.log = log;
        return store;
      },
    });
    expect(code).toBe(0);
    const said = err
      .join('\n')
      .split('\n')
      .filter((l) => l.includes('decided/web'));
    expect(said).toEqual([
      'warning: skipped a record this l4fleet cannot read: decided/web: members.c: "draining" is not up | down',
    ]);
    if (format === 'json') expect(() => JSON.parse(out.join('\n'))).not.toThrow();
  });
});
