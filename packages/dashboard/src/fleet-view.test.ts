import {
  announcementRule,
  buildVipTable,
  type Fleet,
  type MemberStatus,
  type PoolHistory,
  parseFleet,
  servedVips,
  vipKey,
} from '@l4fleet/config';
import type { NodeView } from '@l4fleet/store';
import { describe, expect, test, vi } from 'vitest';
import { ETCD_REACHABLE } from './etcd-check.js';
import { buildFleetView, createVipTableCache, type FleetInputs } from './fleet-view.js';

const fleet = parseFleet({
  hashSeed: 0x5eed,
  pools: [
    {
      name: 'web',
      members: [
        { name: 'a', address: '198.18.0.21', port: 80 },
        { name: 'b', address: '198.18.0.22', port: 80, weight: 2 },
        { name: 'c', address: '198.18.0.23', port: 80, state: 'disabled' },
      ],
    },
  ],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
});
const vip = fleet.vips[0] as (typeof fleet.vips)[number];
const KEY = vipKey(vip);
const decided = new Map([['web/a', 'down' as const]]);
const expected = buildVipTable(fleet, vip, decided).checksum;

function node(name: string, checksum: string | undefined, extra: Partial<NodeView> = {}): NodeView {
  return {
    name,
    record: { name, address: '198.18.0.11', registeredAt: '2026-01-01T00:00:00Z' },
    drained: false,
    status: {
      tables: checksum ? { [KEY]: checksum } : {},
      announced: [KEY],
      bgp: { '198.18.0.1': 'established' },
      failStatic: false,
      desiredRevision: 3,
    },
    ...extra,
  };
}

