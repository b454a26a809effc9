import type { MemberStatus } from '@l4fleet/config';
import type { Namespace } from 'etcd3';
import pino, { type Logger } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { StoreError } from './errors.js';
import { keys } from './layout.js';
import { isNameTaken } from './node-claim.js';
import { NodeStore } from './nodes.js';
import { EtcdNodeRegistration, REREGISTER_RETRY_MAX_MS, REREGISTER_RETRY_MS } from './registration.js';
import { FakeNamespace } from './registration-fake.test-helper.js';
import type { StoreContext } from './store-context.js';
import type { NodeRegistrationOptions } from './types.js';

/** `pool/address:80` -> status for `n` members (default member names). */
const poolOf = (pool: string, n: number, status: MemberStatus = 'up'): [string, MemberStatus][] =>
  Array.from({ length: n }, (_v, k) => [`${pool}/10.${k >> 16}.${(k >> 8) & 255}.${k & 255}:80`, status]);

describe('store registration - health reports', () => {
  let reg: EtcdNodeRegistration | undefined;
  afterEach(async () => {
    await reg?.close();
    reg = undefined;
  });

  test('store registration - a pool too large for etcd is refused by name, its stale report deleted; the others are reported', async () => {
    const ns = new FakeNamespace();
    reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1' },
      {},
      pino({ level: 'silent' }),
      1_000,
    );
    await reg.reportHealth(new Map([...poolOf('api', 2), ...poolOf('big', 2), ...poolOf('web', 2)]));
    const view = new Map([...poolOf('api', 2, 'down'), ...poolOf('big', 100_000, 'down'), ...poolOf('web', 2, 'down')]);
    const err = await reg.reportHealth(view).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOO_LARGE', key: keys.healthPool('lb1', 'big') });
    expect((err as Error).message).toMatch(/health\/lb1\/big: [\d,]+ bytes, above the 1,048,576 bytes/);
    expect(ns.kv.has(keys.healthPool('lb1', 'big'))).toBe(false);
    for (const pool of ['api', 'web']) {
      expect(Object.values(JSON.parse(ns.kv.get(keys.healthPool('lb1', pool)) ?? '{}').members)).toEqual([
        'down',
        'down',
      ]);
    }
  });

  test('store registration - a report whose write failed is written by the retry of the same view', async () => {
    const ns = new FakeNamespace();
    reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1' },
      {},
      pino({ level: 'silent' }),
      1_000,
    );
    await reg.reportHealth(new Map([['web/a', 'up']]));
    const view = new Map([
      ['web/a', 'down'],
      ['api/b', 'up'],
    ] as const);
    ns.failNext = 1;
    await expect(reg.reportHealth(view)).rejects.toBeInstanceOf(StoreError);
    await reg.reportHealth(view);
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'down' });
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'api')) ?? '{}').members).toEqual({ b: 'up' });
    // A pool dropped from the view is deleted even when the first delete failed.
    ns.failNext = 1;
    await expect(reg.reportHealth(new Map([['api/b', 'up']]))).rejects.toBeInstanceOf(StoreError);
    await reg.reportHealth(new Map([['api/b', 'up']]));
    expect(ns.kv.has(keys.healthPool('lb1', 'web'))).toBe(false);
  });
});

