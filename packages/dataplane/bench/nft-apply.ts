/**
 * The nftables driver's apply latency at M = 65,537 (dataplane.bench.ts runs it once per delta writer): a full table,
 * one of 100 backends leaving, one slot, a quarter and half of the table (one of 4 and of 2 backends), a backend
 * back before the fold, and a restart with nothing to change. Its own namespace; removed at the end.
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
    const fullApply = (await dp.apply([full])).durationMs;
    const deltas: number[] = [];
    for (let i = 0; i < 5; i++) deltas.push((await dp.apply([i % 2 === 0 ? less : full])).durationMs);
    const ones: number[] = [];
    for (let i = 0; i < 5; i++) {
      const slots = Int32Array.from(full.slots);
      slots[i] = ((slots[i] as number) + 1) % names.length;
      ones.push((await dp.apply([{ ...full, slots }])).durationMs);
    }
    // Small pools: one of 4 backends leaving rewrites a quarter of the table (Maglev moves its ~16,384
    // slots), one of 2 half of it. Each change comes after the previous one was folded (the usual case);
    // "flap": the backend comes back before that (new backend id: its slots are replaced in the overlay).
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, FOLD_MS + 500));
    const small = async (n: number): Promise<{ ms: number; flapMs: number; slots: number }> => {
      const all = vip(names.slice(0, n));
      const fewer = vip(names.slice(1, n));
      await dp.apply([all]);
      await settle();
      const ms: number[] = [];
      let slots = 0;
      for (let i = 0; i < 5; i++) {
        const r = await dp.apply([i % 2 === 0 ? fewer : all]);
        ms.push(r.durationMs);
        slots = r.slotsChanged;
        await settle();
      }
      const back: number[] = [];
      for (let i = 0; i < 3; i++) {
        await dp.apply([fewer]);
        back.push((await dp.apply([all])).durationMs);
        await settle();
      }
      return { ms: median(ms), flapMs: median(back), slots };
    };
    const quarter = await small(4);
    const half = await small(2);
    await dp.apply([full]);
    await settle(); // folded, as a node usually is when its agent restarts
    await dp.close();
    const restart = createNftablesDataPlane({ interface: 'eth0', netns: h.ns, logger, deltaWriter: writer });
    const reconcile = (await restart.apply([full])).durationMs;
    await restart.close();
    const figures: Record<string, number> = {
      fullApplyMs: fullApply,
      backendLeaveDeltaMs: median(deltas),
      backendLeaveSlots:
        less.slots.length -
        full.slots.filter(
          (_s, i) => full.backends[full.slots[i] as number]?.name === less.backends[less.slots[i] as number]?.name,
        ).length,
      oneSlotDeltaMs: median(ones),
      quarterPoolLeaveDeltaMs: quarter.ms,
      quarterPoolLeaveSlots: quarter.slots,
      halfPoolLeaveDeltaMs: half.ms,
      quarterPoolFlapDeltaMs: quarter.flapMs,
      halfPoolFlapDeltaMs: half.flapMs,
      halfPoolLeaveSlots: half.slots,
      restartReconcileMs: reconcile,
    };
    return Object.fromEntries(Object.entries(figures).map(([k, v]) => [`${k}_${writer}`, v]));
  } finally {
    await lab.cleanup();
  }
}
