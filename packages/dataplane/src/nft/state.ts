/**
 * Reads the driver's table back from the kernel, so a restarted agent applies only what differs
 * (and nothing when the kernel already matches). Chain and table comments are not in nft 1.0.6's JSON
 * output, so the skeleton comes from the text listing (`-t`: no set elements) and the elements from
 * JSON listings of the maps.
 */
import { vipKey } from '@l4fleet/config';
import { type IpFamily, parseAddress } from '@l4fleet/maglev';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { toHex } from '../validate.js';
import { missingBaseObjects } from './base-objects.js';
import { echoAddress } from './echo.js';
import { findLeftovers, findMissing, type WithLeftovers, type WithMissing } from './leftovers.js';
import {
  BACKEND_COUNTERS,
  BACKEND_ID_BIT,
  BASE_CHAIN,
  backendsMap,
  DROP_SOURCE,
  echoChain,
  echoMap,
  FORWARD_CHAIN,
  hexToAddress,
  liveSet,
  MACS,
  overlayMap,
  parseEchoChain,
  parseVipKey,
  slotsMap,
  vipAddressesSet,
  vipsMap,
} from './names.js';
import { ownChains } from './own-chains.js';
import { backendIdentity, type KernelBackend, type KernelState, type KernelVip } from './plan.js';
import { baseChainRules, forwardChainRules } from './ruleset.js';

type Elem = unknown;