describe('store registration - re-registration after a lost lease', () => {
  let reg: EtcdNodeRegistration | undefined;
  afterEach(async () => {
    await reg?.close();
    reg = undefined;
    vi.useRealTimers();
  });

  async function lostRegistration() {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    let reregistered = 0;
    reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1' },
      { onReregistered: () => void (reregistered += 1) },
      logger,
      1_000,
    );
    const loseLease = () => ns.lost.at(-1)?.(new Error('lease expired'));
    return { ns, lines, loseLease, reregistered: () => reregistered };
  }

  const failedWarnings = (lines: Record<string, unknown>[]) =>
    lines.filter((l) => l.event === 'nodeReregisterFailed' && l.level === 40);

  // Re-registration was retried every 500 ms for as long as etcd refused grants: 121 warnings a minute.
  test('store registration - failed grants back off to REREGISTER_RETRY_MAX_MS, warned once', async () => {
    const s = await lostRegistration();
    s.ns.failGrants = true;
    const before = s.ns.grants;
    s.loseLease();
    await vi.advanceTimersByTimeAsync(60_000);
    const attempts = s.ns.grants - before;
    // 0.5, 1, 2, 4 s, then every 5 s: 16 attempts in a minute (at 0, 0.5, 1.5, 3.5, 7.5, 12.5 ... 57.5 s).
    expect(attempts).toBeGreaterThanOrEqual(14);
    expect(attempts).toBeLessThanOrEqual(17);
    expect(failedWarnings(s.lines)).toHaveLength(1);
    expect(s.lines.filter((l) => l.event === 'nodeReregisterFailed').length).toBe(attempts);
    s.ns.failGrants = false;
    await vi.advanceTimersByTimeAsync(REREGISTER_RETRY_MAX_MS);
    expect(s.reregistered()).toBe(1);
  });

  test('store registration - a re-registration that went through resets the backoff and the warning', async () => {
    const s = await lostRegistration();
    s.ns.failGrants = true;
    s.loseLease();
    await vi.advanceTimersByTimeAsync(30_000);
    s.ns.failGrants = false;
    await vi.advanceTimersByTimeAsync(REREGISTER_RETRY_MAX_MS);
    expect(s.reregistered()).toBe(1);
    s.ns.failGrants = true;
    s.loseLease();
    await vi.advanceTimersByTimeAsync(0);
    const before = s.ns.grants;
    await vi.advanceTimersByTimeAsync(REREGISTER_RETRY_MS);
    expect(s.ns.grants - before).toBe(1);
    expect(failedWarnings(s.lines)).toHaveLength(2);
    s.ns.failGrants = false;
    await vi.advanceTimersByTimeAsync(2 * REREGISTER_RETRY_MS);
    expect(s.reregistered()).toBe(2);
  });

  test('store registration - close() ends a re-registration waiting for its next attempt', async () => {
    const s = await lostRegistration();
    s.ns.failGrants = true;
    s.loseLease();
    await vi.advanceTimersByTimeAsync(20_000);
    const before = s.ns.grants;
    await reg?.close();
    reg = undefined;
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.ns.grants).toBe(before);
  });

  // A grant still in flight when close() ran went on to register the node: a lease kept alive after close, and
  // onReregistered called on a closed registration.
  test('store registration - a grant in flight at close() is revoked, not kept: no keepalive, no onReregistered', async () => {
    const s = await lostRegistration();
    let open: () => void = () => undefined;
    s.ns.grantGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    s.loseLease();
    await vi.advanceTimersByTimeAsync(0);
    const closing = reg?.close();
    reg = undefined;
    open();
    await closing;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.reregistered()).toBe(0);
    expect(s.ns.revokedIds).toContain(String(s.ns.grants));
    expect(vi.getTimerCount()).toBe(0);
    expect(s.lines.filter((l) => l.event === 'nodeRegistered')).toHaveLength(1);
  });

  // close() resolved before the in-flight grant was revoked: the caller then closed the etcd client under it.
  test('store registration - close() waits for a grant in flight to be revoked before it resolves', async () => {
    const s = await lostRegistration();
    let open: () => void = () => undefined;
    s.ns.grantGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    s.loseLease();
    await vi.advanceTimersByTimeAsync(0);
    const inFlight = String(s.ns.grants);
    let closed = false;
    const closing = reg?.close().then(() => {
      closed = true;
    });
    reg = undefined;
    await vi.advanceTimersByTimeAsync(10);
    expect(closed).toBe(false);
    open();
    await closing;
    expect(s.ns.revokedIds).toContain(inFlight);
  });

  // With each etcd call at 800 ms of a 1000 ms attempt, the grant in flight went on to write the node's records (a
  // txn) before it saw `closed` and revoked: close(), bounded by two attempts, resolved at 2000 ms, the revoke landed
  // at 2300 ms, so the agent closed the etcd client under it and the lease (and records) stayed for the TTL.
  test('store registration - a slow grant in flight at close() is revoked before anything is written, within the bound', async () => {
    const s = await lostRegistration();
    s.ns.callMs = 800;
    const commits = s.ns.commits;
    s.loseLease();
    await vi.advanceTimersByTimeAsync(100);
    const inFlight = String(s.ns.grants);
    let revokedAtClose: string[] | undefined;
    const closing = reg?.close().then(() => {
      revokedAtClose = [...s.ns.revokedIds];
    });
    reg = undefined;
    await vi.advanceTimersByTimeAsync(10_000);
    await closing;
    expect(revokedAtClose).toContain(inFlight);
    expect(s.ns.commits).toBe(commits);
    expect(s.reregistered()).toBe(0);
  });

  test('store registration - close() does not wait past its bound for a grant etcd never answers', async () => {
    const s = await lostRegistration();
    s.ns.grantGate = new Promise<void>(() => undefined);
    s.loseLease();
    await vi.advanceTimersByTimeAsync(0);
    let closed = false;
    const closing = reg?.close().then(() => {
      closed = true;
    });
    reg = undefined;
    await vi.advanceTimersByTimeAsync(2_999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(closed).toBe(true);
    await closing;
  });
});

