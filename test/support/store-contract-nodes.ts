/**
 * Contract cases of nodes, health reports and a client's close() (run by describeStoreContract in
 * store-contract.ts against the fake and a real etcd).
 */
import type { FleetStore, StoreError } from '@l4fleet/store';
import { expect, test } from 'vitest';
import { until } from './eventually.js';
import type { ContractFleet } from './store-contract.js';

const wait = <T>(what: string, fn: () => T | Promise<T>) => until(what, fn, 10_000, 20);

export function describeNodeContract(fleet: () => Promise<ContractFleet & { open(): FleetStore }>): void {
  test('registerNode twice on one client: the same info is the same registration, other info is refused naming the field', async () => {
    const s = (await fleet()).open();
    const reg = await s.registerNode({ name: 'lb1', address: '198.18.2.1' });
    expect(await s.registerNode({ name: 'lb1', address: '198.18.2.1' })).toBe(reg);
    const other = await s.registerNode({ name: 'lb1', address: '198.18.2.2' }).catch((e: StoreError) => e);
    expect(other).toMatchObject({ code: 'INVALID_STATE' });
    expect((other as StoreError).message).toMatch(/"lb1".*address "198\.18\.2\.1".*"198\.18\.2\.2"/);
    const ttl = await s.registerNode({ name: 'lb1', address: '198.18.2.1' }, { leaseTtlS: 30 }).catch((e) => e);
    expect(ttl).toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('leaseTtlS') });
    expect((await s.listNodes())[0]?.record?.address).toBe('198.18.2.1');
    await reg.close();
    const again = await s.registerNode({ name: 'lb1', address: '198.18.2.2' });
    expect((await s.listNodes())[0]?.record?.address).toBe('198.18.2.2');
    await again.close();
  });

  // Readers refuse a node record whose address is not an IP address or whose version holds a control character (or is
  // over 1,024 chars): the etcd store wrote one and then refused it on every read, while the fake never decoded it.
  test.each([
    ['an address with a CSI', { address: '\u009b2J' }, 'node.address: "\\u009b2J" is not an IP address'],
    ['a host name', { address: 'lb1.example' }, 'node.address: "lb1.example" is not an IP address'],
    ['a version with an ESC', { version: '1.0\u001b[2J' }, 'node.version: "1.0\\u001b[2J" holds a control character'],
    ['a version of 1,025 chars', { version: 'v'.repeat(1_025) }, 'is over 1,024 characters'],
  ])('registerNode refuses info readers would refuse, naming the field and the value (%s)', async (_, info, why) => {
    const s = (await fleet()).open();
    const err = await s.registerNode({ name: 'lb1', ...info }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining(why) });
    expect(await s.listNodes()).toEqual([]);
    const reg = await s.registerNode({ name: 'lb1', address: '2001:db8::1', version: '1.0.0 (build 7)' });
    expect((await s.listNodes())[0]?.record).toMatchObject({ address: '2001:db8::1', version: '1.0.0 (build 7)' });
    await reg.close();
  });

  // Asked again before the first call resolved (nothing awaited in between): still one registration, one lease, as
  // asked one after the other. Checked before the create, two creates each registered the node on a lease of its own.
  test('registerNode twice at once on one client: one registration; the same info is it, other info is refused naming the field', async () => {
    const f = await fleet();
    const [s, cli] = [f.open(), f.open()];
    const first = s.registerNode({ name: 'lb1', address: '198.18.2.1' });
    const same = s.registerNode({ name: 'lb1', address: '198.18.2.1' });
    const other = s.registerNode({ name: 'lb1', address: '198.18.2.2' }).catch((e: StoreError) => e);
    const reg = await first;
    expect(await same).toBe(reg);
    expect(await other).toMatchObject({ code: 'INVALID_STATE' });
    expect(((await other) as StoreError).message).toMatch(/"lb1".*address "198\.18\.2\.1".*"198\.18\.2\.2"/);
    expect((await cli.listNodes()).map((n) => n.record?.address)).toEqual(['198.18.2.1']);
    // The one lease revoked, the node is gone: no second registration keeps it.
    await reg.close();
    expect(await cli.listNodes()).toEqual([]);
    const again = await s.registerNode({ name: 'lb1', address: '198.18.2.2' });
    expect((await cli.listNodes()).map((n) => n.record?.address)).toEqual(['198.18.2.2']);
    // The first one closed again does not let go of the name the second holds now.
    await reg.close();
    expect(await s.registerNode({ name: 'lb1', address: '198.18.2.2' })).toBe(again);
    await again.close();
  });

  test('setNodeDrain refuses what is not a node name', async () => {
    const s = (await fleet()).open();
    await expect(s.setNodeDrain('a/b', true)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    expect(await s.listNodes()).toEqual([]);
  });

  test('health reports: watched per node; an empty report removes the node', async () => {
    const f = await fleet();
    const [agent, cli] = [f.open(), f.open()];
    const seen: string[] = [];
    const watch = await cli.watchHealthReports({
      onUpdate: (r) => seen.push(r.map((h) => `${h.node}:${h.members.size}`).join()),
    });
    const reg = await agent.registerNode({ name: 'lb1' });
    await reg.reportHealth(
      new Map([
        ['web/a', 'up'],
        ['api/b', 'down'],
      ]),
    );
    await wait('report watched', () => seen.at(-1) === 'lb1:2');
    await reg.reportHealth(new Map());
    expect(await cli.listHealthReports()).toEqual([]);
    await wait('empty report watched', () => seen.at(-1) === '');
    await reg.close();
    await watch.close();
  });

  // A restarted agent (a rolling upgrade: the new version) registers its node on a new client while the old process
  // still holds the name: etcd keeps each key on the lease of its last put, so closing the old one takes only what
  // it still holds, never the new agent's record.
  const status = (desiredRevision: number) => ({
    tables: {},
    announced: [],
    bgp: {},
    failStatic: false,
    desiredRevision,
  });
  const healthOf = async (s: FleetStore) =>
    Object.fromEntries((await s.listHealthReports()).map((r) => [r.node, Object.fromEntries(r.members)]));

  test('a node registered again by another client: closing the first registration takes only what is still on its lease', async () => {
    const f = await fleet();
    const [a, b, cli] = [f.open(), f.open(), f.open()];
    const old = await a.registerNode({ name: 'lb1', address: '198.18.2.1', version: '1.0.0' });
    await old.reportStatus(status(1));
    await old.reportHealth(
      new Map([
        ['web/a', 'up'],
        ['api/b', 'down'],
      ]),
    );
    const fresh = await b.registerNode({ name: 'lb1', address: '198.18.2.1', version: '1.1.0' }, { leaseTtlS: 30 });
    // The record is the new agent's (on its lease); the status and health it has not written yet are the old one's.
    expect(await cli.listNodes()).toMatchObject([
      { name: 'lb1', record: { version: '1.1.0' }, status: { desiredRevision: 1 } },
    ]);
    expect((await cli.nodeLeases()).get('lb1')?.grantedS).toBe(30);
    await fresh.reportHealth(new Map([['web/a', 'down']]));
    expect(await healthOf(cli)).toEqual({ lb1: { 'web/a': 'down', 'api/b': 'down' } });
    await old.close();
    const [view] = await cli.listNodes();
    expect(view).toMatchObject({ name: 'lb1', record: { version: '1.1.0' } });
    expect(view?.status).toBeUndefined();
    expect(await healthOf(cli)).toEqual({ lb1: { 'web/a': 'down' } });
    expect((await cli.nodeLeases()).get('lb1')?.grantedS).toBe(30);
    await fresh.reportStatus(status(2));
    await a.close(); // its registration is closed already: nothing more goes
    expect(await cli.listNodes()).toMatchObject([
      { name: 'lb1', record: { version: '1.1.0' }, status: { desiredRevision: 2 } },
    ]);
    await fresh.close();
    expect(await cli.listNodes()).toEqual([]);
    expect(await cli.listHealthReports()).toEqual([]);
  });

  test("a node registered again by another client: the first client's close() leaves the new registration", async () => {
    const f = await fleet();
    const [a, b, cli] = [f.open(), f.open(), f.open()];
    const old = await a.registerNode({ name: 'lb1', version: '1.0.0' }, { leaseTtlS: 2 }); // etcd: left to expire
    await old.reportStatus(status(1));
    await old.reportHealth(new Map([['web/a', 'up']]));
    const fresh = await b.registerNode({ name: 'lb1', version: '1.1.0' });
    await fresh.reportHealth(new Map([['api/b', 'down']]));
    await a.close();
    await wait('the old lease ended', async () => (await cli.listNodes())[0]?.status === undefined);
    await wait('its health gone', async () => (await cli.listHealthReports())[0]?.members.size === 1);
    expect(await cli.listNodes()).toMatchObject([{ name: 'lb1', record: { version: '1.1.0' } }]);
    expect(await healthOf(cli)).toEqual({ lb1: { 'api/b': 'down' } });
    await fresh.close();
    expect(await cli.listNodes()).toEqual([]);
  });

  // Two agents given the same node.name: the second wrote over the first's record, and when it stopped its lease
  // took the record with it while the first ran on, gone from `get nodes` and from the aggregator's live nodes.
  test('a name another agent (another address) holds is refused naming the key and the holder; free again once it goes', async () => {
    const f = await fleet();
    const [a, b, cli] = [f.open(), f.open(), f.open()];
    const first = await a.registerNode({ name: 'lb1', address: '198.18.2.1' });
    const refused = await b.registerNode({ name: 'lb1', address: '198.18.2.2' }).catch((e: StoreError) => e);
    expect(refused).toMatchObject({ code: 'CONFLICT', retryable: true });
    expect((refused as StoreError).message).toMatch(
      /nodes\/lb1: node\.name "lb1" is already registered by 198\.18\.2\.1 \(lease [0-9a-f]+\); node names must be unique$/,
    );
    expect(await cli.listNodes()).toMatchObject([{ name: 'lb1', record: { address: '198.18.2.1' } }]);
    await first.close();
    const second = await b.registerNode({ name: 'lb1', address: '198.18.2.2' });
    expect(await cli.listNodes()).toMatchObject([{ name: 'lb1', record: { address: '198.18.2.2' } }]);
    await second.close();
    expect(await cli.listNodes()).toEqual([]);
  });

  // A successor at the same address (the node restarted while its old process lived on) took the record over, wrote
  // its own reports, and stopped first: its lease took the record, the health and the status while the first
  // agent's lease lives. Written back as a renewal finds it gone: the record, and the reports the first one last
  // wrote (the record alone left a live node reporting nothing: its reports are written only when they change).
  test('a record gone while its lease lives (a same-address successor stopped first) is written again with the health and status', async () => {
    const f = await fleet();
    const [a, b, cli] = [f.open(), f.open(), f.open()];
    const first = await a.registerNode({ name: 'lb1', address: '198.18.2.1', version: '1.0.0' }, { leaseTtlS: 3 });
    await first.reportStatus(status(1));
    await first.reportHealth(new Map([['web/a', 'down']]));
    const successor = await b.registerNode({ name: 'lb1', address: '198.18.2.1', version: '1.1.0' });
    await successor.reportStatus(status(2));
    await successor.reportHealth(new Map([['web/a', 'up']]));
    await successor.close();
    await wait('the record, status and health back', async () => {
      const [view] = await cli.listNodes();
      return view?.record !== undefined && view.status !== undefined && (await cli.listHealthReports()).length === 1;
    });
    expect(await cli.listNodes()).toMatchObject([
      { name: 'lb1', record: { address: '198.18.2.1', version: '1.0.0' }, status: { desiredRevision: 1 } },
    ]);
    expect(await healthOf(cli)).toEqual({ lb1: { 'web/a': 'down' } });
    expect((await cli.nodeLeases()).get('lb1')?.grantedS).toBe(3); // on the first one's lease: its close() takes it
    await first.close();
    expect(await cli.listNodes()).toEqual([]);
    expect(await cli.listHealthReports()).toEqual([]);
  });

  test('close(): the client leadership ends (the next candidate is elected) and its registrations go', async () => {
    const f = await fleet();
    const [a, b] = [f.open(), f.open()];
    const la = await a.campaign('lb1');
    const pb = b.campaign('lb2');
    await a.registerNode({ name: 'lb1' }, { leaseTtlS: 2 }); // etcd: left to expire, as a crash leaves it
    await a.close();
    expect(la.isLeader()).toBe(false);
    expect(await la.lost).toBeUndefined();
    const lb = await pb;
    expect(lb.isLeader()).toBe(true);
    expect(await b.getLeader()).toBe('lb2');
    await wait('the registration gone', async () => (await b.listNodes()).length === 0);
    await lb.resign();
  });
}
