import { type MemberStatus, parseFleet } from '@l4fleet/config';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { largeFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import { EtcdFleetStore } from './etcd-store.js';
import type { DesiredState, FleetStore } from './types.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });

const fleetOf = (members: number, seed?: number) =>
  parseFleet({
    ...(seed === undefined ? {} : { hashSeed: seed }),
    pools: [
      {
        name: 'web',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.${i >> 8}.${i & 255}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/** Polls until `fn` is truthy (10 s, every 50 ms). */
const until = <T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000) => waitUntil(what, fn, timeoutMs, 50);

describe('store - etcd (real)', () => {
  let etcd: EtcdHandle;
  const stores: FleetStore[] = [];
  const open = (prefix = `/t-${Math.random().toString(36).slice(2, 8)}`, ttl?: { dialTimeoutMs: number }) => {
    const s = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger, ...ttl });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  test('apply/get round trip; the seed is generated once and kept', async () => {
    const store = open();
    expect(await store.getDesired()).toMatchObject({ revision: 0, fleet: { pools: [], vips: [] } });
    const r1 = await store.apply(fleetOf(3), { expectRevision: 0 });
    const got = await store.getDesired();
    expect(got.revision).toBe(r1.revision);
    expect(got.fleet).toEqual({ ...fleetOf(3), hashSeed: r1.hashSeed });
    const r2 = await store.apply(fleetOf(4), { expectRevision: r1.revision });
    expect(r2.hashSeed).toBe(r1.hashSeed);
    const r3 = await store.apply(fleetOf(4, 42));
    expect(r3.hashSeed).toBe(42);
  });

  test('a large fleet (100 VIPs x 1,000 members) is chunked and reads back whole', async () => {
    const fleet = largeFleet(100, 1_000);
    const prefix = `/big-${Math.random().toString(36).slice(2, 8)}`;
    const store2 = open(prefix);
    await store2.apply(fleet);
    const r = await store2.apply(fleet);
    expect(r.chunks).toBeGreaterThan(1);
    const gens = await etcd.etcdctl('get', '--prefix', '--keys-only', `${prefix}/v1/desired/gen/`);
    const names = new Set(
      gens
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((k) => k.split('/')[5]),
    );
    expect([...names]).toEqual([r.generation]); // the first generation was collected by the second apply
    const got = await store2.getDesired();
    expect(got.fleet.pools.length).toBe(100);
    expect(got.fleet).toEqual(fleet);
  });

  test('invalid stored state is reported, apply after it repairs; old generations are collected', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const store = open(prefix);
    await store.apply(fleetOf(2, 5));
    await store.apply(fleetOf(3, 5));
    const gens = await etcd.etcdctl('get', '--prefix', '--keys-only', `${prefix}/v1/desired/gen/`);
    expect(gens.trim()).toBe(''); // small fleets live inline in the pointer: no chunk keys at all
    await etcd.etcdctl('put', `${prefix}/v1/desired/current`, 'not json');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    const r = await store.apply(fleetOf(1, 5));
    expect((await store.getDesired()).revision).toBe(r.revision);
  });

  test('concurrent apply: one wins, the other fails with CONFLICT and changes nothing', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const a = open(prefix);
    const b = open(prefix);
    const base = await a.apply(fleetOf(1, 9));
    const results = await Promise.allSettled([
      a.apply(fleetOf(2), { expectRevision: base.revision }),
      b.apply(fleetOf(3), { expectRevision: base.revision }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toBeInstanceOf(StoreError);
    expect(failed[0]!.reason.code).toBe('CONFLICT');
    const winner = (ok[0] as PromiseFulfilledResult<{ revision: number }>).value;
    const now = await a.getDesired();
    expect(now.revision).toBe(winner.revision);
    expect([2, 3]).toContain(now.fleet.pools[0]!.members.length);
    const gens = await a.getDesired();
    expect(gens.generation).toBeTruthy();
    await expect(b.apply(fleetOf(4), { expectRevision: base.revision })).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  test('watch delivers every apply exactly once, in order, across an etcd restart', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    const reader = open(prefix);
    await writer.apply(fleetOf(1, 3));
    const seen: DesiredState[] = [];
    const watch = await reader.watchDesired({ onUpdate: (s) => seen.push(s), onError: () => undefined });
    await writer.apply(fleetOf(2));
    await until('update before restart', () => seen.length === 2);
    await etcd.restart();
    // Updates while the reader is reconnecting must arrive too.
    const r3 = await until('write after restart', () => writer.apply(fleetOf(3)).catch(() => undefined));
    const r4 = await writer.apply(fleetOf(4));
    await until('updates after restart', () => seen.at(-1)?.revision === r4.revision, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.map((s) => s.fleet.pools[0]!.members.length)).toEqual([1, 2, 3, 4]);
    expect(seen[2]!.revision).toBe(r3.revision);
    const revs = seen.map((s) => s.revision);
    expect(new Set(revs).size).toBe(revs.length);
    await watch.close();
  });

  test('a watch behind a compacted revision re-reads the whole state', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    const reader = open(prefix);
    await writer.apply(fleetOf(1, 3));
    const seen: number[] = [];
    const errors: string[] = [];
    const watch = await reader.watchDesired({
      onUpdate: (s) => seen.push(s.fleet.pools[0]!.members.length),
      onError: (e) => errors.push(e.code),
    });
    await etcd.kill(); // the watcher disconnects; while away, the history it needs is compacted
    await etcd.start();
    await until('write', () => writer.apply(fleetOf(2)).catch(() => undefined));
    const r3 = await writer.apply(fleetOf(3));
    await etcd.etcdctl('compact', String(r3.revision));
    await until('resync to the latest', () => seen.at(-1) === 3, 15_000);
    expect(seen[0]).toBe(1);
    await watch.close();
  });

  test('a quiet watch whose resume revision was compacted while etcd restarted resyncs and sees the next apply', async () => {
    // etcd 3.4 cancels such a watch with an empty cancel_reason (etcd3 reports `Watcher canceled: `): without a
    // check of the resume revision it was restarted at the same compacted revision for ever.
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    const reader = open(prefix);
    await writer.apply(fleetOf(1, 3));
    const seen: number[] = [];
    const errors: string[] = [];
    const watch = await reader.watchDesired({
      onUpdate: (s) => seen.push(s.fleet.pools[0]!.members.length),
      onError: (e) => errors.push(e.code),
    });
    await until('first fleet', () => seen.length === 1);
    // Writes elsewhere only: this prefix stays quiet while etcd's revision moves on and is compacted.
    const elsewhere = open();
    await elsewhere.apply(fleetOf(1));
    const last = await elsewhere.apply(fleetOf(2));
    await etcd.etcdctl('compact', String(last.revision));
    await etcd.restart();
    await until('apply after restart', () => writer.apply(fleetOf(2)).catch(() => undefined));
    await until('the new fleet arrives', () => seen.at(-1) === 2, 15_000);
    expect(errors).toContain('COMPACTED');
    await watch.close();
  });

  test('invalid state written by hand is an error event; the consumer keeps its last good fleet', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    const reader = open(prefix);
    await writer.apply(fleetOf(2, 3));
    const seen: number[] = [];
    const errors: StoreError[] = [];
    const watch = await reader.watchDesired({
      onUpdate: (s) => seen.push(s.fleet.pools[0]!.members.length),
      onError: (e) => errors.push(e),
    });
    await etcd.etcdctl('put', `${prefix}/v1/desired/current`, '{"schema":1}');
    await until('error event', () => errors.some((e) => e.code === 'INVALID_RECORD'));
    expect(seen).toEqual([2]);
    await writer.apply(fleetOf(5));
    await until('recovery', () => seen.at(-1) === 5);
    await watch.close();
  });

  test('a pointer deleted by hand: a restarted reader refuses (no empty fleet) until recover replaces it', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    await writer.apply(fleetOf(2, 3));
    await writer.writeDecided(new Map([['web/198.18.0.1:80', 'up']]));
    await etcd.etcdctl('del', `${prefix}/v1/desired/current`);
    // A node starting now (or restarted) reads etcd for the first time.
    const reader = open(prefix);
    const seen: DesiredState[] = [];
    const errors: StoreError[] = [];
    const watch = await reader.watchDesired({ onUpdate: (s) => seen.push(s), onError: (e) => errors.push(e) });
    expect(seen).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('decided/web remains')]);
    await expect(reader.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    await writer.apply(fleetOf(4, 3), { recoverInvalid: true });
    await until('the recovered fleet', () => seen.at(-1)?.fleet.pools[0]?.members.length === 4);
    await watch.close();
  });

  test('lease expiry removes a node; drain flag survives; health reports vanish with the node', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const agent = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    const observer = open(prefix);
    const reg = await agent.registerNode({ name: 'lb1', address: '198.18.2.1' }, { leaseTtlS: 2 });
    await reg.reportHealth(
      new Map([
        ['web/198.18.0.1:80', 'up'],
        ['web/198.18.0.2:80', 'down'],
        ['dns/a', 'up'],
      ]),
    );
    await reg.reportStatus({
      tables: { '198.51.100.10:80/tcp': 'abc' },
      announced: [],
      bgp: {},
      failStatic: false,
      desiredRevision: 1,
    });
    await observer.setNodeDrain('lb1', true);
    const nodes = await observer.listNodes();
    expect(nodes).toMatchObject([
      {
        name: 'lb1',
        drained: true,
        record: { name: 'lb1', address: '198.18.2.1' },
        status: { tables: { '198.51.100.10:80/tcp': 'abc' } },
      },
    ]);
    const reports = await observer.listHealthReports();
    expect(reports).toHaveLength(1);
    expect(reports[0]!.members.get('web/198.18.0.2:80')).toBe('down');
    expect(reports[0]!.members.size).toBe(3);
    const t0 = Date.now();
    await agent.close(); // the agent dies without revoking: keepalives stop, the lease expires
    await until('node gone', async () => (await observer.listNodes())[0]?.record === undefined, 10_000);
    expect(Date.now() - t0).toBeLessThan(6_000);
    expect(await observer.listHealthReports()).toEqual([]);
    expect((await observer.listNodes())[0]).toMatchObject({ name: 'lb1', drained: true, record: undefined });
    await observer.setNodeDrain('lb1', false);
    expect(await observer.listNodes()).toEqual([]);
  });

  test("node leases: etcd's remaining time, full while renewed, falling once the agent dies, then gone", async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const agent = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    const observer = open(prefix);
    await agent.registerNode({ name: 'lb1', address: '198.18.2.1' }, { leaseTtlS: 6 });
    await agent.registerNode({ name: 'lb2', address: '198.18.2.2' }, { leaseTtlS: 30 });
    const live = await observer.nodeLeases();
    expect([...live.keys()].sort()).toEqual(['lb1', 'lb2']);
    expect(live.get('lb1')).toMatchObject({ grantedS: 6 });
    expect(live.get('lb1')!.remainingS).toBeGreaterThanOrEqual(4);
    expect(live.get('lb2')).toMatchObject({ grantedS: 30 });
    // a hand-written node key without a lease is no registration: no lease reported for it
    await etcd.etcdctl('put', `${prefix}/v1/nodes/lb9`, '{"name":"lb9","registeredAt":"2026-01-01T00:00:00Z"}');
    expect((await observer.nodeLeases()).has('lb9')).toBe(false);
    await agent.close(); // renewals stop; nothing is revoked
    await until(
      'lb1 renewal late',
      async () => {
        const lease = (await observer.nodeLeases()).get('lb1');
        return lease !== undefined && lease.remainingS * 2 < lease.grantedS;
      },
      10_000,
    );
    await until('lb1 lease gone', async () => !(await observer.nodeLeases()).has('lb1'), 10_000);
    expect((await observer.nodeLeases()).get('lb2')?.grantedS).toBe(30);
  });

  test('renewals keep a short lease alive; a lease revoked behind its back is re-granted and everything re-written', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const agent = open(prefix);
    const observer = open(prefix);
    const lost: StoreError[] = [];
    let reregistered = 0;
    const reg = await agent.registerNode(
      { name: 'lb1' },
      { leaseTtlS: 2, onLeaseLost: (e) => lost.push(e), onReregistered: () => (reregistered += 1) },
    );
    await reg.reportHealth(new Map([['web/198.18.0.1:80', 'up']]));
    await reg.reportStatus({ tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 });
    // Three TTLs: only the renewals keep it (lease-keeper.ts).
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await observer.listNodes()).map((n) => n.name)).toEqual(['lb1']);
    expect(lost).toEqual([]);
    const key = `${prefix}/v1/nodes/lb1`;
    const leaseOf = async () => (await etcd.etcdctl('get', key, '-w', 'json')).match(/"lease":(\d+)/)?.[1];
    const first = await leaseOf();
    expect(first).toMatch(/^\d+$/);
    await etcd.etcdctl('lease', 'revoke', BigInt(first ?? 0).toString(16));
    // The next renewal is answered with TTL 0: lost, then a new lease carries the record, health and status again.
    await until('re-registered', () => reregistered === 1, 5_000);
    expect(lost.map((e) => e.code)).toEqual(['LEASE_LOST']);
    expect(await leaseOf()).not.toBe(first);
    const [node] = await observer.listNodes();
    expect(node).toMatchObject({ name: 'lb1', record: { name: 'lb1' }, status: { desiredRevision: 1 } });
    expect((await observer.listHealthReports())[0]?.members.get('web/198.18.0.1:80')).toBe('up');
  });

  test('node and health watches follow registration and close()', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const store = open(prefix);
    const views: string[][] = [];
    const healthSizes: number[] = [];
    const w1 = await store.watchNodes({ onUpdate: (v) => views.push(v.map((n) => n.name)) });
    const w2 = await store.watchHealthReports({ onUpdate: (r) => healthSizes.push(r.length) });
    const reg = await store.registerNode({ name: 'lb2' });
    await store.reportHealth('lb2', new Map([['web/x', 'up']]));
    await until('node seen', () => views.at(-1)?.includes('lb2'));
    await until('health seen', () => healthSizes.at(-1) === 1);
    await reg.close();
    await until('node gone', () => views.at(-1)?.length === 0);
    await until('health gone', () => healthSizes.at(-1) === 0);
    await w1.close();
    await w2.close();
  });

  test('a pool too large for one etcd request: its decided and health records are refused by name, the others written', async () => {
    const store = open();
    const poolOf = (pool: string, n: number): [string, MemberStatus][] =>
      Array.from({ length: n }, (_v, k) => [`${pool}/10.${k >> 16}.${(k >> 8) & 255}.${k & 255}:80`, 'up']);
    const members = new Map([...poolOf('api', 2), ...poolOf('big', 100_000), ...poolOf('web', 2)]);
    await expect(store.writeDecided(members)).rejects.toMatchObject({ code: 'TOO_LARGE', key: 'decided/big' });
    const decided = (await store.getDecided()).decided;
    expect([...decided.keys()].map((k) => k.split('/')[0]).sort()).toEqual(['api', 'api', 'web', 'web']);
    const reg = await store.registerNode({ name: 'lb1', address: '198.18.2.1' }, { leaseTtlS: 5 });
    await expect(reg.reportHealth(members)).rejects.toMatchObject({ code: 'TOO_LARGE', key: 'health/lb1/big' });
    const reports = await store.listHealthReports();
    const pools = new Set(reports.flatMap((r) => [...r.members.keys()].map((k) => k.split('/')[0])));
    expect([...pools].sort()).toEqual(['api', 'web']);
    await reg.close();
  });

  test('a prefix of more keys than one read page is read whole, at one revision', async () => {
    const store = open();
    const decided = new Map<string, MemberStatus>(
      Array.from({ length: 70 }, (_v, i) => [`pool${String(i).padStart(2, '0')}/10.0.0.${i}:80`, 'up']),
    );
    await store.writeDecided(decided);
    const got = await store.getDecided();
    expect(got.decided).toEqual(decided);
  });

  test('election: a leader whose key was deleted by hand loses leadership at its next fenced write and campaigns again', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const a = open(prefix);
    const la = await a.campaign('lb1', { leaseTtlS: 5 });
    await etcd.etcdctl('del', '--prefix', `${prefix}/v1/election/`);
    await expect(a.writeDecided(new Map([['web/x', 'up']]), { leadership: la })).rejects.toMatchObject({
      code: 'LEASE_LOST',
    });
    expect(la.isLeader()).toBe(false);
    const lost = await la.lost;
    expect(lost?.code).toBe('LEASE_LOST');
    expect(lost?.message).toContain('election key');
    const again = await a.campaign('lb1', { leaseTtlS: 5 });
    await a.writeDecided(new Map([['web/x', 'up']]), { leadership: again });
    expect((await a.getDecided()).decided).toEqual(new Map([['web/x', 'up']]));
    await again.resign();
  });

  // The campaign's lease is renewed by the store's LeaseKeeper: a campaign still waiting to lead when its store closes
  // must end with the store (refused CLOSED, its lease revoked), not renew on a closed client for ever.
  test('election: a campaign still waiting when its store closes is refused CLOSED and its key removed', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const a = open(prefix);
    const b = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    const la = await a.campaign('lb1', { leaseTtlS: 5 });
    const pb = b.campaign('lb2', { leaseTtlS: 5 }).then(
      async (l) => {
        await l.resign();
        return 'elected';
      },
      (e: StoreError) => e.code,
    );
    const keys = async () =>
      (await etcd.etcdctl('get', '--prefix', '--keys-only', `${prefix}/v1/election/`)).split('\n').filter(Boolean);
    await until('lb2 campaigning', async () => (await keys()).length === 2);
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        b.close().then(() => pb),
        new Promise<string>((r) => {
          timer = setTimeout(() => r('still waiting'), 10_000);
        }),
      ]);
      expect(outcome).toBe('CLOSED');
    } finally {
      clearTimeout(timer);
    }
    await until('lb2 key removed', async () => (await keys()).length === 1);
    expect(la.isLeader()).toBe(true);
    await la.resign();
  });

  test('election: one leader, decided status fenced by leadership, failover on resign', async () => {
    const prefix = `/t-${Math.random().toString(36).slice(2, 8)}`;
    const a = open(prefix);
    const b = open(prefix);
    const leaders: (string | undefined)[] = [];
    const obs = await b.observeLeader({ onUpdate: (l) => leaders.push(l) });
    const la = await a.campaign('lb1', { leaseTtlS: 2 });
    expect(await b.getLeader()).toBe('lb1');
    let bElected = false;
    const pb = b.campaign('lb2', { leaseTtlS: 2 }).then((l) => {
      bElected = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(bElected).toBe(false);
    await a.writeDecided(
      new Map([
        ['web/x', 'down'],
        ['web/y', 'up'],
      ]),
      { leadership: la },
    );
    expect((await b.getDecided()).decided).toEqual(
      new Map([
        ['web/x', 'down'],
        ['web/y', 'up'],
      ]),
    );
    await la.resign();
    expect(await la.lost).toBeUndefined();
    await expect(a.writeDecided(new Map([['web/x', 'up']]), { leadership: la })).rejects.toMatchObject({
      code: 'LEASE_LOST',
    });
    const lb = await pb;
    expect(lb.isLeader()).toBe(true);
    await until('observer saw lb2', () => leaders.at(-1) === 'lb2');
    expect(leaders).toContain('lb1');
    await b.writeDecided(new Map([['web/x', 'up']]), { leadership: lb });
    expect((await a.getDecided()).decided.get('web/x')).toBe('up');
    await lb.resign();
    await obs.close();
  });
});

