import { MemoryFleetStore, StoreError } from '@l4fleet/store';

/**
 * A memory store whose decided record of pool `refusedPool` is too large for etcd: like the etcd store
 * (store decided.ts, fenced-write.ts) it writes every other pool and then throws TOO_LARGE naming
 * `decided/<refusedPool>`, as long as that pool has anything to write (set another pool name to stop refusing).
 * Counts the write attempts.
 */
export class RefusingPoolStore extends MemoryFleetStore {
  writes = 0;
  constructor(public refusedPool: string) {
    super();
  }

  override async writeDecided(...[decided, options = {}]: Parameters<MemoryFleetStore['writeDecided']>) {
    this.writes += 1;
    const refused = (key: string) => key.startsWith(`${this.refusedPool}/`);
    const pools = [...(options.pools ?? [])];
    const tooLarge =
      [...decided.keys()].some(refused) ||
      [...(options.ramps?.keys() ?? [])].some(refused) ||
      pools.includes(this.refusedPool);
    await super.writeDecided(new Map([...decided].filter(([k]) => !refused(k))), {
      ...options,
      ramps: new Map([...(options.ramps ?? [])].filter(([k]) => !refused(k))),
      pools: pools.filter((p) => p !== this.refusedPool),
    });
    if (tooLarge) {
      const key = `decided/${this.refusedPool}`;
      throw new StoreError(
        'TOO_LARGE',
        `write decided: ${key}: refused, the other records written (write decided: ${key}: 1,100,000 bytes, ` +
          'above the 1,048,576 bytes one write may carry; not written)',
        { key },
      );
    }
  }
}