describe('store registration - registerNode of one name twice at once (nodes.ts)', () => {
  const store = (ns: FakeNamespace) =>
    new NodeStore({
      ns: ns as unknown as Namespace,
      log: pino({ level: 'silent' }),
      attemptMs: 1_000,
    } as unknown as StoreContext);

  // decodeNodeRecord refuses these: written, the record was refused on every read (the fake is held to this by the
  // store contract; the etcd one here, without an etcd).
  test('store registration - info readers would refuse is refused before anything is written', async () => {
    const ns = new FakeNamespace();
    const nodes = store(ns);
    await expect(nodes.registerNode({ name: 'lb1', address: '\u009b2J' })).rejects.toMatchObject({
      code: 'INVALID_STATE',
      message: 'register node lb1: node.address: "\\u009b2J" is not an IP address',
    });
    await expect(nodes.registerNode({ name: 'lb1', version: 'v\u0085' })).rejects.toMatchObject({
      code: 'INVALID_STATE',
      message: 'register node lb1: node.version: "v\\u0085" holds a control character',
    });
    expect(ns.kv.size).toBe(0);
    expect(ns.grants).toBe(0);
    const reg = await nodes.registerNode({ name: 'lb1', address: '198.18.0.1', version: '1.0.0' });
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}')).toMatchObject({ address: '198.18.0.1', version: '1.0.0' });
    await reg.close();
  });

  test('store registration - the second call waits for the first: one grant, the same registration', async () => {
    const ns = new FakeNamespace();
    const nodes = store(ns);
    const [a, b] = await Promise.all([nodes.registerNode({ name: 'lb1' }), nodes.registerNode({ name: 'lb1' })]);
    expect(b).toBe(a);
    expect(ns.grants).toBe(1);
    await a.close();
  });

  // The name is held from the call on, and let go when the create fails: else no later call could register it.
  test('store registration - a create that fails fails both calls and lets go of the name', async () => {
    const ns = new FakeNamespace();
    ns.failGrants = true;
    const nodes = store(ns);
    const [e1, e2] = await Promise.all([
      nodes.registerNode({ name: 'lb1' }).catch((e: unknown) => e),
      nodes.registerNode({ name: 'lb1' }).catch((e: unknown) => e),
    ]);
    expect(e1).toBeInstanceOf(StoreError);
    expect(e2).toBe(e1);
    expect(ns.grants).toBe(1);
    await expect(nodes.reportHealth('lb1', new Map())).rejects.toMatchObject({ code: 'NOT_FOUND' });
    ns.failGrants = false;
    const reg = await nodes.registerNode({ name: 'lb1' });
    expect(ns.kv.has(keys.node('lb1'))).toBe(true);
    await reg.close();
  });

  // 41b580d: an old registration closed a second time let go of the name a newer one held: the next registerNode
  // made a second lease beside it, and reportHealth answered NOT_FOUND for a node that was registered.
  test('store registration - an old registration closed again keeps the newer registration of its name', async () => {
    const ns = new FakeNamespace();
    const nodes = store(ns);
    const r1 = await nodes.registerNode({ name: 'lb1' });
    await r1.close();
    const r2 = await nodes.registerNode({ name: 'lb1' });
    expect(r2).not.toBe(r1);
    await r1.close();
    expect(await nodes.registerNode({ name: 'lb1' })).toBe(r2);
    expect(ns.grants).toBe(2);
    await nodes.reportHealth('lb1', new Map([['web/a', 'up']]));
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'up' });
    await r2.close();
  });
});

