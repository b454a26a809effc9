/**
 * The nftables data plane: Maglev forwarding in the kernel with L2 direct server return. See
 * ruleset.ts for the packet path and plan.ts for how a desired state becomes one nft transaction.
 */
import { performance } from 'node:perf_hooks';
import { DataPlaneError } from '../errors.js';
import { createExec, type ExecResult } from '../exec.js';
import {
  type ApplyResult,
  type DataPlane,
  type DataPlaneCounters,
  nothingVerified,
  type TrafficCounter,
  type VipTable,
} from '../types.js';
import { validateDesired } from '../validate.js';
import { createBatchWriter } from './batch.js';
import { nftCountersReport } from './counters-report.js';
import { findDrift, withListing } from './drift.js';
import { echoAddress } from './echo.js';
import { planFold } from './fold.js';
import { flowsMap, vipsNamedIn } from './names.js';
import { createNatTable } from './nat-table.js';
import { nftStatements, type Op, renderBatch } from './ops.js';
import { checkOptions, type NftablesDataPlaneOptions } from './options.js';
import { type KernelState, type Plan, planApply } from './plan.js';
import { type Layout, layoutSignature } from './ruleset.js';
import { splitNat } from './split-nat.js';
import { countElements, readKernelState } from './state.js';

export {
  DEFAULT_FLOW_TABLE_SIZE,
  DEFAULT_FLOW_TIMEOUT_TCP_S,
  DEFAULT_FLOW_TIMEOUT_UDP_S,
  DEFAULT_FOLD_DELAY_MS,
  DEFAULT_TABLE_NAME,
  type NftablesDataPlaneOptions,
} from './options.js';

/** Overlay entries per fold transaction: 5-11 ms measured, the longest an apply waits for a fold. */
const FOLD_STEP_SLOTS = 2_048;

