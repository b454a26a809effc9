/**
 * verify()'s light read of the netdev table: what is small and what makes a whole VIP, or the node, stop forwarding
 * when changed by hand, compared with the driver's model (KernelState). The full read (readKernelState) lists every
 * slot map's elements (65,537 per default-size VIP: ~1 s each, several at load), and verify runs every
 * dataplane.verifyIntervalS serialised with apply, so a health change waiting behind it waited that long; this read
 * costs about the same whatever the slot counts. Only when it finds a difference does verify fall back to the full
 * read and plan (the repair itself is a restart's).
 *
 * Read: the table's skeleton (its comment, base chains' rule counts, each VIP chain's signature and rules as listed,
 * the echo chains, the rules of `ingress`, `forward` and the echo chains as listed, the names of its maps, sets and
 * counters) and the elements of the maps holding one element per VIP or address (vips4/6, vipaddrs4/6, echo4/6): each
 * one the model holds, with its verdict, and none other (one added by hand for a key or address no VIP has routes
 * packets the driver never wrote). Not read: slot, overlay and live elements (only that each map is there), backend
 * and flow maps' elements. A slot-map element edited by hand is therefore not found by verify; the full read of a
 * restart (or of the next verify that finds anything else) finds it.
 */

import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { missingBaseObjects } from './base-objects.js';
import { echoAddress } from './echo.js';
import { echoChain, hexToAddress, liveSet, overlayMap, parseVipKey, slotsMap } from './names.js';
import { ownChains } from './own-chains.js';
import type { KernelState } from './plan.js';
import type { Layout } from './ruleset.js';
import { baseChainsDiffering, parseSkeleton, readRouting, tableBlock } from './state.js';

const familyOf = (key: string): number | undefined => parseVipKey(key)?.family;
/** The element of an address (`family|hex`, as the model keeps it) in `map` of its family, as a message names it. */
const element = (map: string, a: string): string => {
  const [family, hex] = a.split('|') as [string, string];
  return `the ${map}${family} element of ${hexToAddress(hex)}`;
};

/** The first rule of `chain` whose `listed` text is not the one listed after the write (`was`), as drift names it. */
function ruleReplaced(chain: string, listed: string, was: string): string | undefined {
  const rules = listed === '' ? [] : listed.split('\n');
  const written = was === '' ? [] : was.split('\n');
  // An echo chain's number of rules is compared nowhere else (flushed, or a rule added, by hand).
  if (rules.length !== written.length) return `chain ${chain}: ${rules.length} rules, written ${written.length}`;
  const i = rules.findIndex((r, n) => r !== written[n]);
  return i < 0 ? undefined : `chain ${chain}: rule ${i + 1} is "${rules[i]}", written "${written[i]}"`;
}

/**
 * The first difference found between the kernel's netdev table and `state` (a sentence naming the object), or
 * undefined when none of what this reads differs. A listing nft answers with an error is a difference too (the full
 * read then reports it, or repairs what made it so). One that could not be taken at all (exec rejects: nft timed out
 * or did not start) is thrown, and the caller drops its model (verifyNow in driver.ts).
 */
