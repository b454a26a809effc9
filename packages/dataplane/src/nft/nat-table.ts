/**
 * The NAT table's side of the nftables driver (nat-ruleset.ts, nat-plan.ts): reading it back after a restart,
 * checking that the node forwards, writing a plan, its counters, removing it. The driver serialises the calls.
 */
import { vipKey } from '@l4fleet/config';
import type { IpFamily } from '@l4fleet/maglev';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import type { TrafficCounter, VipApplyReport } from '../types.js';
import type { NormalizedVip } from '../validate.js';
import { hexToAddress, parseVipKey } from './names.js';
import { natBaseDrift } from './nat-base.js';
import { findNatOrphans, listedElements, listingDiffers } from './nat-orphans.js';
import { type NatState, type NatVipState, planNat } from './nat-plan.js';
import {
  NAT_DROP_NO_BACKEND,
  NAT_DROP_PORT,
  NAT_DROP_SOURCE,
  NAT_SERVED,
  NAT_SOURCE,
  natAddressesSet,
  natServedSet,
  natSourceMap,
  natVipsMap,
} from './nat-ruleset.js';

/**
 * Parses `nft -t list table inet T`: the table comment, the VIP chains, the conntrack timeout objects, whether the
 * source and served filters are there, each VIP's source chain signature, the objects of VIPs without a chain
 * (nat-orphans.ts), and the base chains and objects that differ from a new table's (nat-base.ts).
 */
