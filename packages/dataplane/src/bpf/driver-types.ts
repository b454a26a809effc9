/** The bpf data plane's operations beyond DataPlane, and the loader's OP_PROG_INFO reply they read (driver.ts). */
import type { DataPlane } from '../types.js';

/** A program's id and, with kernel.bpf_stats_enabled=1, its total run time and run count. */
export interface ProgramRun {
  readonly progId: number;
  readonly runTimeNs: number;
  readonly runCount: number;
}

/** The tc program's run figures, and the XDP program's when the fast path is attached. */
export interface ProgramStats extends ProgramRun {
  readonly xdp?: ProgramRun;
}

/** Extra operations for benches and tests; the agent needs only DataPlane. */
export interface BpfDataPlane extends DataPlane {
  /** Empties both flow caches (benches measure first packets with it). */
  clearFlows(): Promise<void>;
  /** The attached program's id and, with kernel.bpf_stats_enabled=1, its total run time and run count. */
  programStats(): Promise<ProgramStats>;
  /**
   * Resolves once the loader has made the next new VIP's table ready (src/bpf/seat.ts), which it does after
   * an apply, off the request path; tests that compare the maps wait for it.
   */
  settled(): Promise<void>;
}

/** Parses the loader's OP_PROG_INFO reply: the tc program's figures at 0, the XDP program's at 20 when attached. */
export function decodeProgramStats(r: Buffer): ProgramStats {
  const run = (at: number): ProgramRun => ({
    progId: r.readUInt32LE(at),
    runTimeNs: Number(r.readBigUInt64LE(at + 4)),
    runCount: Number(r.readBigUInt64LE(at + 12)),
  });
  return { ...run(0), ...(r.length >= 40 ? { xdp: run(20) } : {}) };
}