export async function findDrift(exec: Exec, state: KernelState, layout: Layout): Promise<string | undefined> {
  const t = layout.table;
  try {
    const r = await exec(['nft', '-t', 'list', 'ruleset', 'netdev']);
    if (r.code !== 0) return `nft -t list ruleset netdev: ${r.stderr.trim() || `exit ${r.code}`}`;
    const block = tableBlock(r.stdout, t);
    if (block === undefined) return `table netdev ${t} is missing`;
    const s = parseSkeleton(block);
    if (s.layoutSignature !== state.layoutSignature) {
      return `table comment ${JSON.stringify(s.layoutSignature)} is not ${JSON.stringify(state.layoutSignature)}`;
    }
    for (const chain of baseChainsDiffering(s.baseRules)) {
      return `chain ${chain}: ${s.baseRules.get(chain) ?? 'missing, no'} rules, not as written`;
    }
    // The table's own chains (own-chains.ts) with a rule replaced by hand: the number kept, the text not. One not
    // there is found below (an echo chain missing).
    for (const [chain, was] of state.listed ?? []) {
      const listed = s.chainTexts.get(chain);
      const replaced = listed === undefined ? undefined : ruleReplaced(chain, listed, was);
      if (replaced !== undefined) return replaced;
    }
    // The table's own objects (base-objects.ts): every one is there once the driver wrote the table.
    for (const o of missingBaseObjects(s.objects, s.counters)) return `map, set or counter ${o} is missing`;
    for (const [key, v] of state.vips) {
      const signature = s.chains.get(key);
      if (signature === undefined) return `chain ${key} is missing`;
      if (signature !== v.signature) return `chain ${key}: rules "${signature}", written "${v.signature}"`;
      const rules = s.chainRules.get(key);
      if (v.rules !== undefined && rules !== v.rules) return `chain ${key}: ${rules} rules, written ${v.rules}`;
      // Replaced by hand (`nft replace rule`): the number and the signature kept, the rule's text not.
      const listed = s.chainTexts.get(key) ?? '';
      const replaced = ruleReplaced(key, listed, v.listed ?? listed);
      if (replaced !== undefined) return replaced;
    }
    for (const key of s.chains.keys()) if (!state.vips.has(key)) return `chain ${key} is not one the driver wrote`;
    if (state.echoAddresses !== undefined) {
      const listed = s.echoAddresses ?? new Set<string>();
      for (const a of state.echoAddresses) if (!listed.has(a)) return `echo chain of ${a} is missing`;
      for (const a of listed) if (!state.echoAddresses.has(a)) return `echo chain of ${a} is not one the driver wrote`;
    }
    const perVip = [...state.vips.keys()].flatMap((k) => [slotsMap(k), overlayMap(k), liveSet(k)]);
    for (const o of perVip) if (!s.objects.has(o)) return `map or set ${o} is missing`;

    const routing = await readRouting(exec, t, s.echoAddresses !== undefined);
    const verdict = (v: string | undefined): string => `\`${v}\``;
    for (const v of state.vips.values()) {
      if (v.jumpMissing || routing.jumps.has(v.key)) continue;
      const listed = routing.verdicts.get(v.key);
      // Rewritten by hand (`: drop`, a jump to another chain): it is there, with what it holds.
      return `the vips${v.family} element of ${v.key} is ${
        listed === undefined ? 'missing' : `${verdict(listed)}, written ${verdict(`jump ${v.key}`)}`
      }`;
    }
    // Added by hand for a key no VIP of the driver's has (whatever its verdict): the repair deletes it.
    for (const [key, v] of routing.verdicts) {
      if (!state.vips.has(key)) return `the vips${familyOf(key)} element of ${key} (${verdict(v)}) is not written`;
    }
    const addresses =
      state.vipAddresses ?? new Set([...state.vips.values()].map((v) => echoAddress(v.family, v.addressHex)));
    for (const a of addresses) if (!routing.vipAddresses.has(a)) return `${element('vipaddrs', a)} is missing`;
    for (const a of routing.vipAddresses) if (!addresses.has(a)) return `${element('vipaddrs', a)} is not written`;
    for (const a of state.echoAddresses ?? []) {
      if (state.echoUnmapped?.has(a) || routing.echoMapped.has(a)) continue;
      const listed = routing.echoVerdicts.get(a);
      const written = `goto ${echoChain(a.split('|')[1] as string)}`;
      return `${element('echo', a)} is ${listed === undefined ? 'missing' : `${verdict(listed)}, written ${verdict(written)}`}`;
    }
    for (const [a, v] of routing.echoVerdicts) {
      if (!state.echoAddresses?.has(a)) return `${element('echo', a)} (${verdict(v)}) is not written`;
    }
    return undefined;
  } catch (err) {
    if (err instanceof DataPlaneError && err.code === 'NFT_STATE_UNREADABLE') return err.message;
    throw err;
  }
}

/**
 * `state` with the listing (KernelVip.listed, KernelState.listed) of each VIP chain and own chain (own-chains.ts) it
 * has none of: the chains whose rules the plan has just written, listed right after the write, so the light read
 * compares the kernel with what this nft lists for what the plan wrote, not with the plan's own text. One skeleton
 * listing (~10 ms), only after a write of rules (a slot delta writes none). One that fails leaves them unknown (not
 * compared) until the next read.
 */
export async function withListing(exec: Exec, state: KernelState, table: string): Promise<KernelState> {
  const unknown = [...state.vips.values()].filter((v) => v.listed === undefined);
  const own = ownChains(state.echoAddresses).filter((c) => state.listed?.has(c) !== true);
  if (unknown.length === 0 && own.length === 0) return state;
  const r = await exec(['nft', '-t', 'list', 'ruleset', 'netdev']).catch(() => undefined);
  const block = r?.code === 0 ? tableBlock(r.stdout, table) : undefined;
  if (block === undefined) return state;
  const texts = parseSkeleton(block).chainTexts;
  const vips = new Map(state.vips);
  for (const v of unknown) {
    const listed = texts.get(v.key);
    if (listed !== undefined) vips.set(v.key, { ...v, listed });
  }
  const listed = new Map(state.listed);
  for (const c of own) {
    const text = texts.get(c);
    if (text !== undefined) listed.set(c, text);
  }
  return { ...state, vips, listed };
}