describe('fleet-view', () => {
  const view = buildFleetView({
    desired: { fleet, revision: 3, generation: 'g' },
    decided: { decided, ramps: new Map(), revision: 4 },
    nodes: [node('n2', 'deadbeefdeadbeef', { drained: true }), node('n1', expected), node('n3', undefined)],
    health: [
      { node: 'n1', members: new Map([['web/a', 'down' as const]]) },
      { node: 'n2', members: new Map([['web/a', 'up' as const]]) },
    ],
    leader: 'n1',
  });

  test('fleet-view - a node whose checksum differs from the derived table (or lacks one) is flagged', () => {
    expect(view.nodes.map((n) => [n.name, n.tables[0]?.match])).toEqual([
      ['n1', true],
      ['n2', false],
      ['n3', false],
    ]);
    expect(view.nodes[2]?.tables[0]?.checksum).toBeNull();
    expect(view.nodes.map((n) => [n.leader, n.drained])).toEqual([
      [true, false],
      [false, true],
      [false, false],
    ]);
  });

  test('fleet-view - a node still holding a table for a VIP the fleet does not serve is a problem, naming both', () => {
    const base = node('n1', expected);
    const stale = {
      ...base,
      status: { ...base.status!, tables: { [KEY]: expected, '198.51.100.10:443/tcp': 'aaaa' } },
    };
    const v = buildFleetView({
      desired: { fleet, revision: 3, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 4 },
      nodes: [stale, node('n2', expected)],
      health: [],
      leader: 'n1',
    });
    expect(v.problems).toEqual(['node n1 still holds tables for VIPs the fleet does not serve: 198.51.100.10:443/tcp']);
    expect(view.problems).toEqual([]);
  });

  test('fleet-view - BFD per peer when the node reports it, null when it runs none', () => {
    const bfd = { '198.18.0.1': 'up' as const, '2001:db8::1': 'down' as const };
    const n = node('n4', expected);
    const v = buildFleetView({
      desired: { fleet, revision: 3, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 4 },
      nodes: [{ ...n, status: { ...(n.status as NonNullable<NodeView['status']>), bfd } }, node('n5', expected)],
      health: [],
      leader: undefined,
    });
    expect(v.nodes.map((x) => [x.name, x.bfd])).toEqual([
      ['n4', bfd],
      ['n5', null],
    ]);
  });

  test('fleet-view - shares count every slot of the table; a down member has none, disabled is not listed', () => {
    const v = view.vips[0];
    expect(v?.checksum).toBe(expected);
    expect(v?.shares.map((s) => s.backend)).toEqual(['a', 'b']);
    expect(v?.shares[0]?.slots).toBe(0);
    expect(v?.shares[1]?.slots).toBe(251);
    expect(v?.emptySlots).toBe(0);
    expect(v?.announcedBy).toEqual(['n2', 'n1', 'n3']);
  });

  test("fleet-view - a VIP's sourceRanges are its sources; null when it admits every client", () => {
    expect(view.vips[0]?.sources).toBeNull();
    const ranged = parseFleet({ ...fleet, vips: [{ ...vip, sourceRanges: ['198.18.0.0/15'] }] });
    const v = buildFleetView({
      desired: { fleet: ranged, revision: 4, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 4 },
      nodes: [],
      health: [],
      leader: undefined,
    }).vips[0];
    expect(v?.sources).toEqual(['198.18.0.0/15']);
  });

  test('fleet-view - a disabled VIP is shown with its state and expects no table on the nodes', () => {
    expect(view.vips[0]?.state).toBe('enabled');
    const off = parseFleet({
      ...fleet,
      vips: [{ ...vip }, { ...vip, address: '198.51.100.11', state: 'disabled' }],
    });
    const v = buildFleetView({
      desired: { fleet: off, revision: 4, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 4 },
      nodes: [node('n1', expected)],
      health: [],
      leader: undefined,
    });
    expect(v.vips.map((r) => [r.key, r.state])).toEqual([
      [KEY, 'enabled'],
      ['198.51.100.11:80/tcp', 'disabled'],
    ]);
    // n1 holds the served VIP's table only, and that is all it should hold.
    expect(v.nodes[0]?.tables).toEqual([{ vip: KEY, checksum: expected, match: true }]);
  });

  test('fleet-view - a draining VIP is served as `l4fleet status` sees it: tables checked, minUpMembers withdrawal shown', () => {
    const drainingFleet = parseFleet({
      ...fleet,
      pools: [{ ...fleet.pools[0], minUpMembers: 2 }],
      vips: [{ ...vip, state: 'draining' }],
    });
    const dvip = drainingFleet.vips[0] as (typeof drainingFleet.vips)[number];
    const sum = buildVipTable(drainingFleet, dvip, decided).checksum;
    const v = buildFleetView({
      desired: { fleet: drainingFleet, revision: 6, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 6 },
      nodes: [node('n1', sum), node('n2', 'deadbeefdeadbeef')],
      health: [],
      leader: undefined,
    });
    // The CLI's rule (packages/cli/src/commands/status.ts): every served VIP has a table and is checked.
    const rule = announcementRule(drainingFleet, decided);
    const cliExpected = servedVips(drainingFleet).map((x) => vipKey(x));
    const cliWithdrawn = servedVips(drainingFleet).flatMap((x) => (rule(x) === undefined ? [] : [vipKey(x)]));
    expect(v.vips[0]?.state).toBe('draining');
    expect(v.nodes.map((n) => n.tables.map((t) => t.vip))).toEqual([cliExpected, cliExpected]);
    expect(v.nodes.map((n) => [n.name, n.tables[0]?.match])).toEqual([
      ['n1', true],
      ['n2', false],
    ]);
    expect(v.vips.filter((r) => r.notAnnounced !== null).map((r) => r.key)).toEqual(cliWithdrawn);
    expect(v.vips[0]?.notAnnounced).toBe("only 1 member takes new flows, fewer than the pool's minUpMembers 2");
  });

  test('fleet-view - a pool says when its backups take new flows (minActiveMembers)', () => {
    expect(view.pools[0]?.backupsServing).toBe(false); // no backup member
    const pga = parseFleet({
      ...fleet,
      pools: [
        {
          ...fleet.pools[0],
          minActiveMembers: 2,
          members: [...(fleet.pools[0]?.members ?? []), { name: 's', address: '198.18.0.29', port: 80, backup: true }],
        },
      ],
    });
    const at = (d: Map<string, 'up' | 'down'>) =>
      buildFleetView({
        desired: { fleet: pga, revision: 5, generation: 'g' },
        decided: { decided: d, ramps: new Map(), revision: 5 },
        nodes: [],
        health: [],
        leader: undefined,
      }).pools[0]?.backupsServing;
    expect(at(new Map())).toBe(false); // a and b take flows (c is disabled)
    expect(at(decided)).toBe(true); // a is down: one primary left, fewer than 2
  });

  test("fleet-view - a VIP says why the fleet's rule withdraws it: no member, or fewer than minUpMembers, take flows", () => {
    expect(view.vips[0]?.notAnnounced).toBeNull(); // b takes flows
    const withMinUp = parseFleet({ ...fleet, pools: [{ ...fleet.pools[0], minUpMembers: 2 }] });
    const at = (d: Map<string, 'up' | 'down'>, f = withMinUp) =>
      buildFleetView({
        desired: { fleet: f, revision: 5, generation: 'g' },
        decided: { decided: d, ramps: new Map(), revision: 5 },
        nodes: [],
        health: [],
        leader: undefined,
      }).vips[0]?.notAnnounced;
    expect(at(new Map())).toBeNull(); // a and b (c is disabled)
    expect(at(decided)).toBe("only 1 member takes new flows, fewer than the pool's minUpMembers 2");
    expect(at(new Map([...decided, ['web/b', 'down']]))).toBe('no member takes new flows');
    // A disabled VIP is marked by its state, not here.
    const off = parseFleet({ ...withMinUp, vips: [{ ...vip, state: 'disabled' }] });
    expect(at(decided, off)).toBeNull();
  });

  test('fleet-view - members carry the decision, how many nodes see them up / down / not at all, and who disagrees', () => {
    const a = view.pools[0]?.members.find((m) => m.name === 'a');
    // n1 sees a down as decided, n2 sees it up (it disagrees), n3 (live) reports nothing of it.
    expect(a).toMatchObject({
      decided: 'down',
      health: { up: 1, down: 1, unknown: 1, disagree: [{ node: 'n2', status: 'up' }], disagreeOmitted: 0 },
      endpoint: '198.18.0.21:80',
    });
    expect(view.pools[0]?.members.find((m) => m.name === 'b')?.decided).toBe('unknown');
    expect(view.pools[0]?.healthCheck).toBe('tcp, every 2000 ms, timeout 1000 ms, rise 2, fall 4');
  });

  /** The first pool's checks line in a view of the fleet whose first pool has these fields besides. */
  const checksLine = (extra: Record<string, unknown>) =>
    buildFleetView({
      desired: {
        fleet: parseFleet({ ...fleet, pools: [{ ...fleet.pools[0], ...extra }] }),
        revision: 5,
        generation: 'g',
      },
      decided: { decided: new Map(), ramps: new Map(), revision: 5 },
      nodes: [],
      health: [],
      leader: undefined,
    }).pools[0]?.healthCheck;

  test("fleet-view - a pool's additional health checks follow its healthCheck, each after ' and '", () => {
    expect(
      checksLine({
        healthCheck: { type: 'http', path: '/healthz' },
        additionalHealthChecks: [{ type: 'tcp', port: 9100 }],
      }),
    ).toBe(
      'http GET /healthz expect 200, every 2000 ms, timeout 1000 ms, rise 2, fall 4 and tcp port 9100, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
  });

  test('fleet-view - a pool that needs fewer than all its checks says how many', () => {
    expect(
      checksLine({
        healthCheck: { type: 'tcp' },
        additionalHealthChecks: [{ type: 'tcp', port: 9100 }],
        healthChecksRequired: 1,
      }),
    ).toBe(
      'at least 1 of: tcp, every 2000 ms, timeout 1000 ms, rise 2, fall 4; tcp port 9100, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
  });

  test('fleet-view - a member in slow start: its step on its row, and the expected checksum is the ramped table', () => {
    const ramps = new Map([['web/b', { percent: 40, sinceMs: 1 }]]);
    const ramped = buildVipTable(fleet, vip, new Map(), undefined, ramps).checksum;
    const whole = buildVipTable(fleet, vip, new Map()).checksum;
    expect(ramped).not.toBe(whole);
    const v = buildFleetView({
      desired: { fleet, revision: 3, generation: 'g' },
      decided: { decided: new Map(), ramps, revision: 5 },
      nodes: [node('n1', ramped), node('n2', whole)],
      health: [],
      leader: 'n1',
    });
    expect(v.pools[0]?.members.map((m) => [m.name, m.slowStartPercent])).toEqual([
      ['a', null],
      ['b', 40],
      ['c', null],
    ]);
    expect(v.nodes.map((n) => [n.name, n.tables[0]?.match])).toEqual([
      ['n1', true],
      ['n2', false],
    ]);
  });

  test('fleet-view - why each node sees a member down comes from its status record', () => {
    const withFailure = (name: string, reason: string): NodeView => {
      const n = node(name, expected);
      return {
        ...n,
        status: {
          ...(n.status as NonNullable<NodeView['status']>),
          probeFailures: { 'web/a': { reason, sinceMs: 1 } },
        },
      };
    };
    const v = buildFleetView({
      desired: { fleet, revision: 3, generation: 'g' },
      decided: { decided, ramps: new Map(), revision: 4 },
      nodes: [withFailure('n1', 'status 503 (expected 200)'), withFailure('n2', 'timeout'), node('n3', expected)],
      health: [],
      leader: 'n1',
    });
    const byName = new Map(v.pools[0]?.members.map((m) => [m.name, m.downReasons]));
    expect(byName.get('a')).toEqual({ n1: 'status 503 (expected 200)', n2: 'timeout' });
    expect(byName.get('b')).toEqual({});
  });

  /** A live node named at full length (63 characters, the most a node name may have), numbered `i`. */
  const longName = (i: number) => `node-${String(i).padStart(3, '0')}-${'x'.repeat(54)}`;
  /** Fleet inputs with `count` live nodes: every one sees every member up, except those of `down` (with a reason). */
  const fleetOfNodes = (count: number, down: readonly number[]): FleetInputs => {
    const names = Array.from({ length: count }, (_, i) => longName(i));
    const statuses = (name: string) =>
      new Map<string, MemberStatus>(
        ['web/a', 'web/b', 'web/c'].map((k) => [k, down.includes(names.indexOf(name)) ? 'down' : 'up']),
      );
    return {
      desired: { fleet, revision: 3, generation: 'g' },
      decided: { decided: new Map([['web/b', 'up' as const]]), ramps: new Map(), revision: 4 },
      nodes: names.map((n) => {
        const v = node(n, expected);
        if (!down.includes(names.indexOf(n))) return v;
        const failure = { reason: 'connect ECONNREFUSED 198.18.0.22:80', sinceMs: 1 };
        return {
          ...v,
          status: { ...(v.status as NonNullable<NodeView['status']>), probeFailures: { 'web/b': failure } },
        };
      }),
      health: names.map((n) => ({ node: n, members: statuses(n) })),
      leader: undefined,
    };
  };
  const memberB = (inputs: FleetInputs) => buildFleetView(inputs).pools[0]?.members.find((m) => m.name === 'b');

  test("fleet-view - a member's record grows with the nodes that disagree, not with the nodes: 60 more that agree add nothing", () => {
    // One node of 40 sees b down alone (the fleet decided it up); then 60 more nodes see it up, as decided.
    const alone = memberB(fleetOfNodes(40, [7]));
    const more = memberB(fleetOfNodes(100, [7]));
    expect(alone?.health).toEqual({
      up: 39,
      down: 1,
      unknown: 0,
      disagree: [{ node: longName(7), status: 'down' }],
      disagreeOmitted: 0,
    });
    expect(alone?.downReasons).toEqual({ [longName(7)]: 'connect ECONNREFUSED 198.18.0.22:80' });
    expect(more?.health).toMatchObject({ up: 99, down: 1, disagree: alone?.health.disagree });
    expect(JSON.stringify(more).length).toBe(JSON.stringify(alone).length);
  });

  test('fleet-view - at most 8 disagreeing nodes and 8 down reasons are named per member (first by name), the rest counted', () => {
    const down = Array.from({ length: 20 }, (_, i) => 40 + i);
    const b = memberB(fleetOfNodes(64, down));
    expect(b?.health).toMatchObject({ up: 44, down: 20, unknown: 0, disagreeOmitted: 12 });
    expect(b?.health.disagree).toEqual(down.slice(0, 8).map((i) => ({ node: longName(i), status: 'down' })));
    expect(Object.keys(b?.downReasons ?? {})).toEqual(down.slice(0, 8).map(longName));
    expect(b?.downReasonsOmitted).toBe(12);
    // A member not yet decided is held to up (tables count it up): the nodes that see it down disagree.
    const a = buildFleetView(fleetOfNodes(64, down)).pools[0]?.members.find((m) => m.name === 'a');
    expect(a).toMatchObject({ decided: 'unknown', health: { up: 44, down: 20, disagreeOmitted: 12 } });
  });

  test("fleet-view - the view's pools and members grow with members, not members x nodes", () => {
    // 40 and 99 nodes: the same number of digits in every count.
    const size = (nodes: number) => JSON.stringify(buildFleetView(fleetOfNodes(nodes, [])).pools).length;
    expect(size(99)).toBe(size(40));
  });

  test('fleet-view - a fleet without a seed still lists its VIPs and says why there is no table', () => {
    const { hashSeed: _, ...unseeded } = fleet;
    const v = buildFleetView({
      desired: { fleet: unseeded, revision: 1, generation: '' },
      decided: { decided: new Map(), ramps: new Map(), revision: 0 },
      nodes: [],
      health: [],
      leader: undefined,
    });
    expect(v.vips[0]?.checksum).toBeNull();
    expect(v.problems[0]).toMatch(/^vip 198\.51\.100\.10:80\/tcp: .*hashSeed/);
  });
});

describe('fleet-view - etcd reachability', () => {
  const inputs = {
    desired: { fleet, revision: 7, generation: 'g' },
    decided: { decided, ramps: new Map(), revision: 4 },
    nodes: [],
    health: [],
    leader: undefined,
  };

  test('etcd not answering: the first problem says since when, why, and which revision the page still shows', () => {
    const since = Date.UTC(2026, 11, 4, 16, 40, 12);
    const v = buildFleetView(inputs, { reachable: false, unreachableSinceMs: since, problem: 'etcd check: no answer' });
    expect(v.problems[0]).toBe(
      'etcd unreachable since 2026-12-04T16:40:12.000Z (etcd check: no answer): showing the last state read (revision 7)',
    );
    expect(v.etcd).toEqual({
      reachable: false,
      unreachableSince: '2026-12-04T16:40:12.000Z',
      problem: 'etcd check: no answer',
      watching: true,
    });
    expect(v.vips.map((x) => x.key)).toEqual([KEY]);
  });

  test('started during an outage: the line says nothing was read yet, also once etcd answers and until the watches open', () => {
    const empty = {
      desired: { fleet: { ...fleet, vips: [], pools: [] }, revision: 0, generation: '' },
      decided: { decided: new Map(), ramps: new Map(), revision: 0 },
      nodes: [],
      health: [],
      leader: undefined,
    };
    const since = Date.UTC(2026, 11, 4, 16, 40, 12);
    const down = buildFleetView(
      empty,
      { reachable: false, unreachableSinceMs: since, problem: 'etcd read leader: refused' },
      'etcd watch desired state: 14 UNAVAILABLE',
    );
    expect(down.problems).toEqual([
      'etcd unreachable since 2026-12-04T16:40:12.000Z (etcd read leader: refused): nothing read from it yet',
    ]);
    expect(down.etcd.watching).toBe(false);
    const answering = buildFleetView(empty, ETCD_REACHABLE, 'etcd watch desired state: 14 UNAVAILABLE');
    expect(answering.problems).toEqual([
      'not watching etcd yet (etcd watch desired state: 14 UNAVAILABLE): nothing read from it yet',
    ]);
    expect(answering.etcd).toEqual({ reachable: true, unreachableSince: null, problem: null, watching: false });
  });

  test('etcd answering (and by default): no such problem', () => {
    for (const v of [buildFleetView(inputs), buildFleetView(inputs, ETCD_REACHABLE)]) {
      expect(v.problems.filter((p) => p.startsWith('etcd'))).toEqual([]);
      expect(v.etcd).toEqual({ reachable: true, unreachableSince: null, problem: null, watching: true });
    }
  });
});

describe('fleet-view - table cache', () => {
  const member = (name: string, last: number) => ({ name, address: `198.18.0.${last}`, port: 80 });
  const twoPools = (apiWeight = 1) =>
    parseFleet({
      hashSeed: 0x5eed,
      pools: [
        { name: 'web', members: [member('a', 21), member('b', 22)] },
        { name: 'api', members: [{ ...member('x', 31), weight: apiWeight }, member('y', 32)] },
      ],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
        { address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'web', tableSize: 251 },
        { address: '198.51.100.12', port: 80, protocol: 'tcp', pool: 'api', tableSize: 251 },
      ],
    });
  const API = '198.51.100.12:80/tcp';
  const WEB = ['198.51.100.10:80/tcp', '198.51.100.10:443/tcp'];
  // Fresh maps and objects each time, as every watch delivers them: the cache must compare contents, not identity.
  const inputsOf = (
    f: Fleet,
    statuses: readonly (readonly [string, MemberStatus])[] = [],
    extra: Partial<FleetInputs> = {},
  ): FleetInputs => ({
    desired: { fleet: f, revision: 3, generation: 'g' },
    decided: { decided: new Map(statuses), ramps: new Map(), revision: 4 },
    nodes: [],
    health: [],
    leader: undefined,
    ...extra,
  });
  const built = (build: ReturnType<typeof vi.fn>) => build.mock.calls.map((c) => vipKey(c[1] as Fleet['vips'][number]));

  function cached() {
    const build = vi.fn(buildVipTable);
    const tables = createVipTableCache(build);
    const view = (inputs: FleetInputs) => buildFleetView(inputs, ETCD_REACHABLE, null, tables);
    return { build, view };
  }

  test("fleet-view - a change to one pool's decided status rebuilds only that pool's VIP tables; the view equals a full rebuild", () => {
    const { build, view } = cached();
    const f = twoPools();
    const first = view(inputsOf(f));
    expect(built(build)).toEqual([...WEB, API]);
    build.mockClear();
    expect(view(inputsOf(f))).toEqual(first);
    expect(build).not.toHaveBeenCalled();

    const down = inputsOf(f, [['api/x', 'down']]);
    const v = view(down);
    expect(built(build)).toEqual([API]);
    expect(v).toEqual(buildFleetView(down));
    expect(v.vips[2]?.checksum).not.toBe(first.vips[2]?.checksum);
    expect(v.vips.slice(0, 2)).toEqual(first.vips.slice(0, 2));
  });

  test("fleet-view - a ramp, a history record or a pool's definition rebuilds that pool's VIPs; the seed every VIP", () => {
    const { build, view } = cached();
    const f = twoPools();
    view(inputsOf(f));
    const history: PoolHistory = {
      pool: 'api',
      current: [
        { ...member('x', 31), weight: 3 },
        { ...member('y', 32), weight: 1 },
      ],
      earlier: [],
    };
    const cases: [string, FleetInputs, string[]][] = [
      [
        'ramp',
        inputsOf(f, [], {
          decided: { decided: new Map(), ramps: new Map([['web/a', { percent: 20, sinceMs: 1 }]]), revision: 5 },
        }),
        WEB,
      ],
      ['ramp gone', inputsOf(f), WEB],
      ['history', inputsOf(f, [], { history: { history: new Map([['api', history]]), revision: 6 } }), [API]],
      ['history gone', inputsOf(f), [API]],
      ['definition', inputsOf(twoPools(2)), [API]],
      ['seed', inputsOf({ ...twoPools(2), hashSeed: 0x5eee }), [...WEB, API]],
    ];
    for (const [what, inputs, rebuilt] of cases) {
      build.mockClear();
      const v = view(inputs);
      expect({ what, rebuilt: built(build) }).toEqual({ what, rebuilt });
      expect(v).toEqual(buildFleetView(inputs));
    }
  });

  test('fleet-view - a changed VIP is rebuilt alone; a removed one is forgotten; a failure is shown again', () => {
    const { build, view } = cached();
    const f = twoPools();
    view(inputsOf(f));
    build.mockClear();
    const resized = { ...f, vips: f.vips.map((v) => (vipKey(v) === API ? { ...v, tableSize: 509 } : v)) };
    expect(view(inputsOf(resized)).vips[2]?.tableSize).toBe(509);
    expect(built(build)).toEqual([API]);

    view(inputsOf({ ...f, vips: f.vips.slice(0, 2) }));
    build.mockClear();
    view(inputsOf(f));
    expect(built(build)).toEqual([API]);

    const { hashSeed: _, ...unseeded } = f;
    const first = view(inputsOf(unseeded));
    build.mockClear();
    const again = view(inputsOf(unseeded));
    expect(build).not.toHaveBeenCalled();
    expect(again.problems).toEqual(first.problems);
    expect(again.problems).toHaveLength(3);
  });
});
