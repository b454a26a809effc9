/**
 * What a registration takes for its name taken (onNameTaken: the agent drains and exits 1), and what it does not: a
 * fenced write that lost a race is retried, and a record on no lease (written by hand) is left.
 * The cases of registration.test.ts ("node names are unique", "a node record deleted while the lease lives") go on here.
 */
import type { Namespace } from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { StoreError } from './errors.js';
import { keys } from './layout.js';
import { EtcdNodeRegistration } from './registration.js';
import { FakeNamespace } from './registration-fake.test-helper.js';
import type { NodeRegistrationOptions } from './types.js';

const create = (ns: FakeNamespace, options: NodeRegistrationOptions) =>
  EtcdNodeRegistration.create(
    ns as unknown as Namespace,
    { name: 'lb1', address: '198.18.0.1' },
    { leaseTtlS: 9, ...options },
    pino({ level: 'silent' }),
    1_000,
  );

describe('store registration - node names are unique: what is not a name taken', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // The lease lost, the re-registration's claim read this node's own record, and the record went (its lease expired)
  // while the grant was in flight: the fenced write failed, a CONFLICT without reason 'nameTaken'. Taken for the
  // holder's refusal (any CONFLICT), the node drained and exited 1 with nobody else holding the name.
  test('store registration - a re-registration whose fenced write lost a race is retried, not taken for a name taken', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const taken: StoreError[] = [];
    let reregistered = 0;
    const reg = await create(ns, {
      onReregistered: () => void (reregistered += 1),
      onNameTaken: (err) => void taken.push(err),
    });
    let release: () => void = () => undefined;
    ns.grantGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const grants = ns.grants;
    ns.lost.at(-1)?.(new Error('lease expired'));
    await vi.waitFor(() => expect(ns.grants).toBe(grants + 1));
    ns.remove(keys.node('lb1')); // the lost lease's record expires while the grant is in flight
    ns.grantGate = undefined;
    release();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(taken).toEqual([]);
    expect(reregistered).toBe(1);
    expect(ns.grants).toBe(grants + 2);
    expect(JSON.parse(ns.kv.get(keys.node('lb1')) ?? '{}').address).toBe('198.18.0.1');
    await reg.close();
  });

  // A record on no lease is one written by hand (etcdctl put), never an agent's: the claim takes it at a registration,
  // so a renewal finding one at another address leaves it (the restore writes only an absent record).
  test('store registration - a lease-less record at another address found at a renewal is left, reports go on', async () => {
    vi.useFakeTimers();
    const ns = new FakeNamespace();
    const taken: StoreError[] = [];
    const reg = await create(ns, { onNameTaken: (err) => void taken.push(err) });
    ns.remove(keys.node('lb1'));
    const handWritten = JSON.stringify({ name: 'lb1', address: '198.18.0.2' });
    ns.putAs(keys.node('lb1'), handWritten, '0');
    await vi.advanceTimersByTimeAsync(9_000); // renewals every 3 s, each looking at the record
    expect(taken).toEqual([]);
    expect(ns.kv.get(keys.node('lb1'))).toBe(handWritten);
    await reg.reportHealth(new Map([['web/a', 'up']]));
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'up' });
    await reg.close();
  });
});
