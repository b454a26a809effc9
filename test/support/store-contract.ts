/**
 * One suite of FleetStore behaviour, run against the in-memory fake (packages/store/src/memory-store.test.ts) and
 * the etcd store on a real etcd (packages/store/src/store-contract.int.test.ts), so the fake the agent and CLI unit
 * tests rely on cannot drift from the real thing (issue 13). Each test gets a fresh fleet (a new etcd prefix or a
 * new fake); `open()` returns another client of the same fleet.
 */
import { type Fleet, parseFleet } from '@l4fleet/config';
import type { DesiredState, FleetStore, StoreError } from '@l4fleet/store';
import { afterEach, describe, expect, test } from 'vitest';
import { until } from './eventually.js';
import { describeNodeContract } from './store-contract-nodes.js';
import { describeRecordContract } from './store-contract-records.js';

export interface ContractFleet {
  /** Another client of this fleet (the fake: the same instance). Closed by the suite. */
  open(): FleetStore;
  /**
   * Writes a pointer that does not decode, as someone with etcdctl would; with `hashSeed`, that field of it still
   * reads (a recovery keeps it), without, there is none to keep.
   */
  corruptPointer(hashSeed?: number): Promise<void>;
  /** Compacts the history below `revision`, as `etcdctl compact` does (on etcd: for every fleet of that etcd). */
  compact(revision: number): Promise<void>;
}

export type ContractFactory = () => Promise<ContractFleet>;

