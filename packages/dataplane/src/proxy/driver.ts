/**
 * The proxy data plane: a userspace TCP/UDP balancer (Node net/dgram) for unprivileged development and
 * hosts without nftables. Same DataPlane interface and, with `selection: 'maglev'`, the same backend
 * choice as the kernel path. It terminates connections (backends see the proxy as the client), so it is
 * not direct server return and backend ports may differ from the VIP port.
 */
import { performance } from 'node:perf_hooks';
import { sourceAdmits } from '@l4fleet/config';
import { type IpFamily, parseAddress } from '@l4fleet/maglev';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import { changedSlots } from '../slots.js';
import {
  type ApplyResult,
  type DataPlane,
  type DataPlaneCounters,
  nothingVerified,
  type VipApplyReport,
  type VipBackend,
  type VipTable,
} from '../types.js';
import { type NormalizedVip, validateDesired } from '../validate.js';
import { joinFailures, listenLabel, relistenLost, withRepaired } from './lost.js';
import { BackendSelector, type ProxySelection, unmapAddress } from './select.js';
import { nodeSockets, type ProxySockets } from './sockets.js';
import { type ProxyStats, Tally } from './stats.js';
import { listenTcp, type ProfileHolder, type SourceFilter, type VipListener } from './tcp.js';
import { listenUdp } from './udp.js';

export const DEFAULT_PROXY_FLOW_TIMEOUT_UDP_S = 30;
export const DEFAULT_PROXY_FLOW_TABLE_SIZE = 65_536;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export interface ProxyDataPlaneOptions {
  /** Bind every VIP here instead of on the VIP address (e.g. "127.0.0.1" when the VIP is not local). */
  readonly listenAddress?: string;
  /** Default "maglev" (fleet-consistent); the others are node-local. */
  readonly selection?: ProxySelection;
  readonly flowTimeoutUdpS?: number;
  /** UDP sessions per VIP; when full the least recently used one is closed. */
  readonly flowTableSize?: number;
  /**
   * Bound of the connect to a member for tables without a profile (default DEFAULT_CONNECT_TIMEOUT_MS); a table's
   * profile.tcpHandshakeTimeoutS replaces it.
   */
  readonly connectTimeoutMs?: number;
  readonly logger: Logger;
  /** Where the VIPs' listening sockets come from; default Node's net and dgram (nodeSockets). */
  readonly sockets?: ProxySockets;
}

interface RunningVip {
  key: string;
  label: string;
  /** Where the listener is bound (bindKey()): a VIP taking over a removed one's bind takes over its listener. */
  readonly bind: string;
  /** The listener's address as logs and errors name it (listenLabel). */
  readonly listen: string;
  table: VipTable;
  readonly selector: BackendSelector;
  readonly listener: VipListener;
  readonly stats: ProxyStats;
  /** The VIP's profile as socket timeouts (tcp.ts); replaced by each apply, read by new connections. */
  readonly profile: ProfileHolder;
  /** The VIP's sourceRanges (tcp.ts SourceFilter); replaced by each apply, asked for every new connection/datagram. */
  readonly source: SourceFilter;
}

/** The proxy connects to the address: a slot whose backend keeps its name but moves counts as changed. */
const backendId = (b: VipBackend): string => `${b.name}|${b.address}|${b.port}`;

/** A table's own profile (a table without one keeps the proxy's behaviour before profiles: no idle timeout). */
function profileOf(v: NormalizedVip): ProfileHolder {
  return v.table.profile === undefined ? {} : { profile: v.profile };
}

/** Integer option in [1, max], else OPTIONS_INVALID naming the field and the value (as the nftables driver's). */
function positiveInt(name: string, v: number | undefined, dflt: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1 || x > max) {
    throw new DataPlaneError('OPTIONS_INVALID', `${name}: ${String(v)} is not an integer from 1 to ${max}`);
  }
  return x;
}

/**
 * The VIP families a listenAddress can take clients of: '::' both (a dual-stack socket; a host with
 * net.ipv6.bindv6only=1 gives it IPv6 clients only), '0.0.0.0' and any other IPv4 address (or an IPv4-mapped one,
 * ::ffff:a.b.c.d) IPv4 only, any other IPv6 address IPv6 only. Undefined (not checked) for a host name.
 */
