/**
 * The eBPF data plane: Maglev forwarding by a tc program (native/bpf/node.bpf.c) on the node's interface,
 * with L2 direct server return or IPIP / GRE / GUE encapsulation per VIP. The maps are pinned, so forwarding
 * survives the agent; a restarted driver reads them back and writes only what differs (plan.ts).
 * Design: docs/design/0007-bpf-dataplane.md.
 */
import { existsSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DataPlaneError } from '../errors.js';
import { createExec } from '../exec.js';
import { type ApplyResult, type DataPlaneCounters, nothingVerified, type VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { ensureBpffs } from './bpffs.js';
import { decodeDump } from './codec.js';
import { decodeCounters } from './counters.js';
import { counterKey, reportCounters } from './counters-report.js';
import { type BpfDataPlane, decodeProgramStats } from './driver-types.js';
import { type Loader, Op, type Request, startLoader } from './loader.js';
import { type BpfDataPlaneOptions, checkNodeAddresses, checkOptions } from './options.js';
import { type KernelState, planApply, stateFromDump } from './plan.js';
import { mapToRebuild } from './repair.js';
import { nextSeat, type Seat, seatRequest } from './seat.js';
import { planSweep, RETIRE_AFTER_MS } from './sweep.js';

export type { BpfDataPlane, ProgramRun, ProgramStats } from './driver-types.js';

/** A duration for the logs: ms to 0.1. */
const ms = (x: number): number => Math.round(x * 10) / 10;
const DUMP = { op: Op.dump, payload: Buffer.alloc(0), what: 'dump' } as const;
const SEAT_WAIT = { op: Op.seatWait, payload: Buffer.alloc(0), what: 'seat-wait' } as const;
const ATTACH_CHECK = { op: Op.attachCheck, payload: Buffer.alloc(0), what: 'attach-check' } as const;
/** Between sweeps while retired tables are due (each sweep deletes at most SWEEP_MAX_DELETES). */
const SWEEP_PAUSE_MS = 20;

export function createBpfDataPlane(opts: BpfDataPlaneOptions): BpfDataPlane {
  const { pinDir, bpffsPath, flowTableSize, xdp, config } = checkOptions(opts);
  const exec = opts.exec ?? createExec();
  const log = opts.logger.child({ component: 'dataplane', driver: 'bpf', interface: opts.interface, pinDir });

  let loader: Loader | undefined;
  let state: KernelState | undefined;
  let closed = false;
  /** The last desired state an apply was given (undefined: none yet): verify() compares the kernel with it. */
  let last: readonly VipTable[] | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let sweepTimer: NodeJS.Timeout | undefined;
  /** The read-back sent with the loader's start (see ensureLoader), until an apply or counters takes it. */
  let startDump: Promise<Buffer[]> | undefined;
  /** The seat the loader was last asked for (undefined: none asked of this loader yet). */
  let seat: Seat | undefined;
  /**
   * Backends (counterKey) of the last applied state: counters list them even when not live and without traffic (a
   * down member of a `reselect` VIP), as nftables does; a removed backend's id stays in the map (not live) and is
   * listed only while it has counted packets.
   */
  let members = new Set<string>();
  /** A loader of this driver started before: a later start that had to attach the program found it detached. */
  let startedBefore = false;
  /** The pins were removed on purpose (state this driver never writes): the next start's attach is no drift. */
  let pinsRemoved = false;
  /**
   * A loader started since the last verify attached the program again (someone detached it: tc qdisc del, the
   * interface made again), found by a check outside verify (counters, which /metrics scrapes every few seconds, or an
   * apply with nothing to write). The next verify reports it as a repair, or the agent would never count the drift.
   */
  let reattached = false;
  /** The XDP program id the last loader's start reported (`xdp: native`): a new one after a start is a re-attach. */
  let xdpProgId: number | undefined;

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  /** Starts the loader when none runs; `fresh`: there were no pins before (first start on this host). */
  async function ensureLoader(): Promise<{ loader: Loader; fresh: boolean }> {
    if (loader) {
      const gone = loader.gone();
      if (gone === undefined) return { loader, fresh: false };
      // Exited since (the OOM killer, a crash): without this an apply with nothing to send would report success
      // over it, every counters() fail, and its interface check (attach_check) never run again.
      log.warn({ event: 'bpfLoaderGone', err: gone }, `${gone.message}: starting a new loader`);
      await reset();
    }
    await ensureBpffs(bpffsPath, exec);
    const fresh = !existsSync(`${pinDir}/l4f_vips`);
    const l = startLoader({
      pinDir,
      iface: opts.interface,
      flowTableSize,
      xdp,
      logger: log,
      ...(opts.netns === undefined ? {} : { netns: opts.netns }),
      ...(opts.loaderPath === undefined ? {} : { loaderPath: opts.loaderPath }),
      ...(opts.objectPath === undefined ? {} : { objectPath: opts.objectPath }),
    });
    // The read-back of the maps goes with the start: the loader answers it right after starting, without a
    // round trip through this process in between (a restart's apply needs it first).
    const dump = l.send([DUMP]);
    dump.catch(() => {}); // taken by readState, or dropped with a failed start
    try {
      const s = await l.started;
      log.info({ event: 'programLoaded', attach: s.attach, progId: s.progId, from: s.from, fresh, xdp: s.xdp });
      seat = s.seat; // a seat left by the previous loader, adopted (ahead.c)
      // A tc program attached again, or (tc unchanged) an XDP program: the loader's load() attaches XDP anew when
      // the old one is gone (`ip link set dev X xdp off`), which the reply shows only as a new XDP program id.
      const xdpAgain = s.xdp !== undefined && xdpProgId !== undefined && s.xdp.progId !== xdpProgId;
      if (startedBefore && !pinsRemoved && (s.attach === 'attached' || xdpAgain)) {
        reattached = true;
        log.warn(
          { event: 'bpfReattached', progId: s.progId, xdpProgId: s.xdp?.progId },
          `the ${s.attach === 'attached' ? 'program' : 'XDP program'} was not attached: attached it again`,
        );
      }
      xdpProgId = s.xdp?.progId;
      startedBefore = true;
      pinsRemoved = false;
      for (const family of s.xdp?.forwardingOff ?? []) {
        log.warn(
          { event: 'xdpIdle', family },
          `xdp: net.ipv${family}.conf.${opts.interface}.forwarding is 0, so bpf_fib_lookup refuses and every IPv${family} packet takes the tc path`,
        );
      }
    } catch (err) {
      await l.close();
      if (/interface .*: No such device/.test((err as Error).message)) {
        throw new DataPlaneError(
          'INTERFACE_UNKNOWN',
          `interface: "${opts.interface}" does not exist${opts.netns ? ` in netns "${opts.netns}"` : ''}`,
          { cause: err },
        );
      }
      throw err;
    }
    loader = l;
    startDump = dump;
    return { loader: l, fresh };
  }

  /** What the pinned maps hold: the dump sent with the start when there is one, else a new one. */
  async function readState(l: Loader): Promise<KernelState> {
    const pending = startDump ?? l.send([DUMP]);
    startDump = undefined;
    const [dump] = await pending;
    return stateFromDump(decodeDump(dump as Buffer), performance.now());
  }

  /** After a failure the loader's state is unknown: restart it and read the maps again next time. */
  async function reset(): Promise<void> {
    state = undefined;
    startDump = undefined;
    seat = undefined;
    const l = loader;
    loader = undefined;
    await l?.close();
  }

  /**
   * Reads the maps back. A map holding a value this driver never writes (BPF_STATE_UNREADABLE) is made anew alone
   * (repair.ts: its pin removed, the next start creates it); when the error names no such map, or that map was
   * made anew already, every pin goes (a short interruption, as removeState). Any other failure is reported.
   */
  async function loadState(l: Loader, fresh: boolean): Promise<{ loader: Loader; fresh: boolean; state: KernelState }> {
    const rebuilt = new Set<string>();
    for (let wiped = false; ; ) {
      try {
        return { loader: l, fresh, state: await readState(l) };
      } catch (err) {
        if (wiped || !(err instanceof DataPlaneError && err.code === 'BPF_STATE_UNREADABLE')) {
          await reset();
          const why = `reading the pinned maps in ${pinDir}: ${(err as Error).message}`;
          throw new DataPlaneError('BPF_STATE_UNREADABLE', why, { cause: err });
        }
        pinsRemoved = true; // the start's attach after it is no drift
        const map = mapToRebuild(err, rebuilt);
        if (map !== undefined) {
          log.error({ event: 'bpfMapRebuilt', map, err }, `${pinDir}: ${err.message}: making ${map} anew`);
          rebuilt.add(map);
          await reset();
          rmSync(`${pinDir}/${map}`, { force: true });
        } else {
          log.error({ event: 'bpfStateWiped', err }, `${pinDir}: ${err.message}: removing the pins, starting over`);
          wiped = true;
          await l.send([{ op: Op.remove, payload: Buffer.alloc(0), what: 'remove' }]).finally(reset);
        }
        ({ loader: l, fresh } = await ensureLoader());
      }
    }
  }

  /** The seat to ask the loader for after this state, when it differs from the one asked for last. */
  function seatChange(next: KernelState, createdSize?: number, again = false): Seat | undefined {
    const want = nextSeat(next, seat, createdSize);
    if (!want || (!again && want.index === seat?.index && want.size === seat.size)) return undefined;
    return want;
  }

  function scheduleSweep(): void {
    if (sweepTimer !== undefined || closed || !state || state.retired.size === 0) return;
    // The earliest retired table's due time; due already (a sweep stopped at SWEEP_MAX_DELETES): a short pause,
    // so that an apply waiting in the queue goes first.
    const due = planSweep(state, performance.now(), 0).nextDueMs ?? RETIRE_AFTER_MS;
    sweepTimer = setTimeout(
      () => {
        sweepTimer = undefined;
        void serial(async () => {
          if (closed || !state || !loader) return;
          const s = planSweep(state, performance.now());
          try {
            // A deleted table may have kept the loader from making the seat at its index: asked again.
            const again = s.requests.length > 0 ? seatChange(s.next, undefined, true) : undefined;
            if (s.requests.length > 0) await loader.send(again ? [...s.requests, seatRequest(again)] : s.requests);
            if (again) seat = again;
            state = s.next;
          } catch (err) {
            log.warn({ event: 'sweepFailed', err });
            await reset();
          }
        }).finally(scheduleSweep);
      },
      due === 0 ? SWEEP_PAUSE_MS : due + 50,
    );
    sweepTimer.unref();
  }

  /** `verifying`: verify()'s apply of the last desired state over maps just read back (logged only when it wrote). */
  async function applyNow(desired: readonly VipTable[], verifying = false): Promise<ApplyResult> {
    if (closed) throw new DataPlaneError('CLOSED', `${verifying ? 'verify' : 'apply'}: the bpf data plane is closed`);
    const started = performance.now();
    // Named in a refusal: in a fleet of mixed data planes it says which nodes refuse (and keep the last state).
    const vips = validateDesired(desired, {
      requireSamePort: true,
      forwarding: ['l2', 'ipip', 'gre', 'gue'],
      driver: 'bpf',
    });
    checkNodeAddresses(vips, config, opts.nodeAddresses);
    // What verify() restores from here on, also when the send below fails (the next apply or verify retries it).
    last = desired;
    const validated = performance.now();
    let { loader: l, fresh } = await ensureLoader();
    if (state === undefined) {
      const loaded = await loadState(l, fresh);
      ({ loader: l, fresh } = loaded);
      state = loaded.state;
      if (!verifying)
        log.info({ event: 'kernelStateRead', vips: state.vips.size, backends: state.backends.size, fresh });
    }
    const read = performance.now();
    const plan = planApply(state, vips, config, read);
    const created = plan.requests.filter((r) => r.op === Op.tableCreate).at(-1);
    const seatAsk = seatChange(plan.next, created?.payload.readUInt32LE(4));
    const planned = performance.now();
    if (plan.requests.length > 0 || seatAsk) {
      try {
        // The seat's request last: the loader answers it at once and makes the table afterwards.
        await l.send(seatAsk ? [...plan.requests, seatRequest(seatAsk)] : plan.requests);
      } catch (err) {
        await reset();
        throw err;
      }
      if (seatAsk) seat = seatAsk;
    } else {
      // Nothing to write: still, the program must be where the start attached it (tc qdisc del, an interface made
      // again), or this apply would report a state no packet reaches. Failed: the next call starts a new loader,
      // whose start attaches it again.
      try {
        await l.send([ATTACH_CHECK]);
      } catch (err) {
        await reset();
        throw err;
      }
    }
    state = plan.next;
    members = new Set(vips.flatMap((v) => v.backends.map((b) => counterKey(b.addressHex, b.mac))));
    scheduleSweep();
    const result: ApplyResult = {
      vips: plan.vips,
      slotsChanged: plan.slotsChanged,
      backendsAdded: plan.backendsAdded,
      backendsRemoved: plan.backendsRemoved,
      tableCreated: fresh,
      transactions: plan.requests.length,
      durationMs: performance.now() - started,
    };
    if (verifying && result.transactions === 0) return result;
    (verifying ? log.warn.bind(log) : log.info.bind(log))({
      event: verifying ? 'driftRepaired' : 'applied',
      vips: vips.length,
      changed: plan.vips.filter((v) => v.action !== 'unchanged').length,
      slotsChanged: result.slotsChanged,
      requests: plan.requests.length,
      // Where the time went (docs/design/0007, Measured): validation, the loader's start and the read-back
      // (a restart), planning and encoding, then the requests until their last reply.
      validateMs: ms(validated - started),
      readMs: ms(read - validated),
      planMs: ms(planned - read),
      sendMs: ms(result.durationMs - (planned - started)),
      durationMs: ms(result.durationMs),
    });
    return result;
  }

  /**
   * Checks that the program is attached (a loader whose check fails, or that is gone, is replaced by a new one, whose
   * start attaches it again: one transaction, as is a re-attach since the last verify), then reads the pinned maps back
   * as a restarted driver does and applies the last desired state over them: map entries changed or deleted by hand
   * are written again.
   */
  async function verifyNow(): Promise<ApplyResult> {
    if (closed) throw new DataPlaneError('CLOSED', 'verify: the bpf data plane is closed');
    if (last === undefined) return nothingVerified();
    if (loader !== undefined && loader.gone() === undefined) {
      try {
        await loader.send([ATTACH_CHECK]);
      } catch (err) {
        log.warn({ event: 'bpfDetached', err }, `${(err as Error).message}: starting a new loader, which attaches it`);
        await reset();
      }
    }
    state = undefined;
    const r = await applyNow(last, true);
    if (!reattached) return r;
    // A new loader attached the program (this verify's, or one since the last): that is the repair, whatever the maps
    // needed. Reported once; a verify that failed above leaves it to the next.
    reattached = false;
    const result: ApplyResult = {
      ...r,
      vips: r.vips.map((v) => (v.action === 'unchanged' ? { ...v, action: 'updated' } : v)),
      transactions: r.transactions + 1,
    };
    log.warn({ event: 'driftRepaired', reattached: true, requests: r.transactions, durationMs: ms(r.durationMs) });
    return result;
  }

  /** Sends on the loader (started when none runs); after a failure, the loader is restarted at the next call. */
  async function sendNow(requests: readonly Request[]): Promise<Buffer[]> {
    const { loader: l } = await ensureLoader();
    try {
      return await l.send(requests);
    } catch (err) {
      await reset();
      throw err;
    }
  }

  async function countersNow(): Promise<DataPlaneCounters> {
    if (closed) throw new DataPlaneError('CLOSED', 'counters: the bpf data plane is closed');
    const { loader: l } = await ensureLoader();
    if (state === undefined) {
      try {
        state = await readState(l);
      } catch (err) {
        await reset();
        throw err;
      }
    }
    const [raw] = await sendNow([{ op: Op.stats, payload: Buffer.alloc(0), what: 'stats' }]);
    const c = decodeCounters(raw as Buffer);
    return reportCounters(state, c, members, xdp);
  }

  return {
    apply: (desired) => serial(() => applyNow(desired)),
    counters: () => serial(countersNow),
    verify: () => serial(verifyNow),
    clearFlows: () =>
      serial(async () => {
        await sendNow([{ op: Op.flowsClear, payload: Buffer.alloc(0), what: 'flows-clear' }]);
      }),
    programStats: () =>
      serial(async () => {
        const [b] = await sendNow([{ op: Op.progInfo, payload: Buffer.alloc(0), what: 'prog-info' }]);
        return decodeProgramStats(b as Buffer);
      }),
    settled: () =>
      serial(async () => {
        if (loader && !closed) await loader.send([SEAT_WAIT]);
      }),
    close: (closeOpts) =>
      serial(async () => {
        if (closed) return;
        closed = true;
        if (sweepTimer !== undefined) clearTimeout(sweepTimer);
        try {
          if (closeOpts?.removeState) {
            const { loader: l } = await ensureLoader();
            await l.send([{ op: Op.remove, payload: Buffer.alloc(0), what: 'remove' }]);
            log.info({ event: 'stateRemoved' });
          }
        } finally {
          // Also after a failed remove: closed is already set, so a second close() would not end the loader.
          const l = loader;
          loader = undefined;
          await l?.close();
        }
      }),
  };
}