async function nftJson(exec: Exec, args: string[]): Promise<Record<string, unknown>[]> {
  const r = await exec(['nft', '-j', ...args]);
  if (r.code !== 0) {
    throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  try {
    return (JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] }).nftables;
  } catch (err) {
    throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft ${args.join(' ')}: output is not JSON`, { cause: err });
  }
}

async function elements(exec: Exec, table: string, kind: 'map' | 'set', name: string): Promise<Elem[]> {
  const objs = await nftJson(exec, ['list', kind, 'netdev', table, name]);
  for (const o of objs) {
    const body = o[kind] as { elem?: Elem[] } | undefined;
    if (body) return body.elem ?? [];
  }
  return [];
}

/** Element count of a map, without materialising it beyond the JSON parse. */
export async function countElements(exec: Exec, table: string, kind: 'map' | 'set', name: string): Promise<number> {
  return (await elements(exec, table, kind, name)).length;
}

/**
 * Parses `nft -t list table` text: the table comment, its named counters, each VIP chain's signature comment, and the
 * echo chains (echo.ts) by address, `family|hex`: undefined when the table has no echo maps (an older table).
 */
export function parseSkeleton(text: string): {
  layoutSignature: string;
  chains: Map<string, string>;
  counters: Set<string>;
  echoAddresses: Set<string> | undefined;
  /** Rules in the `ingress` and `forward` chains (absent: no such chain). */
  baseRules: Map<string, number>;
  /** Names of the table's maps and sets (listed without their elements). */
  objects: Set<string>;
  /** Rules in each VIP chain (by key): a rule deleted or added by hand leaves the signature, not the number. */
  chainRules: Map<string, number>;
  /**
   * Each chain's rules as nft lists them (by name: a VIP chain by its key, `ingress`, `forward`, `echo_<hex>`), one a
   * line (a wrapped one joined; not the base chain's hook): a rule replaced by hand (`nft replace rule`) leaves the
   * signature and the number, not this.
   */
  chainTexts: Map<string, string>;
} {
  let layoutSignature = '';
  const chains = new Map<string, string>();
  const baseRules = new Map<string, number>();
  const counters = new Set<string>();
  const echo = new Set<string>();
  const objects = new Set<string>();
  const chainRules = new Map<string, number>();
  const chainTexts = new Map<string, string[]>();
  let echoMaps = 0;
  let chain: string | undefined;
  for (const line of text.split('\n')) {
    const tableComment = /^\tcomment "(.*)"$/.exec(line);
    if (tableComment) layoutSignature = tableComment[1] as string;
    const counter = /^\tcounter (\S+) \{$/.exec(line);
    if (counter) counters.add(counter[1] as string);
    const map = /^\tmap (\S+) \{$/.exec(line);
    if (map && (map[1] === echoMap(4) || map[1] === echoMap(6))) echoMaps += 1;
    const object = /^\t(?:map|set) (\S+) \{$/.exec(line);
    if (object) objects.add(object[1] as string);
    const c = /^\tchain (\S+) \{$/.exec(line);
    if (c) {
      chain = c[1] as string;
      if (chain === BASE_CHAIN || chain === FORWARD_CHAIN) baseRules.set(chain, 0);
      chainTexts.set(chain, []);
      if (parseVipKey(chain)) {
        chains.set(chain, '');
        chainRules.set(chain, 0);
      }
      const hex = parseEchoChain(chain);
      if (hex !== undefined) echo.add(echoAddress(hex.length === 8 ? 4 : 6, hex));
      continue;
    }
    // A rule is a line of its own, two tabs in (an anonymous set's elements stay on its line).
    const counts = chain === undefined ? undefined : baseRules.has(chain) ? baseRules : chainRules;
    if (chain !== undefined && counts?.has(chain) && /^\t\t(?!type )\S/.test(line)) {
      counts.set(chain, (counts.get(chain) as number) + 1);
    }
    const texts = chain === undefined ? undefined : chainTexts.get(chain);
    if (texts !== undefined && /^\t\t(?!type )\S/.test(line)) texts.push(line.trim());
    else if (texts !== undefined && texts.length > 0 && /^\t\t\s+\S/.test(line))
      texts.push(`${texts.pop()} ${line.trim()}`);
    const rule = /comment "(l4fleet vip [^"]*)"$/.exec(line);
    if (rule && chain !== undefined && chains.has(chain)) chains.set(chain, rule[1] as string);
  }
  const echoAddresses = echoMaps === 2 ? echo : undefined;
  const texts = new Map([...chainTexts].map(([k, lines]) => [k, lines.join('\n')]));
  return { layoutSignature, chains, counters, echoAddresses, baseRules, objects, chainRules, chainTexts: texts };
}

/**
 * The block of `table netdev <table>` in an `nft -t list ruleset netdev` listing, as `nft -t list table` prints it;
 * undefined when the listing has no such table. The ruleset listing is the cheap one: on nft 1.0.6 `-t list table`
 * fetches every set element before omitting them (~0.4-0.6 s with a 65,537-slot map), `-t list ruleset` does not
 * (~10 ms).
 */
export function tableBlock(listing: string, table: string): string | undefined {
  const lines = listing.split('\n');
  const start = lines.indexOf(`table netdev ${table} {`);
  if (start < 0) return undefined;
  const end = lines.indexOf('}', start);
  return lines.slice(start, end < 0 ? undefined : end + 1).join('\n');
}

/** The base chains whose number of rules is not the one the driver writes (flushed or edited by hand). */
export function baseChainsDiffering(baseRules: ReadonlyMap<string, number>): Set<string> {
  // The text of a rule as nft lists it is not the text the plan writes: the number of rules tells.
  const wanted = new Map([
    [BASE_CHAIN, baseChainRules().length],
    [FORWARD_CHAIN, forwardChainRules({ iface: '', ifaceMac: '' }).length],
  ]);
  return new Set([...wanted].filter(([c, n]) => baseRules.get(c) !== n).map(([c]) => c));
}

/** A verdict as nft -j lists it (`{ "jump": { "target": "x" } }`, `{ "drop": null }`) in nft's text: `jump x`. */
export function verdictText(verdict: unknown): string {
  const [name, arg] = Object.entries((verdict ?? {}) as Record<string, { target?: string } | null>)[0] ?? ['?'];
  return arg?.target === undefined ? name : `${name} ${arg.target}`;
}

/** What readRouting finds in the maps and sets that route packets to the chains. */
export interface Routing {
  /** VIP keys whose `vips4`/`vips6` element jumps to their own chain. */
  readonly jumps: Set<string>;
  /** VIP keys with an element whatever its verdict: one rewritten by hand (say `: drop`) is here, not in `jumps`. */
  readonly routed: Set<string>;
  /** The verdict of each element of `routed` (verdictText): what a rewritten one holds. */
  readonly verdicts: Map<string, string>;
  /** Addresses (`family|hex`) in `vipaddrs4`/`vipaddrs6`. */
  readonly vipAddresses: Set<string>;
  /** Addresses whose `echo4`/`echo6` element goes to their own echo chain (echo.ts). */
  readonly echoMapped: Set<string>;
  /** Every address with an `echo4`/`echo6` element, with its verdict: one added or rewritten by hand is here too. */
  readonly echoVerdicts: Map<string, string>;
}

/**
 * The elements that route packets to what the chains hold, one per VIP (or VIP address), in `vips4`/`vips6`,
 * `vipaddrs4`/`vipaddrs6` and, `withEcho`, `echo4`/`echo6` (Routing).
 */
export async function readRouting(exec: Exec, table: string, withEcho: boolean): Promise<Routing> {
  const r: Routing = {
    jumps: new Set(),
    routed: new Set(),
    verdicts: new Map(),
    vipAddresses: new Set(),
    echoMapped: new Set(),
    echoVerdicts: new Map(),
  };
  const hexOf = (address: string): string => toHex(parseAddress(address).bytes);
  for (const family of [4, 6] as IpFamily[]) {
    for (const e of await elements(exec, table, 'map', vipsMap(family))) {
      const [k, verdict] = e as [{ concat?: [string, string, number] }, { jump?: { target?: string } }];
      const [address, protocol, port] = k?.concat ?? [];
      if (address === undefined) continue;
      // The key names the VIP's chain (names.ts); only an element that jumps to it counts as the VIP's jump.
      const key = `v_${hexOf(address)}_${protocol}_${port}`;
      r.routed.add(key);
      r.verdicts.set(key, verdictText(verdict));
      if (verdict?.jump?.target === key) r.jumps.add(key);
    }
    for (const e of await elements(exec, table, 'set', vipAddressesSet(family))) {
      if (typeof e === 'string') r.vipAddresses.add(echoAddress(family, hexOf(e)));
    }
    if (!withEcho) continue;
    for (const e of await elements(exec, table, 'map', echoMap(family))) {
      const [address, verdict] = e as [unknown, { goto?: { target?: string } }];
      if (typeof address !== 'string') continue;
      const hex = hexOf(address);
      r.echoVerdicts.set(echoAddress(family, hex), verdictText(verdict));
      if (verdict?.goto?.target === echoChain(hex)) r.echoMapped.add(echoAddress(family, hex));
    }
  }
  return r;
}

/**
 * The kernel's copy of the table, or null when the table does not exist. `layoutSignature`: the driver's layout
 * (layoutSignature()); a table in another layout is read no further than its skeleton, since the plan replaces it
 * whole and uses none of its elements. An older layout may lack maps this one reads (layout 2 had no `<vip>_over`):
 * reading them failed every apply, and the table was never replaced. The per-VIP objects of a VIP without a chain are
 * no VIP of the model: they are listed apart (leftovers.ts), for the plan to delete; a VIP chain without all of its
 * objects is read without rules or slots, its missing objects named (WithMissing), for the plan to add.
 */
export async function readKernelState(
  exec: Exec,
  table: string,
  layoutSignature: string,
): Promise<(KernelState & WithLeftovers) | null> {
  const r = await exec(['nft', '-t', 'list', 'table', 'netdev', table]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return null;
    throw new DataPlaneError('NFT_STATE_UNREADABLE', `nft list table netdev ${table}: ${r.stderr.trim()}`);
  }
  const skeleton = parseSkeleton(r.stdout);
  if (skeleton.layoutSignature !== layoutSignature) {
    return { layoutSignature: skeleton.layoutSignature, vips: new Map(), backends: new Map(), maxBackendId: 0 };
  }
  const backends = new Map<string, KernelBackend>();
  // A backend without a counter is retired (plan.ts, KernelState.retired): kept for its id, not in the pool.
  const retired = new Map<string, KernelBackend>();
  const counted = new Set<number>();
  for (const e of await elements(exec, table, 'map', BACKEND_COUNTERS)) counted.add((e as [number, string])[0]);
  const macs = new Map<number, string>();
  for (const e of await elements(exec, table, 'map', MACS)) {
    const [id, mac] = e as [number, string];
    macs.set(id, mac.toLowerCase());
  }
  let maxBackendId = 0;
  for (const family of [4, 6] as IpFamily[]) {
    for (const e of await elements(exec, table, 'map', backendsMap(family))) {
      const [id, address] = e as [number, string];
      const addressHex = toHex(parseAddress(address).bytes);
      const mac = macs.get(id);
      (counted.has(id) ? backends : retired).set(backendIdentity(addressHex, mac), {
        id,
        family,
        addressHex,
        ...(mac ? { mac } : {}),
      });
      maxBackendId = Math.max(maxBackendId, (id & ~BACKEND_ID_BIT) >>> 0);
    }
  }
  // The elements that route packets to what the chains hold: one deleted by hand is written again by the plan.
  const { jumps, routed, vipAddresses, echoMapped, echoVerdicts } = await readRouting(
    exec,
    table,
    skeleton.echoAddresses !== undefined,
  );
  // Echo elements not going to their own address's chain (rewritten, or added by hand): the plan deletes them first.
  const echoStray = new Set([...echoVerdicts.keys()].filter((a) => !echoMapped.has(a)));
  const vips = new Map<string, KernelVip & WithMissing>();
  for (const [key, signature] of skeleton.chains) {
    const k = parseVipKey(key) as NonNullable<ReturnType<typeof parseVipKey>>;
    // Objects deleted by hand (leftovers.ts, WithMissing): not listed (the listing fails), and the VIP read as one
    // without rules or slots, so the plan writes it again whole, the missing objects first.
    const missing = findMissing(key, skeleton.objects, skeleton.counters);
    const size = missing.size > 0 ? 0 : Number(/size=(\d+)/.exec(signature)?.[1] ?? 0);
    const base = new Uint32Array(size);
    const overlay = new Uint32Array(size);
    let overlayCount = 0;
    if (size > 0) {
      for (const e of await elements(exec, table, 'map', slotsMap(key))) {
        const [slot, id] = e as [number, number];
        if (slot < size) base[slot] = id;
      }
      for (const e of await elements(exec, table, 'map', overlayMap(key))) {
        const [slot, id] = e as [number, number];
        if (slot < size) {
          overlay[slot] = id;
          overlayCount += 1;
        }
      }
    }
    const listing = skeleton.chainTexts.get(key);
    const live = new Set<number>();
    if (!missing.has(liveSet(key)))
      for (const e of await elements(exec, table, 'set', liveSet(key))) live.add(e as number);
    vips.set(key, {
      key,
      ...k,
      // An unreadable size means we cannot trust the slots: an empty signature makes the plan rewrite them.
      signature: size > 0 ? signature : '',
      rules: skeleton.chainRules.get(key) ?? 0,
      ...(listing === undefined ? {} : { listed: listing, readListing: listing }),
      base,
      overlay,
      overlayCount,
      live,
      label: vipKey({ address: hexToAddress(k.addressHex), port: k.port, protocol: k.protocol }),
      ...(jumps.has(key) ? {} : { jumpMissing: true }),
      ...(missing.size > 0 ? { missing } : {}),
    });
  }
  // A base chain flushed or edited by hand: every packet to a VIP passes both, so they are written again whole.
  const baseChainsDiffer = baseChainsDiffering(skeleton.baseRules);
  // The table's own chains as listed (KernelState.readListing): the plan compares them with what it would write.
  const listing = new Map<string, string>();
  for (const c of ownChains(skeleton.echoAddresses)) {
    const text = skeleton.chainTexts.get(c);
    if (text !== undefined) listing.set(c, text);
  }
  const leftovers = findLeftovers(skeleton.objects, skeleton.counters, skeleton.chains);
  const baseMissing = missingBaseObjects(skeleton.objects, skeleton.counters);
  return {
    layoutSignature: skeleton.layoutSignature,
    ...(baseChainsDiffer.size > 0 ? { baseChainsDiffer } : {}),
    ...(leftovers.size > 0 ? { leftovers } : {}),
    ...(baseMissing.size > 0 ? { baseMissing } : {}),
    vips,
    listed: listing,
    readListing: listing,
    backends,
    maxBackendId,
    retired,
    dropSourceCounter: skeleton.counters.has(DROP_SOURCE),
    vipAddresses,
    routed,
    ...(skeleton.echoAddresses === undefined
      ? {}
      : {
          echoAddresses: skeleton.echoAddresses,
          echoUnmapped: new Set([...skeleton.echoAddresses].filter((a) => !echoMapped.has(a))),
          ...(echoStray.size > 0 ? { echoStray } : {}),
        }),
  };
}