export function parseNatSkeleton(text: string): NatState {
  let layoutSignature = '';
  const vips = new Map<string, NatVipState>();
  const timeouts = new Set<string>();
  const sources = new Map<string, string>();
  let sourceChain = false;
  let servedChain = false;
  let srcOf: string | undefined;
  const maps = new Set<string>();
  const counters = new Set<string>();
  const chains = new Set<string>();
  for (const line of text.split('\n')) {
    const map = /^\tmap (\S+) \{$/.exec(line);
    if (map) maps.add(map[1] as string);
    const counter = /^\tcounter (\S+) \{$/.exec(line);
    if (counter) counters.add(counter[1] as string);
    const comment = /^\tcomment "(.*)"$/.exec(line);
    if (comment) layoutSignature = comment[1] as string;
    const timeout = /^\tct timeout (\S+) \{$/.exec(line);
    if (timeout) timeouts.add(timeout[1] as string);
    const chain = /^\tchain (\S+) \{$/.exec(line);
    if (chain) {
      chains.add(chain[1] as string);
      if (chain[1] === NAT_SOURCE) sourceChain = true;
      if (chain[1] === NAT_SERVED) servedChain = true;
      const src = /^(\S+)_src$/.exec(chain[1] as string)?.[1];
      srcOf = src !== undefined && parseVipKey(src) ? src : undefined;
      if (srcOf !== undefined) sources.set(srcOf, '');
    }
    const srcRule = /comment "(l4fleet nat src=[^"]*)"$/.exec(line);
    if (srcRule && srcOf !== undefined) sources.set(srcOf, srcRule[1] as string);
    const k = chain ? parseVipKey(chain[1] as string) : undefined;
    if (chain && k) {
      const key = chain[1] as string;
      // Rules and slots unknown: the plan rewrites both (nothing established depends on them: conntrack does).
      vips.set(key, {
        key,
        ...k,
        label: vipKey({ address: hexToAddress(k.addressHex), port: k.port, protocol: k.protocol }),
        signature: '',
        slots: [],
      });
    }
  }
  for (const [key, sourceSignature] of sources) {
    const v = vips.get(key);
    if (v) vips.set(key, { ...v, sourceSignature });
  }
  const orphans = findNatOrphans(maps, counters, chains);
  const base = natBaseDrift(text);
  return {
    vips,
    timeouts,
    layoutSignature,
    sourceChain,
    servedChain,
    ...(orphans.size > 0 ? { orphans } : {}),
    ...(base.chains.size > 0 || base.objects.size > 0 ? { base } : {}),
  };
}

export interface NatTable {
  /**
   * Refuses (NAT_FORWARDING_DISABLED, naming the sysctl) when the node does not forward for a family of `vips`. The
   * driver calls it before it writes either table, so a refusal changes nothing (design note 0012); apply() does not
   * check again.
   */
  checkForwarding(vips: readonly NormalizedVip[]): Promise<void>;
  apply(vips: readonly NormalizedVip[]): Promise<{
    readonly vips: readonly VipApplyReport[];
    readonly slotsChanged: number;
    readonly tableCreated: boolean;
    readonly transactions: number;
  }>;
  /** Per VIP label: new connections (a NAT chain sees a connection's first packet only); and the drops. */
  counters(): Promise<{
    vips: Map<string, TrafficCounter>;
    port: TrafficCounter;
    noBackend: TrafficCounter;
    source: TrafficCounter;
  }>;
  remove(): Promise<void>;
  /**
   * apply() of the last desired NAT VIPs for the driver's verify(): its read-back knows no rule or slot (a plan from it
   * rewrites every VIP), so the table is first compared, as `nft -s list table` prints it (no counter values), with
   * the listing taken after the last write; only a table that differs (or is gone) is read and rewritten.
   */
  verify(vips: readonly NormalizedVip[]): Promise<Awaited<ReturnType<NatTable['apply']>>>;
  /**
   * Drops the model: the next apply reads the table whole. apply() and verify() do it themselves when they throw; the
   * driver calls it when its verify fails before the NAT table's turn (its light read of the netdev table), so the
   * retry checks the NAT table too.
   */
  forget(): void;
}

/**
 * The sysctls that must read 1 for the kernel to forward a family's NATed packets that arrive on `iface`. IPv4
 * forwards what arrives on an interface whose own conf.IF.forwarding is 1 (ip-sysctl.rst: "packets received _on_
 * this interface"), and ip_forward=1 followed by conf.IF.forwarding=0 leaves that interface off; ip_forward stays
 * checked, as before. IPv6 has no per-interface switch (conf.IF.forwarding is the interface's host or router
 * behaviour): ip6_forward() reads all.forwarding only.
 */
export function forwardingSysctls(family: IpFamily, iface: string): readonly string[] {
  // sysctl(8) reads a key's dots as slashes: a VLAN interface `eth0.100` is written `eth0/100` in the key.
  if (family === 4) return ['net.ipv4.ip_forward', `net.ipv4.conf.${iface.replaceAll('.', '/')}.forwarding`];
  return ['net.ipv6.conf.all.forwarding'];
}

export function createNatTable(opts: {
  exec: Exec;
  table: string;
  log: Logger;
  /** The data plane's interface, where the VIPs' packets arrive (its IPv4 forwarding is checked). */
  interface: string;
  netns?: string;
}): NatTable {
  const { exec, table, log } = opts;
  /** undefined: not read yet; null: no table. */
  let state: NatState | null | undefined;
  /**
   * The last apply that committed left a NAT table (a refused one changed nothing, so it keeps the value): from then
   * on a table missing was taken away (`nft delete table inet T`, `nft flush ruleset`) and its VIPs are not forwarded,
   * which counters() reports as unreadable, as the driver does for its netdev table. Before that, or after an apply
   * that removed the last NAT VIP, no table is the expected state.
   */
  let written = false;
  /** `nft -s list table` after the last write ('' for no table); undefined: not taken since the last read. */
  let listing: string | undefined;

  /** The table as `nft -s list table` prints it (set and map elements included, counter values not), '' when absent. */
  async function list(): Promise<string> {
    const r = await exec(['nft', '-s', 'list', 'table', 'inet', table]);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return '';
    throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft -s list table inet ${table}: ${r.stderr.trim()}`);
  }

  async function read(): Promise<NatState | null> {
    const r = await exec(['nft', '-t', 'list', 'table', 'inet', table]);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return null;
      throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft list table inet ${table}: ${r.stderr.trim()}`);
    }
    const skeleton = parseNatSkeleton(r.stdout);
    // The routing sets' elements (a few per VIP, unlike the slot maps): an adopted VIP's deleted by hand is added
    // again, one whose value was changed is replaced (deleted first), a removed or orphaned VIP's are deleted by key,
    // and one no VIP has (added by hand) is deleted: read in a table without VIP chains too.
    const elements = new Map<string, ReadonlySet<string>>();
    for (const f of [4, 6] as const) {
      for (const [kind, name] of [
        ['map', natVipsMap(f)],
        ['set', natServedSet(f)],
        ['set', natAddressesSet(f)],
        ['map', natSourceMap(f)],
      ] as const) {
        const e = await exec(['nft', '-s', 'list', kind, 'inet', table, name]);
        if (e.code !== 0 && /No such file or directory/.test(e.stderr)) continue;
        if (e.code !== 0) {
          throw new DataPlaneError(
            'NFT_STATE_UNREADABLE',
            `nft list ${kind} inet ${table} ${name}: ${e.stderr.trim()}`,
          );
        }
        for (const [n, set] of listedElements(e.stdout)) elements.set(n, set);
      }
    }
    return { ...skeleton, elements };
  }

  /** NAT forwards through the node's IP stack: without forwarding on, the kernel would drop every NATed packet. */
  async function checkForwarding(vips: readonly NormalizedVip[]): Promise<void> {
    for (const f of [4, 6] as const) {
      const first = vips.find((v) => v.family === f);
      if (first === undefined) continue;
      for (const key of forwardingSysctls(f, opts.interface)) {
        const r = await exec(['sysctl', '-n', key]);
        if (r.code === 0 && r.stdout.trim() === '1') continue;
        throw new DataPlaneError(
          'NAT_FORWARDING_DISABLED',
          `vip ${first.label}: forwarding "nat" needs ${key}=1 on the node` +
            `${opts.netns ? ` (netns "${opts.netns}")` : ''}, found ${JSON.stringify(r.stdout.trim() || r.stderr.trim())}`,
        );
      }
    }
  }

  function forget(): void {
    state = undefined;
    listing = undefined;
  }

  /**
   * Runs an apply or a verify; when it throws (a write refused or lost, a read or listing that timed out or could not
   * start), what it read or wrote is unproven: the model is dropped, so the retry (the agent's, after a failed verify)
   * reads the table whole and writes whatever differs, rather than planning against the model, writing nothing and
   * reporting a table that is gone as applied.
   */
  async function orForget<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      forget();
      throw err;
    }
  }

  async function apply(vips: readonly NormalizedVip[]): Promise<Awaited<ReturnType<NatTable['apply']>>> {
    if (state === undefined) {
      state = await read();
      if (state) log.info({ event: 'natTableRead', vips: state.vips.size, timeouts: state.timeouts.size });
    }
    const plan = planNat(state, vips, table);
    if (plan.lines.length > 0) {
      const r = await exec(['nft', '-f', '-'], `${plan.lines.join('\n')}\n`);
      if (r.code !== 0) {
        throw new DataPlaneError(
          'NFT_FAILED',
          `nft -f (nat table): ${r.stderr.trim().split('\n').slice(0, 6).join(' | ')}`,
          { cause: r.stderr },
        );
      }
    }
    state = plan.next;
    written = plan.next !== null;
    // Without NAT VIPs and without a table nothing is listed: verify() then finds '' unless a table appeared.
    if (plan.lines.length > 0 || listing === undefined) listing = plan.next === null ? '' : await list();
    // The listing becomes verify's reference: one lacking what the model wrote (a hand edit the model predates, the
    // write planned around it) would make the edit the norm. None is kept: the next verify reads the table whole and
    // rewrites it (an apply before it plans from the model, as it would have).
    // The base chains too: a model older than a chain deleted or flushed by hand wrote the VIPs only.
    const base = listing === '' || plan.next === null ? undefined : natBaseDrift(listing);
    // Elements no VIP has too (natStrays): added by hand after the read the model comes from, the write left them.
    const missing = [
      ...(listing === '' || plan.next === null ? [] : listingDiffers(listing, plan.next.vips.values())),
      ...[...(base?.chains ?? [])].map((c) => `chain ${c} as written`),
      ...[...(base?.objects ?? [])].map((o) => `base object ${o}`),
    ];
    if (missing.length > 0) {
      log.warn(
        { event: 'natTableIncomplete', missing: missing.slice(0, 6) },
        `nft table inet ${table} differs from its VIPs in ${missing.length} place(s) after the apply: verify reads it whole`,
      );
      listing = undefined;
    }
    return {
      vips: plan.vips,
      slotsChanged: plan.slotsChanged,
      tableCreated: plan.tableCreated,
      transactions: plan.lines.length > 0 ? 1 : 0,
    };
  }

  return {
    checkForwarding,
    apply: (vips) => orForget(() => apply(vips)),
    verify: (vips) =>
      orForget(async () => {
        const now = listing === undefined ? undefined : await list();
        if (now === undefined || now !== listing) {
          if (now !== undefined) {
            // What differs from the model, as far as the listing tells (a rule edited by hand: nothing named).
            const differences =
              now === '' ? ['the table is gone'] : state ? listingDiffers(now, state.vips.values()) : [];
            log.warn(
              { event: 'natTableDrift', vips: vips.length, differences: differences.slice(0, 6) },
              `nft table inet ${table} differs from the last apply: rewriting it`,
            );
          }
          forget();
        }
        return apply(vips);
      }),
    async counters() {
      const zero = { packets: 0, bytes: 0 };
      const vips = new Map<string, TrafficCounter>();
      const none = { vips, port: zero, noBackend: zero, source: zero };
      if (state === null) return none;
      const r = await exec(['nft', '-j', 'list', 'counters', 'table', 'inet', table]);
      if (r.code !== 0) {
        const absent = /No such file or directory/.test(r.stderr);
        if (absent && !written) return none;
        throw new DataPlaneError(
          'NFT_STATE_UNREADABLE',
          `nft list counters table inet ${table}${absent ? ' (the NAT table the last apply wrote is gone)' : ''}: ` +
            r.stderr.trim(),
        );
      }
      const byName = new Map<string, TrafficCounter>();
      for (const o of (JSON.parse(r.stdout) as { nftables: { counter?: { name: string } & TrafficCounter }[] })
        .nftables) {
        if (o.counter) byName.set(o.counter.name, { packets: o.counter.packets, bytes: o.counter.bytes });
      }
      for (const [name, c] of byName) {
        const k = parseVipKey(name);
        // The VIP's own label, as the netdev side reports it: the key's address is uncompressed hex for IPv6.
        const label = state?.vips.get(name)?.label;
        if (k)
          vips.set(label ?? vipKey({ address: hexToAddress(k.addressHex), port: k.port, protocol: k.protocol }), c);
      }
      return {
        vips,
        port: byName.get(NAT_DROP_PORT) ?? zero,
        noBackend: byName.get(NAT_DROP_NO_BACKEND) ?? zero,
        source: byName.get(NAT_DROP_SOURCE) ?? zero,
      };
    },
    async remove() {
      const r = await exec(['nft', 'delete', 'table', 'inet', table]);
      if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) {
        throw new DataPlaneError('NFT_FAILED', `nft delete table inet ${table}: ${r.stderr.trim()}`);
      }
      state = null;
      written = false;
      listing = '';
    },
    forget,
  };
}
