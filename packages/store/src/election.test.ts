/**
 * The aggregator election over a fake etcd3 Campaign (elected at once): what a leadership leaves behind in the store
 * once it is lost. The real campaign is tested against etcd in etcd-store.int.test.ts.
 */
import type { Etcd3, Namespace } from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ElectionStore, fenceFailed, fenceOf } from './election.js';
import type { StoreContext } from './store-context.js';

const fake = vi.hoisted(() => ({
  campaigns: [] as { resigned: boolean; emit(e: string, ...a: unknown[]): boolean }[],
}));

vi.mock('etcd3', async (importOriginal) => {
  const actual = await importOriginal<typeof import('etcd3')>();
  const { EventEmitter } = await import('node:events');
  /** Takes its lease from its namespace as etcd3 1.1's does, and is elected on the next tick. */
  class Campaign extends EventEmitter {
    resigned = false;
    private readonly lease: { id: string };
    constructor(
      private readonly namespace: { prefix: string; lease(ttl: number): { id: string } },
      _value: string,
      ttl: number,
    ) {
      super();
      this.lease = namespace.lease(ttl);
      fake.campaigns.push(this);
      setImmediate(() => this.emit('elected'));
    }
    async getCampaignKey(): Promise<string> {
      return `${this.namespace.prefix}${this.lease.id}`;
    }
    async resign(): Promise<void> {
      this.resigned = true;
    }
  }
  return { ...actual, Campaign };
});

/** The election namespace: lease() hands out a lease the keeper never has to renew within a test. */
function fakeContext(): StoreContext {
  let leases = 0;
  const electionNs = {
    prefix: 'l4fleet/v1/election/aggregator/',
    lease: () => ({
      id: String(++leases),
      revoked: () => false,
      keepaliveOnce: async () => undefined,
    }),
  };
  return {
    client: {} as Etcd3,
    ns: { namespace: () => electionNs } as unknown as Namespace,
    log: pino({ level: 'silent' }),
    closeClient: () => undefined,
    attemptMs: 1_000,
    closers: new Set(),
  };
}

afterEach(() => {
  fake.campaigns.length = 0;
});

describe('store election - a lost leadership leaves nothing behind', () => {
  // The aggregator awaits `lost` and campaigns again without resign(): each loss kept its closer (and through it the
  // Campaign, its Lease and the LeaseKeeper) in the store for the life of the process.
  test('a fenced write found the key gone: 1000 campaigns and losses leave no closer; each campaign resigned', async () => {
    const ctx = fakeContext();
    const election = new ElectionStore(ctx);
    for (let i = 0; i < 1000; i++) {
      const l = await election.campaign('lb-1', { leaseTtlS: 10 });
      expect(fenceOf(l)).toBeDefined();
      fenceFailed(l, 'write decided');
      expect(l.isLeader()).toBe(false);
      await expect(l.lost).resolves.toMatchObject({ code: 'LEASE_LOST' });
    }
    expect(ctx.closers.size).toBe(0);
    expect(fake.campaigns.every((c) => c.resigned)).toBe(true);
  });

  test('the lease was lost (etcd3 emits error on the campaign): no closer left', async () => {
    const ctx = fakeContext();
    const election = new ElectionStore(ctx);
    for (let i = 0; i < 100; i++) {
      const l = await election.campaign('lb-1', { leaseTtlS: 10 });
      fake.campaigns.at(-1)?.emit('error', new Error('lease lost'));
      expect(l.isLeader()).toBe(false);
      await expect(l.lost).resolves.toMatchObject({ code: 'LEASE_LOST', message: /lease lost/ });
    }
    expect(ctx.closers.size).toBe(0);
  });

  test('resign() after the loss is a no-op; a held leadership stays registered until resigned', async () => {
    const ctx = fakeContext();
    const election = new ElectionStore(ctx);
    const lost = await election.campaign('lb-1', { leaseTtlS: 10 });
    fenceFailed(lost, 'write decided');
    await lost.resign();
    const held = await election.campaign('lb-1', { leaseTtlS: 10 });
    expect(ctx.closers.size).toBe(1);
    await held.resign();
    await expect(held.lost).resolves.toBeUndefined();
    expect(ctx.closers.size).toBe(0);
  });
});
