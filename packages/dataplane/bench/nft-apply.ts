/**
 * The nftables driver's apply latency at M = 65,537 (dataplane.bench.ts runs it once per delta writer): a full table
 * (one run), and medians of 5: one of 100 backends leaving, one slot, a quarter and half of the table (one of 4
 * and of 2 backends), a backend back before the fold, and a restart with nothing to change. Its own namespace;
 * removed at the end.
 */
import { buildTable } from '@l4fleet/maglev';
import { pino } from 'pino';
import { createNftablesDataPlane, type VipTable } from '../src/index.js';
import { median } from './flood.js';
import { benchLab } from './interrupt.js';

const logger = pino({ level: 'silent' });
/** The bench's fold delay: short, so waiting for folds between changes does not make the run long. */
const FOLD_MS = 200;

/**
 * Apply latency at M = 65,537 through one delta writer ("netlink": l4fleet-nft-batch; "nft": nft -f).
 * Figures are suffixed with the writer's name (fullApplyMs_netlink, ...).
 */
export async function nftApplyLatency(writer: 'netlink' | 'nft'): Promise<Record<string, number>> {
  const lab = await benchLab('l4bn');
  try {
    const h = await lab.host('lat');
    await h.run(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    const names = Array.from({ length: 100 }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${200 + (i >> 8)}.${i & 255}`,
      port: 80,
    }));
    const vip = (backends: typeof names): VipTable => ({
      vip: { address: '198.51.100.1', port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 1,
      backends,
      slots: buildTable(backends, 65_537),
    });
    const full = vip(names);
    const less = vip(names.slice(1));
    const dp = createNftablesDataPlane({
      interface: 'eth0',
      netns: h.ns,
      logger,
      deltaWriter: writer,
      foldDelayMs: FOLD_MS,
    });
    // Every timed change starts from a folded table (the usual case: changes minutes apart), and only the change
    // is timed: the step back to the starting table is not a sample. The full table is one run (from empty).
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, FOLD_MS + 500));
    const SAMPLES = 5;
    /** Median over SAMPLES of: fold, time `change`, go back to `from` untimed. */
    const timedFrom = async (
      from: VipTable,
      change: (i: number) => VipTable,
    ): Promise<{ ms: number; slots: number }> => {
      await dp.apply([from]);
      const ms: number[] = [];
      let slots = 0;
      for (let i = 0; i < SAMPLES; i++) {
        await settle();
        const r = await dp.apply([change(i)]);
        ms.push(r.durationMs);
        slots = r.slotsChanged;
        await dp.apply([from]);
      }
      return { ms: median(ms), slots };
    };
    const fullApply = (await dp.apply([full])).durationMs;
    const leave = await timedFrom(full, () => less);
    const one = await timedFrom(full, (i) => {
      const slots = Int32Array.from(full.slots);
      slots[i] = ((slots[i] as number) + 1) % names.length;
      return { ...full, slots };
    });
    // Small pools: one of 4 backends leaving rewrites a quarter of the table (Maglev moves its ~16,384
    // slots), one of 2 half of it. "Flap": the backend comes back before the fold (new backend id: its slots are
    // replaced in the overlay); the leave before it is not timed.
    const small = async (n: number): Promise<{ ms: number; flapMs: number; slots: number }> => {
      const all = vip(names.slice(0, n));
      const fewer = vip(names.slice(1, n));
      const left = await timedFrom(all, () => fewer);
      const back: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        await settle();
        await dp.apply([fewer]);
        back.push((await dp.apply([all])).durationMs);
      }
      return { ms: left.ms, flapMs: median(back), slots: left.slots };
    };
    const quarter = await small(4);
    const half = await small(2);
    await dp.apply([full]);
    await settle(); // folded, as a node usually is when its agent restarts
    await dp.close();
    const reconciles: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const restart = createNftablesDataPlane({ interface: 'eth0', netns: h.ns, logger, deltaWriter: writer });
      reconciles.push((await restart.apply([full])).durationMs);
      await restart.close();
    }
    const figures: Record<string, number> = {
      fullApplyMs: fullApply,
      backendLeaveDeltaMs: leave.ms,
      backendLeaveSlots:
        less.slots.length -
        full.slots.filter(
          (_s, i) => full.backends[full.slots[i] as number]?.name === less.backends[less.slots[i] as number]?.name,
        ).length,
      oneSlotDeltaMs: one.ms,
      quarterPoolLeaveDeltaMs: quarter.ms,
      quarterPoolLeaveSlots: quarter.slots,
      halfPoolLeaveDeltaMs: half.ms,
      quarterPoolFlapDeltaMs: quarter.flapMs,
      halfPoolFlapDeltaMs: half.flapMs,
      halfPoolLeaveSlots: half.slots,
      restartReconcileMs: median(reconciles),
    };
    return Object.fromEntries(Object.entries(figures).map(([k, v]) => [`${k}_${writer}`, v]));
  } finally {
    await lab.cleanup();
  }
}
