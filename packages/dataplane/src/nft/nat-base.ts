/**
 * The NAT table's base part (nat-ruleset.ts natBaseTable): its counters, maps and sets, and its base chains, which
 * every NAT VIP's packets pass (prerouting's vmap jumps to the VIP chains, postrouting masquerades, forward, source
 * and served drop). A hand edit there (a chain deleted or flushed) leaves every VIP chain as written and every NAT VIP
 * without service, so a read counts each base chain's rules, as the netdev side does (state.ts baseChainsDiffering),
 * and the plan writes a chain that differs again whole, after re-declaring the base objects with `add` (kept if
 * there).
 */
import { NAT_SERVED, NAT_SOURCE, natBaseTable } from './nat-ruleset.js';

interface BaseChain {
  /** `type nat hook prerouting priority dstnat; policy accept;` */
  readonly hook: string;
  readonly rules: readonly string[];
}

interface BaseSpec {
  /** `add` statements' bodies without the table: `counter nat_drop_port`, `map natvips4 { type ...; }`. */
  readonly objects: ReadonlyMap<string, string>;
  readonly chains: ReadonlyMap<string, BaseChain>;
}

let spec: BaseSpec | undefined;

/** Read from natBaseTable's text, so what is checked and rewritten is what a new table holds. */
function baseSpec(): BaseSpec {
  if (spec !== undefined) return spec;
  const objects = new Map<string, string>();
  const chains = new Map<string, { hook: string; rules: string[] }>();
  let chain: { hook: string; rules: string[] } | undefined;
  for (const line of natBaseTable('t').split('\n')) {
    const open = /^ {2}chain (\S+) \{$/.exec(line);
    if (open) {
      chain = { hook: '', rules: [] };
      chains.set(open[1] as string, chain);
      continue;
    }
    if (line === '  }') chain = undefined;
    const inner = /^ {4}(\S.*)$/.exec(line)?.[1];
    if (chain !== undefined && inner !== undefined) {
      if (inner.startsWith('type ')) chain.hook = inner;
      else chain.rules.push(inner);
    }
    const object = /^ {2}(counter|map|set) (\S+) \{ (.*)\}$/.exec(line);
    if (object) {
      const [, kind, name, body] = object as unknown as [string, string, string, string];
      objects.set(name, kind === 'counter' ? `counter ${name}` : `${kind} ${name} { ${body}}`);
    }
  }
  spec = { objects, chains };
  return spec;
}

/** The base chains' names, in the order a new table declares them. */
export const natBaseChains = (): string[] => [...baseSpec().chains.keys()];

export interface NatBaseDrift {
  /** Base chains whose number of rules is not the one written (flushed, edited, or deleted by hand). */
  readonly chains: ReadonlySet<string>;
  /** Base counters, maps and sets the listing does not declare. */
  readonly objects: ReadonlySet<string>;
}

/**
 * What of the base part a `nft list table inet T` listing (`-t` or `-s`) lacks or has otherwise. The text of a rule as
 * nft lists it is not the text written: the number of rules tells. The source and served chains of a table written
 * before them are left out when absent: their upgrade (nat-ruleset.ts) writes them with their rules.
 */
export function natBaseDrift(listing: string): NatBaseDrift {
  const rules = new Map<string, number>();
  const declared = new Set<string>();
  const { chains, objects } = baseSpec();
  let chain: string | undefined;
  for (const line of listing.split('\n')) {
    const object = /^\t(?:counter|map|set) (\S+) \{$/.exec(line);
    if (object) declared.add(object[1] as string);
    const open = /^\tchain (\S+) \{$/.exec(line);
    if (open) {
      chain = chains.has(open[1] as string) ? (open[1] as string) : undefined;
      if (chain !== undefined) rules.set(chain, 0);
      continue;
    }
    if (line === '\t}') chain = undefined;
    if (chain !== undefined && /^\t\t(?!type )\S/.test(line)) rules.set(chain, (rules.get(chain) as number) + 1);
  }
  const upgrades = new Set([NAT_SOURCE, NAT_SERVED]);
  return {
    chains: new Set(
      [...chains]
        .filter(([name, c]) => rules.get(name) !== c.rules.length && (rules.has(name) || !upgrades.has(name)))
        .map(([name]) => name),
    ),
    objects: new Set([...objects.keys()].filter((o) => !declared.has(o))),
  };
}

/**
 * The statements repairing `drift` in `table inet <table>`: every base object declared with `add` (an existing one is
 * kept, one deleted by hand is made again, before a rule names it), then each differing chain added (kept if there),
 * flushed and written whole, in one transaction with the rest of the plan. Empty when nothing differs.
 */
export function repairNatBase(table: string, drift: NatBaseDrift | undefined): string[] {
  if (drift === undefined || (drift.chains.size === 0 && drift.objects.size === 0)) return [];
  const t = `inet ${table}`;
  const { chains, objects } = baseSpec();
  const out = [...objects.values()].map((o) => `add ${o.replace(/^(\S+) /, `$1 ${t} `)}`);
  for (const [name, c] of chains) {
    if (!drift.chains.has(name)) continue;
    out.push(`add chain ${t} ${name} { ${c.hook} }`, `flush chain ${t} ${name}`);
    for (const r of c.rules) out.push(`add rule ${t} ${name} ${r}`);
  }
  return out;
}
