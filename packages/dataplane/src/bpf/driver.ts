/**
 * The eBPF data plane: Maglev forwarding by a tc program (native/bpf/node.bpf.c) on the node's interface,
 * with L2 direct server return or IPIP / GRE / GUE encapsulation per VIP. The maps are pinned, so forwarding
 * survives the agent; a restarted driver reads them back and writes only what differs (plan.ts).
 * Design: docs/design/0007-bpf-dataplane.md.
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { vipKey } from '@l4fleet/config';
import { parseAddress } from '@l4fleet/maglev';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import { createExec, type Exec } from '../exec.js';
import type { ApplyResult, DataPlane, DataPlaneCounters, TrafficCounter, VipTable } from '../types.js';
import { type NormalizedVip, validateDesired } from '../validate.js';
import { ensureBpffs } from './bpffs.js';
import { addressText, type ConfigValue, decodeCounters, decodeDump, STAT } from './codec.js';
import { bpfAvailable, type Loader, Op, startLoader, type XdpMode } from './loader.js';
import { type KernelState, planApply, planSweep, RETIRE_AFTER_MS, stateFromDump } from './plan.js';

export const DEFAULT_BPFFS_PATH = '/sys/fs/bpf';
export const DEFAULT_PIN_NAME = 'l4fleet';
/** Entries of each flow LRU (IPv4, IPv6); about 5.8 MB for IPv4 at 65,536 (platform notes). */
export const DEFAULT_BPF_FLOW_TABLE_SIZE = 65_536;

export interface BpfDataPlaneOptions {
  /** The node's interface facing the router (and, with `l2`, the backends). */
  readonly interface: string;
  /** The node's own addresses, at most one per family: the outer source of encapsulated packets. */
  readonly nodeAddresses?: readonly string[];
  /** A bpffs mount point; mounted there when it is not one. Default /sys/fs/bpf. */
  readonly bpffsPath?: string;
  /** Pins go to `<bpffsPath>/<pinName>`; one data plane per name. Default "l4fleet". */
  readonly pinName?: string;
  /** Entries per flow LRU (one for IPv4, one for IPv6); fixed once pinned. Default 65,536. */
  readonly flowTableSize?: number;
  /**
   * `native`: an XDP program in the NIC driver forwards what it can alone and passes the rest to the tc program
   * (node-xdp.h); needs a driver with native XDP and forwarding enabled on the interface. Default `off`.
   */
  readonly xdp?: XdpMode;
  /** Run the loader in this named network namespace (/run/netns/NAME; it setns() itself, network only, so the
   * mounts, and the bpffs, stay this process's); default: the current one. */
  readonly netns?: string;
  readonly logger: Logger;
  /** Runs `mount` (default: a local exec); replaceable in tests. */
  readonly exec?: Exec;
  readonly loaderPath?: string;
  readonly objectPath?: string;
}

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
  /** Empties both flow LRUs (benches measure first packets with it). */
  clearFlows(): Promise<void>;
  /** The attached program's id and, with kernel.bpf_stats_enabled=1, its total run time and run count. */
  programStats(): Promise<ProgramStats>;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** An `ip netns` name: a file in /run/netns. */
const NETNS = /^[^/\s]{1,200}$/;
/** A duration for the logs: ms to 0.1. */
const ms = (x: number): number => Math.round(x * 10) / 10;
const DUMP = { op: Op.dump, payload: Buffer.alloc(0), what: 'dump' } as const;

function nodeConfig(addresses: readonly string[] | undefined): ConfigValue {
  const out: { src4?: string; src6?: string } = {};
  if (addresses !== undefined && !Array.isArray(addresses)) {
    throw new DataPlaneError('OPTIONS_INVALID', `nodeAddresses: ${JSON.stringify(addresses)} is not a list`);
  }
  (addresses ?? []).forEach((a, i) => {
    let parsed: ReturnType<typeof parseAddress>;
    try {
      parsed = parseAddress(a, `nodeAddresses[${i}]`);
    } catch (err) {
      throw new DataPlaneError('OPTIONS_INVALID', (err as Error).message, { cause: err });
    }
    const k = parsed.family === 4 ? 'src4' : 'src6';
    if (out[k] !== undefined) {
      throw new DataPlaneError('OPTIONS_INVALID', `nodeAddresses[${i}]: ${a} is a second IPv${parsed.family} address`);
    }
    out[k] = Buffer.from(parsed.bytes).toString('hex');
  });
  return out;
}