function bindFamilies(listenAddress: string): readonly IpFamily[] | undefined {
  if (listenAddress === '::') return [4, 6];
  let family: IpFamily;
  try {
    family = parseAddress(unmapAddress(listenAddress)).family;
  } catch {
    return undefined;
  }
  return [family];
}

export function createProxyDataPlane(opts: ProxyDataPlaneOptions): DataPlane {
  const selection = opts.selection ?? 'maglev';
  if (!['maglev', 'round-robin', 'least-connections'].includes(selection)) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `selection: ${JSON.stringify(selection)} is not maglev, round-robin or least-connections`,
    );
  }
  // A size of 0 broke the first datagram (no session to evict), NaN never evicted, a timeout of 0 swept in a busy loop.
  const timeoutMs =
    positiveInt('flowTimeoutUdpS', opts.flowTimeoutUdpS, DEFAULT_PROXY_FLOW_TIMEOUT_UDP_S, 7 * 86_400) * 1000;
  const maxSessions = positiveInt('flowTableSize', opts.flowTableSize, DEFAULT_PROXY_FLOW_TABLE_SIZE, 16_777_216);
  const connectTimeoutMs = positiveInt(
    'connectTimeoutMs',
    opts.connectTimeoutMs,
    DEFAULT_CONNECT_TIMEOUT_MS,
    3_600_000,
  );
  const log = opts.logger.child({ component: 'dataplane', driver: 'proxy' });
  const sockets = opts.sockets ?? nodeSockets;
  const running = new Map<string, RunningVip>();
  /** Removed TCP VIPs whose connections still drain (their listener closed): close() ends them. */
  const draining = new Set<RunningVip>();
  const backendTallies = new Map<string, Tally>();
  const noBackend = new Tally();
  const sourceDrops = new Tally();
  let closed = false;
  /** The last accepted desired state: verify() applies it again (undefined: no apply yet). */
  let last: readonly VipTable[] | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  /** The listener's own address: with listenAddress, VIPs of other addresses on one port and protocol share it. */
  const bindKey = (v: NormalizedVip): string =>
    opts.listenAddress === undefined ? v.key : `${opts.listenAddress}|${v.table.vip.port}|${v.table.vip.protocol}`;

  async function start(v: NormalizedVip): Promise<RunningVip> {
    const { address, port, protocol } = v.table.vip;
    const host = opts.listenAddress ?? address;
    const selector = new BackendSelector(v.table, selection);
    const stats: ProxyStats = { vip: new Tally(), backends: backendTallies, noBackend, source: sourceDrops };
    const profile = profileOf(v);
    const source: SourceFilter = { admits: sourceAdmits(v.table.sourceRanges) };
    const listen = listenLabel(host, port, protocol);
    try {
      const listener =
        protocol === 'tcp'
          ? await listenTcp({
              host,
              port,
              selector,
              stats,
              connectTimeoutMs,
              profile,
              source,
              log,
              sockets,
            })
          : await listenUdp({
              host,
              port,
              selector,
              stats,
              timeoutMs: () => (profile.profile ? profile.profile.idleTimeoutS * 1000 : timeoutMs),
              maxSessions,
              source,
              log,
              sockets,
            });
      return {
        key: v.key,
        label: v.label,
        bind: bindKey(v),
        listen,
        table: v.table,
        selector,
        listener,
        stats,
        profile,
        source,
      };
    } catch (err) {
      throw new DataPlaneError(
        'LISTEN_FAILED',
        `vip ${v.label}: cannot listen on ${listen}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** `verifying`: verify()'s re-apply, logged only when it changed something. */
  async function applyNow(desired: readonly VipTable[], verifying = false): Promise<ApplyResult> {
    if (closed) throw new DataPlaneError('CLOSED', `${verifying ? 'verify' : 'apply'}: the proxy data plane is closed`);
    const started = performance.now();
    // The proxy connects to members itself: every forwarding mode (nat included) means the same to it.
    const vips = validateDesired(desired, {
      requireSamePort: false,
      forwarding: ['l2', 'ipip', 'gre', 'gue', 'nat'],
      driver: 'proxy',
    });
    const byBind = new Map<string, NormalizedVip>();
    const served = opts.listenAddress === undefined ? undefined : bindFamilies(opts.listenAddress);
    for (const v of vips) {
      // Every client of such a listener would be of the other family than the VIP: none could ever get a backend.
      if (served !== undefined && !served.includes(v.family)) {
        throw new DataPlaneError(
          'VIP_INVALID',
          `vip ${v.label}: listenAddress ${opts.listenAddress} is IPv${served[0]} and can never serve the IPv${v.family}` +
            ` VIP ${v.table.vip.address}` +
            (served[0] === 4 ? " (listen on '::' for both families, or on an IPv6 address)" : ''),
        );
      }
      const other = byBind.get(bindKey(v));
      if (other !== undefined) {
        throw new DataPlaneError(
          'VIP_INVALID',
          `vip ${v.label}: listenAddress ${opts.listenAddress} puts it on the listener of vip ${other.label}` +
            ` (${opts.listenAddress}:${v.table.vip.port}/${v.table.vip.protocol}): one VIP per port and protocol`,
        );
      }
      byBind.set(bindKey(v), v);
    }
    const wanted = new Set(vips.map((v) => v.key));
    // A new VIP on the bind of a VIP leaving takes over its listener: opening another would find the port in use.
    const takenOver = new Map<string, RunningVip>();
    for (const r of running.values()) {
      const v = byBind.get(r.bind);
      if (v !== undefined && !wanted.has(r.key) && !running.has(v.key)) takenOver.set(v.key, r);
    }
    // Before the new listeners, the lost listeners of VIPs that stay (or are taken over) open again (lost.ts). One
    // that cannot fails the apply only once every other change is made, its own table included (right once it
    // listens again): another process on one VIP's port must not keep the other VIPs' tables stale.
    const { opened: reopened, failure: relistenFailure } = await relistenLost(
      [...running.values()].filter((r) => byBind.has(r.bind)),
      log,
    );
    // Open every new listener first: if one fails, close those and keep the previous state whole.
    const added: RunningVip[] = [];
    try {
      for (const v of vips) if (!running.has(v.key) && !takenOver.has(v.key)) added.push(await start(v));
    } catch (err) {
      await Promise.all(added.map((r) => r.listener.close(false)));
      throw withRepaired((relistenFailure && joinFailures([relistenFailure, err as DataPlaneError])) ?? err, reopened);
    }
    const reports: VipApplyReport[] = [];
    let slotsChanged = 0;
    for (const [key, r] of takenOver) {
      const v = byBind.get(r.bind) as NormalizedVip;
      running.delete(r.key);
      reports.push({ vip: r.label, action: 'removed', slotsChanged: r.table.slots.length, rulesReplaced: false });
      slotsChanged += r.table.slots.length;
      r.key = key;
      r.label = v.label;
      r.table = v.table;
      r.profile.profile = profileOf(v).profile;
      r.source.admits = sourceAdmits(v.table.sourceRanges);
      r.selector.setTable(v.table);
      // The old VIP's flows to members the new one lacks end, as for any table change; the VIP's count starts again.
      r.listener.tableChanged();
      r.stats.vip = new Tally();
      running.set(key, r);
      reports.push({ vip: r.label, action: 'added', slotsChanged: r.table.slots.length, rulesReplaced: true });
      slotsChanged += r.table.slots.length;
    }
    for (const r of added) {
      running.set(r.key, r);
      reports.push({ vip: r.label, action: 'added', slotsChanged: r.table.slots.length, rulesReplaced: true });
      slotsChanged += r.table.slots.length;
    }
    for (const v of vips) {
      const r = running.get(v.key) as RunningVip;
      if (added.includes(r) || takenOver.has(v.key)) continue;
      const changed = changedSlots(r.table, v.table, backendId);
      const rulesReplaced =
        r.table.hash !== v.table.hash || r.table.seed !== v.table.seed || r.table.slots.length !== v.table.slots.length;
      const poolChanged = JSON.stringify(r.table.backends) !== JSON.stringify(v.table.backends);
      const rangesChanged = JSON.stringify(r.table.sourceRanges) !== JSON.stringify(v.table.sourceRanges);
      const profileChanged = JSON.stringify(r.table.profile) !== JSON.stringify(v.table.profile);
      r.table = v.table;
      r.profile.profile = profileOf(v).profile;
      // The listener stays (no listener change, no transaction): only the filter its connections ask is replaced,
      // and tableChanged() ends the open flows of clients the new ranges refuse.
      r.source.admits = sourceAdmits(v.table.sourceRanges);
      r.selector.setTable(v.table);
      r.listener.tableChanged();
      slotsChanged += changed;
      const listenerChanged = reopened.has(r);
      reports.push({
        vip: v.label,
        action:
          changed || rulesReplaced || poolChanged || rangesChanged || profileChanged || listenerChanged
            ? 'updated'
            : 'unchanged',
        slotsChanged: changed,
        rulesReplaced,
      });
    }
    for (const r of draining) if (r.listener.flows === 0) draining.delete(r);
    for (const [key, r] of running) {
      if (wanted.has(key)) continue;
      running.delete(key);
      // Established TCP connections drain by themselves; the listener stops taking new ones now.
      await r.listener.close(true);
      if (r.listener.flows > 0) draining.add(r);
      reports.push({ vip: r.label, action: 'removed', slotsChanged: r.table.slots.length, rulesReplaced: false });
      slotsChanged += r.table.slots.length;
    }
    // Counters of members no running or draining VIP has any more go (they grew with every member ever seen).
    const members = new Set([...running.values(), ...draining].flatMap((r) => r.table.backends.map((b) => b.address)));
    for (const address of backendTallies.keys()) if (!members.has(address)) backendTallies.delete(address);
    const result: ApplyResult = {
      vips: reports,
      slotsChanged,
      backendsAdded: 0,
      backendsRemoved: 0,
      tableCreated: false,
      // A reopened listener is one listener change more.
      transactions: reports.filter((r) => r.action === 'added' || r.action === 'removed').length + reopened.size,
      durationMs: performance.now() - started,
      // Drift, whether an apply or a verify reopened it: the agent counts both (l4fleet_table_drift_repairs_total).
      repaired: [...reopened].map((r) => r.label),
    };
    last = desired;
    if (!verifying || result.transactions > 0) {
      (verifying || relistenFailure ? log.warn.bind(log) : log.info.bind(log))({
        event: verifying ? 'driftRepaired' : 'applied',
        vips: vips.length,
        slotsChanged,
        durationMs: Math.round(result.durationMs * 10) / 10,
        // The rest is in place but the call fails: the log says so, not a clean apply before the agent's failure.
        ...(relistenFailure ? { listenFailed: relistenFailure.message } : {}),
      });
    }
    // Everything else is in place (and `last`, so verify tries the listener again): the apply still fails, naming it.
    // It carries the listeners it did reopen: counted as drift all the same (the next call finds them listening).
    if (relistenFailure) throw withRepaired(relistenFailure, reopened);
    return result;
  }

  return {
    apply: (desired) => serial(() => applyNow(desired)),
    // The proxy's state is this process's own (listeners, selectors), but a listening socket can be lost under it
    // (lost.ts): the re-apply of the last desired state opens those again, a transaction each; else it makes none.
    verify: () =>
      serial(async () => {
        if (closed) throw new DataPlaneError('CLOSED', 'verify: the proxy data plane is closed');
        return last === undefined ? nothingVerified() : applyNow(last, true);
      }),
    counters: async (): Promise<DataPlaneCounters> => ({
      vips: [...running.values()].map((r) => ({
        vip: r.label,
        packets: r.stats.vip.packets,
        bytes: r.stats.vip.bytes,
      })),
      backends: [...backendTallies].map(([address, t]) => ({ address, packets: t.packets, bytes: t.bytes })),
      // The kernel answers connections to ports the proxy does not listen on; it never sees them.
      drops: {
        port: { packets: 0, bytes: 0 },
        'no-backend': { packets: noBackend.packets, bytes: noBackend.bytes },
        // Refused connections count 0 bytes (closed before a byte is read), refused datagrams their payload.
        source: { packets: sourceDrops.packets, bytes: sourceDrops.bytes },
      },
      // Draining connections of removed VIPs are flows too.
      flowTable: {
        entries: [...running.values(), ...draining].reduce((n, r) => n + r.listener.flows, 0),
        fullPackets: 0,
      },
    }),
    close: () =>
      serial(async () => {
        if (closed) return;
        closed = true;
        const listeners = [...running.values(), ...draining].map((r) => r.listener);
        await Promise.all(listeners.map((l) => l.close(false)));
        running.clear();
        draining.clear();
      }),
  };
}