describe('store - etcd with TLS and auth (real)', () => {
  let etcd: EtcdHandle;
  beforeAll(async () => {
    etcd = await startEtcd({ tls: true, rootPassword: 'sekret' });
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  test('client cert + user/password: apply and read back', async () => {
    const tls = etcd.tls!;
    const store = new EtcdFleetStore({
      endpoints: etcd.endpoints,
      tls: { ca: tls.ca, cert: tls.cert, key: tls.key },
      auth: { username: 'root', password: 'sekret' },
      logger,
    });
    try {
      const r = await store.apply(fleetOf(2, 11));
      expect((await store.getDesired()).revision).toBe(r.revision);
    } finally {
      await store.close();
    }
  });

  test('a wrong password fails with AUTH', async () => {
    const tls = etcd.tls!;
    const store = new EtcdFleetStore({
      endpoints: etcd.endpoints,
      tls: { ca: tls.ca, cert: tls.cert, key: tls.key },
      auth: { username: 'root', password: 'wrong' },
      logger,
    });
    try {
      await expect(store.getDesired()).rejects.toMatchObject({ code: 'AUTH' });
    } finally {
      await store.close();
    }
  });

  test('without a client certificate the connection is refused', async () => {
    const store = new EtcdFleetStore({
      endpoints: etcd.endpoints,
      tls: { ca: etcd.tls!.ca },
      auth: { username: 'root', password: 'sekret' },
      logger,
      dialTimeoutMs: 1_000,
      callTimeoutMs: 2_000,
    });
    try {
      await expect(store.getDesired()).rejects.toBeInstanceOf(StoreError);
    } finally {
      await store.close();
    }
  });
});