export function createNftablesDataPlane(opts: NftablesDataPlaneOptions): DataPlane {
  const { table, flowTimeoutTcpS, flowTimeoutUdpS, flowTableSize, foldDelayMs, haveBatch } = checkOptions(opts);
  const exec = opts.exec ?? createExec(opts.netns);
  const log = opts.logger.child({ component: 'dataplane', driver: 'nftables', table, interface: opts.interface });
  // NAT VIPs live in an inet table of their own (conntrack): nat-table.ts, design note 0012.
  const nat = createNatTable({
    exec,
    table: `${table}_nat`,
    log,
    interface: opts.interface,
    ...(opts.netns === undefined ? {} : { netns: opts.netns }),
  });
  const batchWriter = haveBatch
    ? createBatchWriter({ table, logger: log, ...(opts.netns === undefined ? {} : { netns: opts.netns }) })
    : undefined;
  log.info({ event: 'deltaWriter', writer: batchWriter ? 'netlink' : 'nft' });

  let layout: Layout | undefined;
  /** undefined: not read from the kernel yet. */
  let state: KernelState | null | undefined;
  /** An apply has written the netdev table: from then on, a table missing was taken away (`nft flush ruleset`). */
  let tableWritten = false;
  let closed = false;
  /** The last desired state an apply was given (undefined: none yet): verify() compares the kernel with it. */
  let last: readonly VipTable[] | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  /** Applies never interleave: each plans against the state the previous one left. */
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  async function resolveLayout(): Promise<Layout> {
    const r = await exec(['ip', '-o', 'link', 'show', 'dev', opts.interface]);
    const mac = /link\/ether ([0-9a-f:]{17})/.exec(r.stdout)?.[1];
    if (r.code !== 0 || mac === undefined) {
      throw new DataPlaneError(
        'INTERFACE_UNKNOWN',
        `interface: "${opts.interface}" ${r.code !== 0 ? 'does not exist' : 'is not an Ethernet interface'}` +
          `${opts.netns ? ` in netns "${opts.netns}"` : ''}`,
        r.code !== 0 ? { cause: r.stderr.trim() } : undefined,
      );
    }
    return { table, iface: opts.interface, ifaceMac: mac, flowTimeoutTcpS, flowTimeoutUdpS, flowTableSize };
  }

  /** The typed error when the interface has gone (the usual reason a transaction fails). */
  async function interfaceGone(): Promise<unknown> {
    return resolveLayout().then(
      () => undefined,
      (err: unknown) => err,
    );
  }

  /** Applies waiting or running: a fold stops between steps when one arrives. */
  let applying = 0;
  let foldTimer: NodeJS.Timeout | undefined;

  /**
   * Writes ops as one transaction, through the batch writer when it can take them. `what` (VIPs and slots the
   * transaction changes) names it when it fails outside nft: a script that could not be rendered or written.
   */
  async function write(ops: readonly Op[], what: { vips: number; slots: number }): Promise<'netlink' | 'nft'> {
    let r: ExecResult;
    try {
      const batch = batchWriter === undefined ? undefined : renderBatch(ops);
      if (batch !== undefined) {
        await batchWriter?.commit(batch);
        return 'netlink';
      }
      // Streamed statement by statement: the script of a few hundred default-size VIPs is no JS string (ops.ts).
      r = await exec(['nft', '-f', '-'], nftStatements(table, ops));
    } catch (err) {
      if (err instanceof DataPlaneError) throw err;
      const vips = `${what.vips} VIP${what.vips === 1 ? '' : 's'}`;
      throw new DataPlaneError(
        'NFT_FAILED',
        `nft -f: writing ${vips} (${what.slots} table slots changed) failed: ${String(err)}`,
        {
          cause: err,
        },
      );
    }
    if (r.code !== 0) {
      // nft names the objects of the refused statement (`v_<hex>_tcp_80`, its maps and set): the VIPs they belong to
      // are added, as configured, after the kernel's text (from all of it, not only the lines kept).
      const kernel = r.stderr.trim().split('\n').slice(0, 6).join(' | ');
      throw new DataPlaneError('NFT_FAILED', `nft -f: ${kernel}${vipsNamedIn(r.stderr)}`, { cause: r.stderr });
    }
    return 'nft';
  }

  function scheduleFold(): void {
    if (foldTimer !== undefined) clearTimeout(foldTimer);
    foldTimer = undefined;
    if (closed || !state || ![...state.vips.values()].some((v) => v.overlayCount > 0)) return;
    foldTimer = setTimeout(() => {
      foldTimer = undefined;
      void fold();
    }, foldDelayMs);
    foldTimer.unref();
  }

  /** Folds the overlays step by step while no apply is waiting; the next apply schedules the rest. */
  async function fold(): Promise<void> {
    const started = performance.now();
    let slots = 0;
    for (let step = 0; step < 100_000; step++) {
      const done = await serial(async () => {
        if (closed || applying > 0 || !state) return true;
        const f = planFold(state, FOLD_STEP_SLOTS);
        if (f === undefined) return true;
        try {
          await write(f.ops, { vips: state.vips.size, slots: f.slots });
        } catch (err) {
          // Nothing to undo (the forwarding did not depend on it); read the kernel again next time.
          state = undefined;
          log.warn({ event: 'foldFailed', err });
          return true;
        }
        state = f.next;
        slots += f.slots;
        return false;
      });
      if (done) break;
    }
    if (slots > 0) log.debug({ event: 'folded', slots, durationMs: Math.round(performance.now() - started) });
  }

  /**
   * `verifying`: verify()'s apply of the last desired state (verifyNow): it writes exactly what was changed or deleted
   * since (and logs only then).
   */
  async function applyNow(desired: readonly VipTable[], verifying = false): Promise<ApplyResult> {
    if (closed)
      throw new DataPlaneError('CLOSED', `${verifying ? 'verify' : 'apply'}: the nftables data plane is closed`);
    const started = performance.now();
    const all = validateDesired(desired, { requireSamePort: true, forwarding: ['l2', 'nat'], driver: 'nftables' });
    const { direct: vips, nat: natVips } = splitNat(all);
    layout ??= await resolveLayout();
    // Before the netdev table is written: a VIP moved from l2 to nat leaves it, and would then be served by neither.
    await nat.checkForwarding(natVips);
    // What verify() restores from here on, also when a transaction below fails (the next apply or verify retries it):
    // restoring the state before would undo what this apply already committed.
    last = desired;
    if (state === undefined) {
      state = await readKernelState(exec, table, layoutSignature(layout));
      if (!verifying) log.info({ event: 'kernelStateRead', exists: state !== null, vips: state?.vips.size ?? 0 });
    }
    // Pings are answered for every VIP address, NAT ones too: the netdev hook sees them first (echo.ts).
    const echo = new Set(all.map((v) => echoAddress(v.family, v.addressHex)));
    // Two tables, two transactions (another family each), ordered so that a VIP moving between them keeps being
    // served by one if the second transaction is refused: the netdev table's ingress hook sees a packet before the
    // NAT table does, so a VIP is added there first and leaves it last. A VIP moving from l2 to nat stays in the netdev
    // table (retained) until the NAT transaction has committed, then a third transaction removes it.
    const moving = new Set(natVips.map((v) => v.key).filter((key) => state?.vips.has(key)));
    const plan = planApply(state, vips, layout, echo, moving);
    const planned = performance.now();
    let writer: 'netlink' | 'nft' | 'none' = 'none';
    const writePlan = async (p: Plan): Promise<void> => {
      if (p.ops.length === 0) return;
      try {
        writer = await write(p.ops, {
          vips: p.vips.filter((v) => v.action !== 'unchanged').length,
          slots: p.slotsChanged,
        });
      } catch (err) {
        // Refused: the kernel keeps the previous state. Lost: unknown. Either way the next apply plans
        // against a fresh read (which also repairs a table changed under us, say deleted by hand).
        state = undefined;
        throw (await interfaceGone()) ?? err;
      }
    };
    await writePlan(plan);
    state = await withListing(exec, plan.next, table);
    tableWritten = true;
    // Refused here, the netdev table has this apply's changes and the moving VIPs still; the next apply retries.
    const natResult = await (verifying ? nat.verify(natVips) : nat.apply(natVips));
    const removal = moving.size === 0 ? undefined : planApply(state, vips, layout, echo);
    if (removal !== undefined) {
      await writePlan(removal);
      state = await withListing(exec, removal.next, table);
    }
    const removed = removal?.vips.filter((v) => v.action === 'removed') ?? [];
    const transactions = [plan, removal].filter((p) => p !== undefined && p.ops.length > 0).length;
    const result: ApplyResult = {
      vips: [...plan.vips, ...removed, ...natResult.vips],
      slotsChanged: plan.slotsChanged + (removal?.slotsChanged ?? 0) + natResult.slotsChanged,
      backendsAdded: plan.backendsAdded,
      backendsRemoved: plan.backendsRemoved + (removal?.backendsRemoved ?? 0),
      tableCreated: plan.tableCreated,
      transactions: transactions + natResult.transactions,
      durationMs: performance.now() - started,
    };
    if (verifying && result.transactions === 0) return result;
    (verifying ? log.warn.bind(log) : log.info.bind(log))({
      event: verifying ? 'driftRepaired' : 'applied',
      vips: vips.length,
      natVips: natVips.length,
      changed: plan.vips.filter((v) => v.action !== 'unchanged').length,
      slotsChanged: result.slotsChanged,
      tableCreated: result.tableCreated,
      writer,
      planMs: Math.round((planned - started) * 10) / 10,
      durationMs: Math.round(result.durationMs * 10) / 10,
    });
    return result;
  }

  async function countersNow(): Promise<DataPlaneCounters> {
    if (closed) throw new DataPlaneError('CLOSED', 'counters: the nftables data plane is closed');
    const r = await exec(['nft', '-j', 'list', 'counters', 'table', 'netdev', table]);
    // Not written yet (a fresh node, a reboot, an agent waiting for etcd): no VIP, no drop, no flow, as nat-table.ts.
    const notYet = r.code !== 0 && !tableWritten && /No such file or directory/.test(r.stderr);
    if (r.code !== 0 && !notYet) {
      throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft list counters: ${r.stderr.trim()}`);
    }
    const byName = new Map<string, TrafficCounter>();
    for (const o of notYet
      ? []
      : (JSON.parse(r.stdout) as { nftables: { counter?: { name: string } & TrafficCounter }[] }).nftables) {
      if (o.counter) byName.set(o.counter.name, { packets: o.counter.packets, bytes: o.counter.bytes });
    }
    const natCounters = await nat.counters();
    let entries = 0;
    for (const f of notYet ? [] : ([4, 6] as const)) {
      for (const p of ['tcp', 'udp'] as const) entries += await countElements(exec, table, 'map', flowsMap(f, p));
    }
    return nftCountersReport(byName, natCounters, state, entries);
  }

  /**
   * The light read (drift.ts, ~60 ms however many slots) compares the netdev table with the model; only a difference
   * (or no model: a failed write dropped it) drops the model, so the apply reads the whole table again as a restart
   * does (~1 s per 65,537-slot VIP) and writes the drift back through the normal plan. Either way the apply of the last
   * desired state runs (nothing to write when nothing differs) and verifies the NAT table by its listing. A verify that
   * fails drops the NAT table's model, or both after a failed light read or repair (below).
   */
  async function verifyNow(): Promise<ApplyResult> {
    if (closed) throw new DataPlaneError('CLOSED', 'verify: the nftables data plane is closed');
    if (last === undefined) return nothingVerified();
    try {
      if (state && layout) {
        let drift: string | undefined;
        try {
          drift = await findDrift(exec, state, layout);
        } catch (err) {
          // The light read could not be taken (nft timed out or did not start): nothing was compared. The verify fails
          // (the agent takes its node out and retries with an apply), and the model is dropped as after a refused
          // write, so that apply reads the table whole and repairs it, or fails on the same nft. Not the full read here
          // at once: after a timeout it would most likely time out too, another 30 s with every apply waiting behind it.
          state = undefined;
          throw err;
        }
        if (drift === undefined) return await applyNow(last, true);
        log.warn({ event: 'driftFound', drift });
      }
      state = undefined;
      return await applyNow(last, true);
    } catch (err) {
      // The NAT table's verify may not have run: the light read, the full read or the repair of the netdev table failed
      // before its turn (each drops the netdev model). The retry apply must then read the NAT table whole too, or it
      // plans against the model, writes nothing, and a NAT table gone with `nft flush ruleset` stays gone while the
      // node is reported applied. (nat.verify forgets on its own when it fails; a NAT listing that timed out leaves the
      // netdev model, just checked.)
      nat.forget();
      throw err;
    }
  }

  /** Counts as an apply for the fold (which waits for it) and schedules the next fold step after it. */
  async function asApply(fn: () => Promise<ApplyResult>): Promise<ApplyResult> {
    applying += 1;
    try {
      return await serial(fn);
    } finally {
      applying -= 1;
      scheduleFold();
    }
  }

  return {
    apply: (desired) => asApply(() => applyNow(desired)),
    counters: () => serial(countersNow),
    verify: () => asApply(verifyNow),
    close: (closeOpts) =>
      serial(async () => {
        if (closed) return;
        closed = true;
        if (foldTimer !== undefined) clearTimeout(foldTimer);
        await batchWriter?.close();
        if (closeOpts?.removeState) {
          const r = await exec(['nft', 'delete', 'table', 'netdev', table]);
          if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) {
            throw new DataPlaneError('NFT_FAILED', `nft delete table netdev ${table}: ${r.stderr.trim()}`);
          }
          await nat.remove();
          log.info({ event: 'tableRemoved' });
        }
      }),
  };
}