export const contractFleet = (members: number, seed?: number): Fleet =>
  parseFleet({
    ...(seed === undefined ? {} : { hashSeed: seed }),
    pools: [
      {
        name: 'web',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

const wait = <T>(what: string, fn: () => T | Promise<T>) => until(what, fn, 10_000, 20);

export function describeStoreContract(name: string, factory: ContractFactory): void {
  describe(`store contract - ${name}`, () => {
    const opened: FleetStore[] = [];
    const fleet = async () => {
      const f = await factory();
      return {
        ...f,
        open: () => {
          const s = f.open();
          opened.push(s);
          return s;
        },
      };
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
    });
    describeRecordContract(fleet);
    describeNodeContract(fleet);

    test('apply: revision guard, the generated seed is kept, an explicit one wins', async () => {
      const s = (await fleet()).open();
      expect(await s.getDesired()).toMatchObject({ revision: 0, generation: '', fleet: { pools: [], vips: [] } });
      const r1 = await s.apply(contractFleet(1), { expectRevision: 0 });
      await expect(s.apply(contractFleet(2), { expectRevision: 0 })).rejects.toMatchObject({ code: 'CONFLICT' });
      const r2 = await s.apply(contractFleet(2), { expectRevision: r1.revision });
      expect(r2.hashSeed).toBe(r1.hashSeed);
      expect(r2.revision).toBeGreaterThan(r1.revision);
      const got = await s.getDesired();
      expect(got.revision).toBe(r2.revision);
      expect(got.generation).toBe(r2.generation);
      expect(got.fleet).toEqual({ ...contractFleet(2), hashSeed: r1.hashSeed });
      expect((await s.apply(contractFleet(2, 42))).hashSeed).toBe(42);
    });

    test('desired history: writes newest first, each fleet as it was, a limit, a bad write named, compaction ends it', async () => {
      const f = await fleet();
      const s = f.open();
      expect(await s.getDesiredHistory({ limit: 10 })).toEqual({ revisions: [], more: false, compacted: false });
      // The first is over the inline limit (64 KiB): its document is in chunks, which the next apply deletes; etcd
      // still holds them at that write's revision.
      const big = parseFleet({
        hashSeed: 11,
        pools: [
          {
            name: 'web',
            members: Array.from({ length: 1_000 }, (_, i) => ({
              address: `198.18.${Math.floor(i / 250)}.${1 + (i % 250)}`,
              port: 80,
            })),
          },
        ],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
      });
      const applied = [await s.apply(big)];
      for (const n of [2, 3]) applied.push(await s.apply(contractFleet(n, 11)));
      expect(applied[0]?.bytes).toBeGreaterThan(64 * 1024);
      const h = await s.getDesiredHistory({ limit: 10 });
      expect(h).toMatchObject({ more: false, compacted: false });
      expect(h.revisions.some((r) => 'appliedBy' in r)).toBe(false);
      expect(h.revisions.map((r) => [r.revision, r.generation])).toEqual(
        applied.map((r) => [r.revision, r.generation]).reverse(),
      );
      for (const r of h.revisions) expect(r.appliedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      const two = await s.getDesiredHistory({ limit: 2 });
      expect(two.more).toBe(true);
      expect(two.revisions.map((r) => r.revision)).toEqual([applied[2]?.revision, applied[1]?.revision]);
      const first = applied[0] as (typeof applied)[number];
      const then = await s.getDesiredAt(first.revision);
      expect(then).toMatchObject({ revision: first.revision, generation: first.generation });
      expect(then.fleet).toEqual(big);
      expect(then.appliedAt).toBe(h.revisions.at(-1)?.appliedAt);
      await expect(s.getDesiredAt(first.revision + 1_000_000)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(s.getDesiredAt(0)).rejects.toMatchObject({ code: 'INVALID_STATE' });
      await expect(s.getDesiredHistory({ limit: 0 })).rejects.toMatchObject({ code: 'INVALID_STATE' });

      await f.corruptPointer();
      const bad = (await s.getDesiredHistory({ limit: 1 })).revisions[0];
      expect(bad?.invalid).toMatch(/desired\/current: /);
      await expect(s.getDesiredAt(bad?.revision ?? 0)).rejects.toMatchObject({ code: 'INVALID_RECORD' });

      const fixed = await s.apply(contractFleet(4, 11), { recoverInvalid: true, by: 'alice@ops1 (contract)\n' });
      expect((await s.getDesiredHistory({ limit: 1 })).revisions[0]?.appliedBy).toBe('alice@ops1 (contract)');
      await f.compact(fixed.revision);
      const left = await s.getDesiredHistory({ limit: 10 });
      expect(left).toMatchObject({ more: false, compacted: true });
      expect(left.revisions.map((r) => r.revision)).toEqual([fixed.revision]);
      await expect(s.getDesiredAt(first.revision)).rejects.toMatchObject({ code: 'COMPACTED' });
      expect((await s.getDesiredAt(fixed.revision)).fleet.pools[0]?.members).toHaveLength(4);
    });

    test('desired history after a compaction between writes: the write it kept is listed and reads, chunks and all', async () => {
      // etcd keeps each key's last version at or below the compaction: the write that was current then stays
      // readable (and listed by history) from the compaction up to the next write, though not at its own revision.
      const f = await fleet();
      const s = f.open();
      const big = parseFleet({
        hashSeed: 12,
        pools: [
          {
            name: 'web',
            members: Array.from({ length: 1_000 }, (_, i) => ({
              address: `198.18.${Math.floor(i / 250)}.${1 + (i % 250)}`,
              port: 80,
            })),
          },
        ],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
      });
      const first = await s.apply(contractFleet(1, 12));
      const kept = await s.apply(big);
      expect(kept.chunks).toBeGreaterThan(0);
      await s.setNodeDrain('contract-n1', true); // an unrelated write: the compaction falls between two of the fleet's
      await f.compact(kept.revision + 1);
      const next = await s.apply(contractFleet(3, 12));
      const h = await s.getDesiredHistory({ limit: 10 });
      expect(h.revisions.map((r) => r.revision)).toEqual([next.revision, kept.revision]);
      expect(h.compacted).toBe(true);
      const got = await s.getDesiredAt(kept.revision);
      expect(got).toMatchObject({ revision: kept.revision, generation: kept.generation });
      expect(got.fleet).toEqual(big);
      await expect(s.getDesiredAt(first.revision)).rejects.toMatchObject({ code: 'COMPACTED' });
      await expect(s.getDesiredAt(kept.revision - 1)).rejects.toMatchObject({ code: 'COMPACTED' });
    });

    test('watchDesired: the current state, then every apply once and in order', async () => {
      const f = await fleet();
      const [w, r] = [f.open(), f.open()];
      await w.apply(contractFleet(1, 7));
      const seen: number[] = [];
      const watch = await r.watchDesired({ onUpdate: (d) => seen.push(d.fleet.pools[0]?.members.length ?? 0) });
      await w.apply(contractFleet(2));
      await w.apply(contractFleet(3));
      await wait('three states', () => seen.length === 3);
      expect(seen).toEqual([1, 2, 3]);
      await watch.close();
    });

    test('a corrupt pointer: INVALID_RECORD naming the key, last good state kept, recovery replaces it', async () => {
      const f = await fleet();
      const [w, r] = [f.open(), f.open()];
      await w.apply(contractFleet(2, 9));
      const seen: DesiredState[] = [];
      const errors: StoreError[] = [];
      const watch = await r.watchDesired({ onUpdate: (d) => seen.push(d), onError: (e) => errors.push(e) });
      await expect(w.apply(contractFleet(3), { recoverInvalid: true })).rejects.toMatchObject({ code: 'CONFLICT' });
      await f.corruptPointer();
      await wait('error reported', () => errors.some((e) => e.code === 'INVALID_RECORD'));
      const err = errors.find((e) => e.code === 'INVALID_RECORD') as StoreError;
      expect(err.key).toBe('desired/current');
      expect(err.message).toMatch(/desired\/current: /);
      await expect(w.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD', key: 'desired/current' });
      expect(seen.map((d) => d.fleet.pools[0]?.members.length)).toEqual([2]);
      const fixed = await w.apply(contractFleet(4, 9), { recoverInvalid: true });
      await wait('recovered', () => seen.at(-1)?.revision === fixed.revision);
      expect((await w.getDesired()).fleet.pools[0]?.members.length).toBe(4);
      await watch.close();
    });

    test('nodes: registration, health, status and drain; close() removes all but the drain flag', async () => {
      const f = await fleet();
      const [agent, cli] = [f.open(), f.open()];
      const views: string[][] = [];
      const watch = await cli.watchNodes({ onUpdate: (v) => views.push(v.map((n) => n.name)) });
      const reg = await agent.registerNode({ name: 'lb1', address: '198.18.2.1' });
      await reg.reportHealth(
        new Map([
          ['web/a', 'up'],
          ['web/b', 'down'],
        ]),
      );
      await reg.reportStatus({
        tables: { k: 'sum' },
        announced: ['k'],
        bgp: {},
        failStatic: false,
        desiredRevision: 3,
      });
      await cli.setNodeDrain('lb1', true);
      await wait('node seen', () => views.at(-1)?.includes('lb1'));
      const [view] = await cli.listNodes();
      expect(view).toMatchObject({ name: 'lb1', drained: true, record: { name: 'lb1', address: '198.18.2.1' } });
      expect(view?.status).toMatchObject({ tables: { k: 'sum' }, announced: ['k'], desiredRevision: 3 });
      const reports = await cli.listHealthReports();
      expect(reports.map((h) => [h.node, [...h.members].sort()])).toEqual([
        [
          'lb1',
          [
            ['web/a', 'up'],
            ['web/b', 'down'],
          ],
        ],
      ]);
      const leases = await cli.nodeLeases();
      expect([...leases.keys()]).toEqual(['lb1']);
      expect(leases.get('lb1')?.grantedS).toBe(10); // the default TTL
      expect(leases.get('lb1')?.remainingS).toBeGreaterThanOrEqual(5); // renewed every third of it
      await reg.close();
      await wait('lease gone', async () => (await cli.listNodes())[0]?.record === undefined);
      expect((await cli.nodeLeases()).size).toBe(0);
      expect(await cli.listHealthReports()).toEqual([]);
      expect(await cli.listNodes()).toMatchObject([{ name: 'lb1', drained: true, record: undefined }]);
      await cli.setNodeDrain('lb1', false);
      expect(await cli.listNodes()).toEqual([]);
      await expect(cli.registerNode({ name: 'a/b' })).rejects.toMatchObject({ code: 'INVALID_STATE' });
      await watch.close();
    });

    test('election and decided status: one leader, fenced writes, handover on resign', async () => {
      const f = await fleet();
      const [a, b] = [f.open(), f.open()];
      const decidedSeen: number[] = [];
      const watch = await b.watchDecided({ onUpdate: (d) => decidedSeen.push(d.decided.size) });
      const la = await a.campaign('lb1');
      expect(await b.getLeader()).toBe('lb1');
      let bElected = false;
      const pb = b.campaign('lb2').then((l) => {
        bElected = true;
        return l;
      });
      await a.writeDecided(
        new Map([
          ['web/x', 'down'],
          ['web/y', 'up'],
        ]),
        { leadership: la },
      );
      expect(bElected).toBe(false);
      expect((await b.getDecided()).decided).toEqual(
        new Map([
          ['web/x', 'down'],
          ['web/y', 'up'],
        ]),
      );
      await wait('decided watched', () => decidedSeen.at(-1) === 2);
      await la.resign();
      expect(await la.lost).toBeUndefined();
      await expect(a.writeDecided(new Map([['web/x', 'up']]), { leadership: la })).rejects.toMatchObject({
        code: 'LEASE_LOST',
      });
      const lb = await pb;
      expect(lb.isLeader()).toBe(true);
      expect(await a.getLeader()).toBe('lb2');
      await lb.resign();
      await watch.close();
    });

    test('decided ramps (slow start): written with the decisions, read back, ended ones leave nothing behind', async () => {
      const f = await fleet();
      const [a, b] = [f.open(), f.open()];
      const seen: number[] = [];
      const watch = await b.watchDecided({ onUpdate: (d) => seen.push(d.ramps.size) });
      const l = await a.campaign('lb1');
      const ramps = new Map([
        ['web/y', { percent: 20, sinceMs: 1_700_000_000_000 }],
        ['api/z', { percent: 60, sinceMs: 1_700_000_000_500 }], // a pool with no decision (health check none)
      ]);
      await a.writeDecided(
        new Map([
          ['web/x', 'down'],
          ['web/y', 'up'],
        ]),
        { leadership: l, ramps },
      );
      expect(await b.getDecided()).toMatchObject({
        decided: new Map([
          ['web/x', 'down'],
          ['web/y', 'up'],
        ]),
        ramps,
      });
      await wait('ramps watched', () => seen.at(-1) === 2);
      await expect(
        a.writeDecided(new Map([['web/x', 'down']]), {
          leadership: l,
          ramps: new Map([['web/x', { percent: 20, sinceMs: 1 }]]),
        }),
      ).rejects.toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('"web/x"') });
      await a.writeDecided(
        new Map([
          ['web/x', 'down'],
          ['web/y', 'up'],
        ]),
        { leadership: l, pools: ['api', 'web'] },
      );
      // api's record is there with no member: a pool the state holds (readable), with no decision.
      expect(await b.getDecided()).toMatchObject({
        ramps: new Map(),
        pools: new Set(['api', 'web']),
        refusedPools: new Set(),
      });
      await wait('ended ramps watched', () => seen.at(-1) === 0);
      await l.resign();
      await watch.close();
    });
  });
}