describe('store registration - node names are unique', () => {
  const silent = pino({ level: 'silent' });
  const create = (ns: FakeNamespace, address: string, options: NodeRegistrationOptions = {}, log: Logger = silent) =>
    EtcdNodeRegistration.create(ns as unknown as Namespace, { name: 'lb1', address }, options, log, 1_000);
  afterEach(() => {
    vi.useRealTimers();
  });

  // A second agent with the same node.name wrote over the first's record; when it stopped, its lease took the record
  // with it while the first ran on unregistered (gone from `get nodes`, its votes lost to the aggregator).
  test('store registration - a name held by an agent at another address is refused naming the key and the holder', async () => {
    const ns = new FakeNamespace();
    const first = await create(ns, '198.18.0.1');
    const err = await create(ns, '198.18.0.2').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT', key: keys.node('lb1') });
    expect((err as Error).message).toBe(
      `register node lb1: ${keys.node('lb1')}: node.name "lb1" is already registered by 198.18.0.1 (lease 1); node names must be unique`,
    );
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}').address).toBe('198.18.0.1');
    expect(ns.leases.get(keys.node('lb1'))).toBe('1');
    // Refused on the read, before a grant: no lease granted and revoked per attempt.
    expect(ns.grants).toBe(1);
    expect(ns.revokedIds).toEqual([]);
    await first.close();
    expect(ns.kv.has(keys.node('lb1'))).toBe(false);
    const second = await create(ns, '198.18.0.2');
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}').address).toBe('198.18.0.2');
    await second.close();
  });

  // The holder's address is read from the raw record (the claim does not decode it): a hand-written one on a live lease
  // put a CSI and 100,000 chars into the CONFLICT message, logged by registerRefused on every retry.
  test('store registration - a holder whose address is not an IP is shown escaped and cut', async () => {
    const ns = new FakeNamespace();
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: `\u009b2J${'x'.repeat(100_000)}` }), '7');
    const err = await create(ns, '198.18.0.1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT', key: keys.node('lb1') });
    const message = (err as Error).message;
    expect([...message].filter((c) => (c.codePointAt(0) ?? 0) < 0x20 || (c.codePointAt(0) ?? 0) >= 0x7f)).toEqual([]);
    expect(message.length).toBeLessThan(250);
    expect(message).toContain('is already registered by an unreadable address "\\u009b2Jxxx');
    expect(message).toContain('(lease 7); node names must be unique');
  });

  // The same node restarted (or upgraded) while its old lease lives: the old process ends only what is still on its lease.
  test('store registration - the same address takes the record over; a record on no lease is taken', async () => {
    const ns = new FakeNamespace();
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.9' }), '0');
    const old = await create(ns, '198.18.0.1');
    const fresh = await create(ns, '198.18.0.1');
    expect(ns.leases.get(keys.node('lb1'))).toBe('2');
    await old.close();
    expect(ns.kv.has(keys.node('lb1'))).toBe(true);
    await fresh.close();
  });

  test('store registration - a record put by another agent between the read and the write is not written over', async () => {
    const ns = new FakeNamespace();
    const get = ns.get.bind(ns);
    ns.get = (key: string) => ({
      exec: async () => {
        const read = await get(key).exec();
        ns.putAs(key, JSON.stringify({ name: 'lb1', address: '198.18.0.2' }), '77');
        return read;
      },
    });
    await expect(create(ns, '198.18.0.1')).rejects.toMatchObject({ code: 'CONFLICT', key: keys.node('lb1') });
    expect(ns.leases.get(keys.node('lb1'))).toBe('77');
  });

  // The node restarted at once after a crash: its previous process's record (same address, live lease) is taken, and
  // that lease expires while the grant is in flight, so the fenced write finds the record changed. Thrown as the
  // holder's refusal was (CONFLICT alone), the agent serving its state file took the name as taken: drained, exit 1.
  test("store registration - the error from a failed revision check is distinguishable from a holder's refusal", async () => {
    const ns = new FakeNamespace();
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.1' }), '77');
    let release: () => void = () => undefined;
    ns.grantGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const created = create(ns, '198.18.0.1').catch((e: unknown) => e);
    await vi.waitFor(() => expect(ns.grants).toBe(1), { timeout: 5_000 });
    ns.remove(keys.node('lb1')); // the old process's lease expired: its record went with it
    release();
    const err = await created;
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ retryable: true, key: keys.node('lb1') });
    expect((err as Error).message).toMatch(/changed while registering/);
    expect(isNameTaken(err)).toBe(false);
    // A holder at another address is one.
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.2' }), '78');
    const refusal = await create(ns, '198.18.0.1').catch((e: unknown) => e);
    expect(isNameTaken(refusal)).toBe(true);
  });

  // The lease lost (etcd partitioned longer than the TTL) and the name registered by another host meanwhile: the
  // re-registration was refused with CONFLICT forever (nodeReregisterFailed once, then debug) while the agent served,
  // announced and obeyed the other host's drain flag as that node.
  test('store registration - a re-registration refused by another holder: onNameTaken, no more attempts, reports refused', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const taken: StoreError[] = [];
    let reregistered = 0;
    const reg = await create(ns, '198.18.0.1', {
      onReregistered: () => void (reregistered += 1),
      onNameTaken: (err) => void taken.push(err),
    });
    // Its lease expired (etcd away): the record went with it, and another agent registered the name meanwhile.
    ns.remove(keys.node('lb1'));
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.2' }), '77');
    ns.lost.at(-1)?.(new Error('lease expired'));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(reregistered).toBe(0);
    expect(taken).toHaveLength(1);
    expect(taken[0]).toMatchObject({ code: 'CONFLICT', key: keys.node('lb1') });
    expect(taken[0]?.message).toMatch(/node.name "lb1" is already registered by 198.18.0.2 \(lease 77\)/);
    const grants = ns.grants;
    ns.remove(keys.node('lb1')); // the other agent's lease ended: this one does not come back by itself
    await vi.advanceTimersByTimeAsync(REREGISTER_RETRY_MAX_MS * 4);
    expect(ns.grants).toBe(grants);
    expect(reregistered).toBe(0);
    await expect(reg.reportHealth(new Map([['web/a', 'up']]))).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(
      reg.reportStatus({ tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(ns.kv.size).toBe(0);
    await reg.close();
  });
});