export function createBpfDataPlane(opts: BpfDataPlaneOptions): BpfDataPlane {
  if (typeof opts.interface !== 'string' || !/^[^\s"/]{1,15}$/.test(opts.interface)) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `interface: ${JSON.stringify(opts.interface)} is not an interface name`,
    );
  }
  if (
    opts.netns !== undefined &&
    (typeof opts.netns !== 'string' || !NETNS.test(opts.netns) || /^\.\.?$/.test(opts.netns))
  ) {
    throw new DataPlaneError('OPTIONS_INVALID', `netns: ${JSON.stringify(opts.netns)} is not a namespace name`);
  }
  const pinName = opts.pinName ?? DEFAULT_PIN_NAME;
  if (!NAME.test(pinName))
    throw new DataPlaneError('OPTIONS_INVALID', `pinName: ${JSON.stringify(pinName)} is not a name`);
  const bpffsPath = opts.bpffsPath ?? DEFAULT_BPFFS_PATH;
  if (typeof bpffsPath !== 'string' || !bpffsPath.startsWith('/')) {
    throw new DataPlaneError('OPTIONS_INVALID', `bpffsPath: ${JSON.stringify(bpffsPath)} is not an absolute path`);
  }
  const flowTableSize = opts.flowTableSize ?? DEFAULT_BPF_FLOW_TABLE_SIZE;
  if (!Number.isInteger(flowTableSize) || flowTableSize < 1 || flowTableSize > 16_777_216) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `flowTableSize: ${String(opts.flowTableSize)} is not an integer from 1 to 16777216`,
    );
  }
  const xdp = opts.xdp ?? 'off';
  if (xdp !== 'off' && xdp !== 'native') {
    throw new DataPlaneError('OPTIONS_INVALID', `xdp: ${JSON.stringify(opts.xdp)} is not one of off, native`);
  }
  const config = nodeConfig(opts.nodeAddresses);
  const missing = bpfAvailable(opts);
  if (missing !== undefined) {
    throw new DataPlaneError(
      'BPF_UNAVAILABLE',
      `bpf data plane: ${missing} is missing (build @l4fleet/dataplane with clang, libbpf-dev and libelf-dev installed)`,
    );
  }
  const pinDir = `${bpffsPath.replace(/\/+$/, '')}/${pinName}`;
  const exec = opts.exec ?? createExec();
  const log = opts.logger.child({ component: 'dataplane', driver: 'bpf', interface: opts.interface, pinDir });

  let loader: Loader | undefined;
  let state: KernelState | undefined;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  let sweepTimer: NodeJS.Timeout | undefined;
  /** The read-back sent with the loader's start (see ensureLoader), until an apply or counters takes it. */
  let startDump: Promise<Buffer[]> | undefined;

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  /** Starts the loader when none runs; `fresh`: there were no pins before (first start on this host). */
  async function ensureLoader(): Promise<{ loader: Loader; fresh: boolean }> {
    if (loader) return { loader, fresh: false };
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
    const l = loader;
    loader = undefined;
    await l?.close();
  }

  function checkNodeAddresses(vips: readonly NormalizedVip[]): void {
    for (const v of vips) {
      if (v.forwarding === 'l2') continue;
      if ((v.family === 4 ? config.src4 : config.src6) === undefined) {
        throw new DataPlaneError(
          'NODE_ADDRESS_MISSING',
          `vip ${v.label}: forwarding "${v.forwarding}" needs an IPv${v.family} node address (nodeAddresses: ${JSON.stringify(opts.nodeAddresses ?? [])})`,
        );
      }
    }
  }

  function scheduleSweep(): void {
    if (sweepTimer !== undefined || closed || !state || state.retired.size === 0) return;
    sweepTimer = setTimeout(() => {
      sweepTimer = undefined;
      void serial(async () => {
        if (closed || !state || !loader) return;
        const s = planSweep(state, performance.now());
        try {
          if (s.requests.length > 0) await loader.send(s.requests);
          state = s.next;
        } catch (err) {
          log.warn({ event: 'sweepFailed', err });
          await reset();
        }
      }).finally(scheduleSweep);
    }, RETIRE_AFTER_MS + 50);
    sweepTimer.unref();
  }

  async function applyNow(desired: readonly VipTable[]): Promise<ApplyResult> {
    if (closed) throw new DataPlaneError('CLOSED', 'apply: the bpf data plane is closed');
    const started = performance.now();
    const vips = validateDesired(desired, { requireSamePort: true });
    checkNodeAddresses(vips);
    const validated = performance.now();
    const { loader: l, fresh } = await ensureLoader();
    if (state === undefined) {
      try {
        state = await readState(l);
      } catch (err) {
        await reset();
        throw new DataPlaneError(
          'BPF_STATE_UNREADABLE',
          `reading the pinned maps in ${pinDir}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      log.info({ event: 'kernelStateRead', vips: state.vips.size, backends: state.backends.size, fresh });
    }
    const read = performance.now();
    const plan = planApply(state, vips, config, read);
    const planned = performance.now();
    if (plan.requests.length > 0) {
      try {
        await l.send(plan.requests);
      } catch (err) {
        await reset();
        throw err;
      }
    }
    state = plan.next;
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
    log.info({
      event: 'applied',
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

  async function countersNow(): Promise<DataPlaneCounters> {
    if (closed) throw new DataPlaneError('CLOSED', 'counters: the bpf data plane is closed');
    const { loader: l } = await ensureLoader();
    if (state === undefined) state = await readState(l);
    const [raw] = await l.send([{ op: Op.stats, payload: Buffer.alloc(0), what: 'stats' }]);
    const c = decodeCounters(raw as Buffer);
    const zero = (): TrafficCounter => ({ packets: 0, bytes: 0 });
    const vips = [...state.vips.values()].map((v) => ({
      vip: vipKey({ address: addressText(v.key.addressHex), port: v.key.port, protocol: v.key.protocol }),
      ...(c.vips.get(v.value.id) ?? zero()),
    }));
    const byAddress = new Map<string, { address: string; mac?: string; packets: number; bytes: number }>();
    for (const [id, b] of state.backends) {
      const k = `${b.addressHex}/${b.mac ?? ''}`;
      const t = c.backends.get(id) ?? zero();
      const have = byAddress.get(k);
      if (have) {
        have.packets += t.packets;
        have.bytes += t.bytes;
      } else if (b.live || t.packets > 0) {
        byAddress.set(k, { address: addressText(b.addressHex), ...(b.mac ? { mac: b.mac } : {}), ...t });
      }
    }
    const stat = (i: number): TrafficCounter => c.stats.get(i) ?? zero();
    return {
      vips,
      backends: [...byAddress.values()],
      drops: {
        port: stat(STAT.port),
        'no-backend': stat(STAT['no-backend']),
        fragment: stat(STAT.fragment),
        'too-big': stat(STAT['too-big']),
        'no-source': stat(STAT['no-source']),
        'encap-failed': stat(STAT['encap-failed']),
      },
      // An LRU is never full: it evicts the least recently used flow instead (it then follows the table).
      flowTable: { entries: c.flows4 + c.flows6, fullPackets: 0 },
      secondChance: { tagged: stat(STAT.secondChanceTagged) },
      ...(xdp === 'native' ? { xdp: { forwarded: stat(STAT.xdpForwarded) } } : {}),
    };
  }

  return {
    apply: (desired) => serial(() => applyNow(desired)),
    counters: () => serial(countersNow),
    clearFlows: () =>
      serial(async () => {
        const { loader: l } = await ensureLoader();
        await l.send([{ op: Op.flowsClear, payload: Buffer.alloc(0), what: 'flows-clear' }]);
      }),
    programStats: () =>
      serial(async () => {
        const { loader: l } = await ensureLoader();
        const [b] = await l.send([{ op: Op.progInfo, payload: Buffer.alloc(0), what: 'prog-info' }]);
        const r = b as Buffer;
        const run = (at: number): ProgramRun => ({
          progId: r.readUInt32LE(at),
          runTimeNs: Number(r.readBigUInt64LE(at + 4)),
          runCount: Number(r.readBigUInt64LE(at + 12)),
        });
        return { ...run(0), ...(r.length >= 40 ? { xdp: run(20) } : {}) };
      }),
    close: (closeOpts) =>
      serial(async () => {
        if (closed) return;
        closed = true;
        if (sweepTimer !== undefined) clearTimeout(sweepTimer);
        if (closeOpts?.removeState) {
          const { loader: l } = await ensureLoader();
          await l.send([{ op: Op.remove, payload: Buffer.alloc(0), what: 'remove' }]);
          log.info({ event: 'stateRemoved' });
        }
        await loader?.close();
        loader = undefined;
      }),
  };
}
