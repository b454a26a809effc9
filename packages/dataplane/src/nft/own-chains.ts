/**
 * The table's own chains: `ingress`, `forward` and each VIP address's `echo_<hex>` (echo.ts), as against the VIP
 * chains. A rule of one replaced by hand (`nft replace rule ... handle N ...`) keeps their number of rules, which is
 * all state.ts baseChainsDiffering compares: an `accept` in place of the vips4 lookup stops every IPv4 VIP on the node,
 * one in an echo chain its pings. Their listing tells (KernelState.listed, readListing): verify compares the kernel's
 * with the one taken right after the write (drift.ts), a restart or a full read compares it with what the plan would
 * write (kernel-state.ts sameRules), and the plan writes the chains that differ again. Pure.
 */
import { echoRule } from './echo.js';
import { type KernelState, sameRules } from './kernel-state.js';
import { BASE_CHAIN, DROP_FRAGMENT, echoChain, FORWARD_CHAIN } from './names.js';
import { baseChainHook, baseChainRules, forwardChainRules, type Layout } from './ruleset.js';

/** The echo chain of an address (`family|hex`). */
const echoChainOf = (a: string): string => echoChain(a.split('|')[1] as string);

/** The own chains of a table answering pings for `echoAddresses` (`family|hex`; absent: a table without echo maps). */
export function ownChains(echoAddresses: Iterable<string> | undefined): string[] {
  return [BASE_CHAIN, FORWARD_CHAIN, ...[...(echoAddresses ?? [])].map(echoChainOf)];
}

/** What the plan writes in each own chain of a table answering pings for `echoAddresses`. */
function ownRules(echoAddresses: Iterable<string>, layout: Layout): Map<string, string[]> {
  const rules = new Map([
    [BASE_CHAIN, baseChainRules()],
    [FORWARD_CHAIN, forwardChainRules(layout)],
  ]);
  for (const a of echoAddresses) {
    const hex = a.split('|')[1] as string;
    rules.set(echoChain(hex), [echoRule(hex, layout)]);
  }
  return rules;
}

/**
 * The own chains read back (KernelState.readListing) with rules other than the plan writes: `base` (`ingress`,
 * `forward`: the plan writes them again as it does those with another number of rules, KernelState.baseChainsDiffer)
 * and `echo`, by address (`family|hex`). A chain not listed is not compared: one missing is found otherwise.
 */
export function ownChainsReplaced(current: KernelState, layout: Layout): { base: Set<string>; echo: Set<string> } {
  const base = new Set<string>();
  const echo = new Set<string>();
  const echoAddresses = current.echoAddresses ?? new Set<string>();
  const rules = ownRules(echoAddresses, layout);
  for (const [chain, listed] of current.readListing ?? []) {
    const written = rules.get(chain);
    if (written === undefined || sameRules(listed, written)) continue;
    if (chain === BASE_CHAIN || chain === FORWARD_CHAIN) base.add(chain);
    else for (const a of echoAddresses) if (echoChainOf(a) === chain) echo.add(a);
  }
  return { base, echo };
}

/**
 * The statements writing `ingress` and `forward` again, those of `differ` (KernelState.baseChainsDiffer, or replaced:
 * ownChainsReplaced) and, `upgraded` (a table from before the echo maps, which the plan adds), `ingress`: its rules in
 * the order a new table has, in the same transaction (no packet sees a chain half written); the flow maps stay.
 */
export function rewriteBaseChains(layout: Layout, upgraded: boolean, differ: ReadonlySet<string>): string[] {
  const t = layout.table;
  const out: string[] = [];
  if (upgraded || differ.has(BASE_CHAIN)) {
    // The fragment rules count into it, and a table from before them lacks it (its ingress chain has two rules
    // fewer, so it is rewritten here); `add` leaves an existing counter alone.
    out.push(`add counter netdev ${t} ${DROP_FRAGMENT}`);
    // Read back without its rules: `add chain` first, so one deleted by hand is made again (an existing one stays).
    if (differ.has(BASE_CHAIN)) out.push(`add chain netdev ${t} ${BASE_CHAIN} { ${baseChainHook(layout)} }`);
    out.push(`flush chain netdev ${t} ${BASE_CHAIN}`);
    for (const r of baseChainRules()) out.push(`add rule netdev ${t} ${BASE_CHAIN} ${r}`);
  }
  if (differ.has(FORWARD_CHAIN)) {
    out.push(`add chain netdev ${t} ${FORWARD_CHAIN}`, `flush chain netdev ${t} ${FORWARD_CHAIN}`);
    for (const r of forwardChainRules(layout)) out.push(`add rule netdev ${t} ${FORWARD_CHAIN} ${r}`);
  }
  return out;
}

/** The statements writing the rule of each echo chain of `echo` (`family|hex`) again, in the chain that stays. */
export function rewriteEchoChains(table: string, echo: Iterable<string>, layout: Layout): string[] {
  return [...echo].sort().flatMap((a) => {
    const hex = a.split('|')[1] as string;
    return [
      `flush chain netdev ${table} ${echoChain(hex)}`,
      `add rule netdev ${table} ${echoChain(hex)} ${echoRule(hex, layout)}`,
    ];
  });
}

/**
 * The listings of `current` (KernelState.listed) still true after the plan: those of the own chains of a table
 * answering pings for `echoAddresses`, less those it writes again: the base chains of `base` (`ingress` also when the
 * table had no echo maps: upgraded) and the echo chains of `echo` (addresses). The others are listed after the write
 * (drift.ts withListing).
 */
export function listingKept(
  current: KernelState,
  echoAddresses: Iterable<string>,
  base: Iterable<string>,
  echo: Iterable<string>,
): Map<string, string> {
  const rewritten = new Set([
    ...base,
    ...(current.echoAddresses === undefined ? [BASE_CHAIN] : []),
    ...[...echo].map(echoChainOf),
  ]);
  const kept = new Map<string, string>();
  for (const chain of ownChains(echoAddresses)) {
    const text = current.listed?.get(chain);
    if (text !== undefined && !rewritten.has(chain)) kept.set(chain, text);
  }
  return kept;
}