describe('store registration - a node record deleted while the lease lives', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // Deleted by hand (etcdctl del) or by the lease of a successor at the same address that stopped first: the agent
  // ran on, its lease renewed, with no record (gone from `get nodes` and from the aggregator's live nodes).
  test('store registration - the record is written again at the next renewal; one another agent put is left', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1', address: '198.18.0.1' },
      { leaseTtlS: 9 },
      log,
      1_000,
    );
    ns.remove(keys.node('lb1'));
    await vi.advanceTimersByTimeAsync(3_000);
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}').address).toBe('198.18.0.1');
    expect(ns.leases.get(keys.node('lb1'))).toBe('1');
    expect(lines.filter((l) => l.event === 'nodeRecordRestored')).toHaveLength(1);
    // Taken over by a successor at the same address: its record stays.
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.1' }), '5');
    await vi.advanceTimersByTimeAsync(9_000);
    expect(ns.leases.get(keys.node('lb1'))).toBe('5');
    await reg.close();
  });

  // A successor at the same address took the record over, reported its own health and status, and stopped: its revoke
  // took all three. Writing back the record alone left the node live with no reports (reportHealth writes only the
  // pools that changed), so a dead backend it saw was never decided down.
  test('store registration - the health reports and status go back with the record', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1', address: '198.18.0.1' },
      { leaseTtlS: 9 },
      pino({ level: 'silent' }),
      1_000,
    );
    await reg.reportHealth(new Map([['web/a', 'down']]));
    await reg.reportStatus({ tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 3 });
    const mine = [keys.node('lb1'), keys.healthPool('lb1', 'web'), keys.status('lb1')];
    // The successor's takeover (each key now on its lease 5), then its stop: the revoke deletes them all.
    for (const key of mine) ns.putAs(key, ns.kv.get(key) ?? '', '5');
    for (const key of mine) ns.remove(key);
    await vi.advanceTimersByTimeAsync(3_000);
    for (const key of mine) expect(ns.leases.get(key), key).toBe('1');
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'down' });
    expect(JSON.parse(ns.kv.get(keys.status('lb1')) ?? '{}').desiredRevision).toBe(3);
    // The same view again writes nothing more: it is what etcd holds.
    const commits = ns.commits;
    await reg.reportHealth(new Map([['web/a', 'down']]));
    expect(ns.commits).toBe(commits);
    await reg.close();
    for (const key of mine) expect(ns.kv.has(key), key).toBe(false);
  });
  // Its record deleted (the etcdctl del the guide recommends) and the name registered by another address: the restore
  // returned quietly, and this agent renewed on, writing health and status over the winner's on its own lease.
  test('store registration - a record another address holds found at a renewal: onNameTaken, reports refused', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const taken: StoreError[] = [];
    const reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1', address: '198.18.0.1' },
      { leaseTtlS: 9, onNameTaken: (err) => void taken.push(err) },
      pino({ level: 'silent' }),
      1_000,
    );
    ns.remove(keys.node('lb1'));
    ns.putAs(keys.node('lb1'), JSON.stringify({ name: 'lb1', address: '198.18.0.2' }), '5');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(taken).toHaveLength(1);
    expect(taken[0]).toMatchObject({ code: 'CONFLICT', key: keys.node('lb1') });
    expect(taken[0]?.message).toMatch(/already registered by 198\.18\.0\.2 \(lease 5\)/);
    await expect(reg.reportHealth(new Map([['web/a', 'up']]))).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(ns.kv.has(keys.healthPool('lb1', 'web'))).toBe(false);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(taken).toHaveLength(1);
    expect(ns.leases.get(keys.node('lb1'))).toBe('5');
    await reg.close();
  });

  // A report landing while the restore's txn is in flight: the txn wrote the view from before it, so the report is
  // written once more after it (else etcd kept the older view until that pool changed again).
  test('store registration - a report landing while the restore writes is written again after it', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1', address: '198.18.0.1' },
      { leaseTtlS: 9 },
      pino({ level: 'silent' }),
      1_000,
    );
    await reg.reportHealth(new Map([['web/a', 'up']]));
    ns.remove(keys.node('lb1'));
    ns.remove(keys.healthPool('lb1', 'web'));
    // Hold the restore's txn (the one fenced on the absent record) until the report below has run.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const txnOf = ns.if.bind(ns);
    let held = false;
    ns.if = (key, target, cmp, value) => {
      const txn = txnOf(key, target, cmp, value);
      if (held || target !== 'Mod') return txn;
      held = true;
      const commit = txn.commit;
      txn.commit = async () => {
        await gate;
        return commit();
      };
      return txn;
    };
    await vi.advanceTimersByTimeAsync(3_000);
    expect(held).toBe(true);
    // The report: no lease-less path, it writes on the lease at once (and lands before the restore's txn).
    await reg.reportHealth(new Map([['web/a', 'down']]));
    release();
    await vi.advanceTimersByTimeAsync(10);
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'down' });
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}').address).toBe('198.18.0.1');
    await reg.close();
  });
});
