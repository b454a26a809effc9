/**
 * A data plane that forwards nothing and records what it was asked: for the agent's unit tests and
 * benches. It validates like the driver it stands for (`driver`: `nftables` takes `l2` and `nat`, `bpf` the
 * direct-return modes, each refusing the others with that driver's error; default every mode), always refusing `nat`
 * on the address of a direct-return VIP as nftables does, and reports deltas by slot.
 */
import { DataPlaneError } from './errors.js';
import { splitNat } from './nft/split-nat.js';
import { changedSlots } from './slots.js';
import {
  type ApplyResult,
  type DataPlane,
  type DataPlaneCounters,
  type Forwarding,
  nothingVerified,
  type VipApplyReport,
  type VipTable,
} from './types.js';
import { validateDesired } from './validate.js';

export interface RecordingDataPlane extends DataPlane {
  /** Every accepted apply() argument, in order. */
  readonly applied: readonly (readonly VipTable[])[];
  /** The last accepted desired state. */
  readonly current: readonly VipTable[];
  readonly closed: boolean;
  /** Makes the next apply() throw this error (once), as a failing kernel would. */
  failNext(err: Error): void;
  /** verify() calls so far (failed ones included). */
  readonly verified: number;
  /**
   * Makes the next verify() report drift (once), as a kernel changed by hand would: every current VIP repaired
   * (`updated`, all its slots), one transaction.
   */
  driftNext(): void;
  /** Makes the next verify() throw this error (once). */
  failNextVerify(err: Error): void;
}

/** The forwarding modes each real driver implements (nft/driver.ts, bpf/driver.ts); the fake's default takes all. */
const FORWARDING_OF: Record<'nftables' | 'bpf' | 'any', readonly Forwarding[]> = {
  nftables: ['l2', 'nat'],
  bpf: ['l2', 'ipip', 'gre', 'gue'],
  any: ['l2', 'ipip', 'gre', 'gue', 'nat'],
};

export function createRecordingDataPlane(
  opts: { requireSamePort?: boolean; driver?: 'nftables' | 'bpf' } = {},
): RecordingDataPlane {
  const driver = opts.driver ?? 'any';
  const applied: (readonly VipTable[])[] = [];
  let current = new Map<string, { label: string; table: VipTable }>();
  let closed = false;
  let failure: Error | undefined;
  let verified = 0;
  let drift = false;
  let verifyFailure: Error | undefined;
  return {
    get applied() {
      return applied;
    },
    get current() {
      return [...current.values()].map((v) => v.table);
    },
    get closed() {
      return closed;
    },
    failNext(err) {
      failure = err;
    },
    get verified() {
      return verified;
    },
    driftNext() {
      drift = true;
    },
    failNextVerify(err) {
      verifyFailure = err;
    },
    async verify(): Promise<ApplyResult> {
      verified += 1;
      if (closed) throw new DataPlaneError('CLOSED', 'verify: the data plane is closed');
      if (verifyFailure) {
        const err = verifyFailure;
        verifyFailure = undefined;
        throw err;
      }
      const repaired = drift && current.size > 0;
      drift = false;
      if (applied.length === 0) return nothingVerified();
      const vips: VipApplyReport[] = [...current.values()].map((v) => ({
        vip: v.label,
        action: repaired ? 'updated' : 'unchanged',
        slotsChanged: repaired ? v.table.slots.length : 0,
        rulesReplaced: false,
      }));
      return {
        vips,
        slotsChanged: vips.reduce((n, v) => n + v.slotsChanged, 0),
        backendsAdded: 0,
        backendsRemoved: 0,
        tableCreated: false,
        transactions: repaired ? 1 : 0,
        durationMs: 0,
      };
    },
    async apply(desired): Promise<ApplyResult> {
      if (closed) throw new DataPlaneError('CLOSED', 'apply: the data plane is closed');
      const started = performance.now();
      // As the driver stood for validates (the modes it implements, others refused naming it), and (nftables'
      // splitNat) nat on the address of a direct server return VIP refused, so a test passing here passes there.
      const vips = validateDesired(desired, {
        requireSamePort: opts.requireSamePort ?? true,
        forwarding: FORWARDING_OF[driver],
        ...(driver === 'any' ? {} : { driver }),
      });
      splitNat(vips);
      if (failure) {
        const err = failure;
        failure = undefined;
        throw err;
      }
      const next = new Map<string, { label: string; table: VipTable }>();
      const reports: VipApplyReport[] = [];
      let slotsChanged = 0;
      for (const v of vips) {
        next.set(v.key, { label: v.label, table: v.table });
        const old = current.get(v.key)?.table;
        const changed = old ? changedSlots(old, v.table) : v.table.slots.length;
        const rulesReplaced =
          !old || old.hash !== v.table.hash || old.seed !== v.table.seed || old.slots.length !== v.table.slots.length;
        slotsChanged += changed;
        reports.push({
          vip: v.label,
          action: !old ? 'added' : changed || rulesReplaced ? 'updated' : 'unchanged',
          slotsChanged: changed,
          rulesReplaced,
        });
      }
      for (const [key, old] of current) {
        if (next.has(key)) continue;
        reports.push({ vip: old.label, action: 'removed', slotsChanged: old.table.slots.length, rulesReplaced: false });
        slotsChanged += old.table.slots.length;
      }
      const names = (m: Map<string, { table: VipTable }>): Set<string> =>
        new Set([...m.values()].flatMap((v) => v.table.backends.map((b) => `${b.address}|${b.mac ?? ''}`)));
      const before = names(current);
      const after = names(next);
      current = next;
      applied.push(desired);
      return {
        vips: reports,
        slotsChanged,
        backendsAdded: [...after].filter((b) => !before.has(b)).length,
        backendsRemoved: [...before].filter((b) => !after.has(b)).length,
        tableCreated: applied.length === 1,
        transactions: reports.some((r) => r.action !== 'unchanged') ? 1 : 0,
        durationMs: performance.now() - started,
      };
    },
    async counters(): Promise<DataPlaneCounters> {
      const zero = { packets: 0, bytes: 0 };
      return {
        vips: [...current.values()].map((v) => ({ vip: v.label, ...zero })),
        backends: [],
        drops: { port: zero, 'no-backend': zero, source: zero },
        flowTable: { entries: 0, fullPackets: 0 },
      };
    },
    async close() {
      closed = true;
    },
  };
}
