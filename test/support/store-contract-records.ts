/**
 * Contract cases of the desired state's watch and recovery, decided status, table history and the leader watch (run
 * by describeStoreContract in store-contract.ts against the fake and a real etcd).
 */
import { type Fleet, type HistoryMember, type PoolHistory, parseFleet } from '@l4fleet/config';
import type { DesiredState, FleetStore, StoreError } from '@l4fleet/store';
import { expect, test } from 'vitest';
import { until } from './eventually.js';
import type { ContractFleet } from './store-contract.js';

const wait = <T>(what: string, fn: () => T | Promise<T>) => until(what, fn, 10_000, 20);

const fleetOf = (members: number, seed?: number): Fleet =>
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

const size = (d: DesiredState) => d.fleet.pools[0]?.members.length ?? 0;

const membersOf = (n: number): HistoryMember[] =>
  Array.from({ length: n }, (_, i) => ({
    name: `198.18.0.${i + 1}:80`,
    address: `198.18.0.${i + 1}`,
    port: 80,
    weight: 1,
  }));

const historyOf = (pool: string, n: number): PoolHistory => ({
  pool,
  current: membersOf(n),
  earlier: [{ untilMs: 1_700_000_000_000, members: membersOf(n - 1) }],
});

export function describeRecordContract(fleet: () => Promise<ContractFleet & { open(): FleetStore }>): void {
  test('recover: the broken pointer seed is kept only when it still reads; none readable and none in the file is a new seed', async () => {
    const f = await fleet();
    const s = f.open();
    await s.apply(fleetOf(2, 9));
    await f.corruptPointer();
    // The last good fleet's seed is not the broken pointer's: etcd cannot read it back, so neither may the fake.
    expect(await s.apply(fleetOf(3), { recoverInvalid: true })).toMatchObject({ seedSource: 'new' });
    await f.corruptPointer(0x5eed);
    expect(await s.apply(fleetOf(3), { recoverInvalid: true })).toMatchObject({
      seedSource: 'salvaged',
      hashSeed: 0x5eed,
    });
  });

  test('watchDesired: a watcher that throws, or applies from its callback, neither fails the apply nor reorders the others', async () => {
    const f = await fleet();
    const [w, r] = [f.open(), f.open()];
    await w.apply(fleetOf(1, 7));
    const thrower = await r.watchDesired({
      onUpdate: (d) => {
        if (size(d) > 1) throw new Error('a watcher bug');
      },
    });
    let again: Promise<unknown> | undefined;
    const reentrant = await r.watchDesired({
      onUpdate: (d) => {
        if (size(d) === 2 && !again) again = w.apply(fleetOf(3));
      },
    });
    const seen: number[] = [];
    const watch = await r.watchDesired({ onUpdate: (d) => seen.push(size(d)) });
    await w.apply(fleetOf(2)); // stored: a watcher's failure is not the writer's
    await wait('the reentrant apply', () => again);
    await again;
    await wait('three states', () => seen.length >= 3);
    expect(seen).toEqual([1, 2, 3]);
    for (const x of [thrower, reentrant, watch]) await x.close();
  });

  test('decided and table history: writing the same again changes nothing and fires no watch event', async () => {
    const f = await fleet();
    const [a, b] = [f.open(), f.open()];
    const decided: number[] = [];
    const history: number[] = [];
    const wd = await b.watchDecided({ onUpdate: (d) => decided.push(d.decided.size) });
    const wh = await b.watchTableHistory({ onUpdate: (h) => history.push(h.history.size) });
    await wait('initial states', () => decided.length === 1 && history.length === 1);
    const one = new Map([['web/x', 'down' as const]]);
    await a.writeDecided(one);
    await wait('decided watched', () => decided.at(-1) === 1);
    await a.writeDecided(one);
    await a.writeDecided(new Map([...one, ['web/y', 'up' as const]]));
    await wait('second decided watched', () => decided.at(-1) === 2);
    expect(decided).toEqual([0, 1, 2]);
    const web = new Map([['web', historyOf('web', 3)]]);
    await a.writeTableHistory(web);
    await wait('history watched', () => history.at(-1) === 1);
    await a.writeTableHistory(web);
    await a.writeTableHistory(new Map([...web, ['api', historyOf('api', 2)]]));
    await wait('second history watched', () => history.at(-1) === 2);
    expect(history).toEqual([0, 1, 2]);
    await wd.close();
    await wh.close();
  });

  test('table history: written, read back and watched; a pool left out is deleted; fenced by leadership', async () => {
    const f = await fleet();
    const [a, b] = [f.open(), f.open()];
    const seen: string[] = [];
    const watch = await b.watchTableHistory({ onUpdate: (h) => seen.push([...h.history.keys()].sort().join()) });
    const l = await a.campaign('lb1');
    const both = new Map([
      ['api', historyOf('api', 2)],
      ['web', historyOf('web', 4)],
    ]);
    await a.writeTableHistory(both, { leadership: l });
    expect((await b.getTableHistory()).history).toEqual(both);
    await wait('both watched', () => seen.at(-1) === 'api,web');
    await a.writeTableHistory(new Map([['web', historyOf('web', 4)]]), { leadership: l });
    expect([...(await b.getTableHistory()).history.keys()]).toEqual(['web']);
    await wait('api deleted', () => seen.at(-1) === 'web');
    await l.resign();
    await expect(a.writeTableHistory(both, { leadership: l })).rejects.toMatchObject({ code: 'LEASE_LOST' });
    await watch.close();
  });

  test('table history: a key that is not its record pool is refused naming both, and nothing is written', async () => {
    const s = (await fleet()).open();
    await s.writeTableHistory(new Map([['web', historyOf('web', 2)]]));
    const err = await s.writeTableHistory(new Map([['x', historyOf('web', 3)]])).catch((e: StoreError) => e);
    expect(err).toMatchObject({ code: 'INVALID_STATE' });
    expect((err as StoreError).message).toMatch(/"x".*"web"/);
    expect((await s.getTableHistory()).history).toEqual(new Map([['web', historyOf('web', 2)]]));
  });

  test('observeLeader: none, then each leader once, none between and after', async () => {
    const f = await fleet();
    const [a, b, c] = [f.open(), f.open(), f.open()];
    const seen: (string | undefined)[] = [];
    const watch = await c.observeLeader({ onUpdate: (l) => seen.push(l) });
    await wait('the current leader', () => seen.length === 1);
    const la = await a.campaign('lb1');
    await wait('lb1 seen', () => seen.at(-1) === 'lb1');
    await la.resign();
    await wait('lb1 gone', () => seen.length === 3);
    const lb = await b.campaign('lb2');
    await wait('lb2 seen', () => seen.at(-1) === 'lb2');
    await lb.resign();
    await wait('no leader seen', () => seen.length === 5);
    expect(seen).toEqual([undefined, 'lb1', undefined, 'lb2', undefined]);
    await watch.close();
  });
}
