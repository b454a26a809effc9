/**
 * A VIP's `sourceRanges` in the nftables driver (both tables): the prefixes as the rules write them, and the short
 * digest that stands for them in a rule comment. Pure.
 *
 * The prefixes go into the VIP's rules as an anonymous interval set (`ip saddr != { 10.0.0.0/8, 198.18.4.7/32 }`):
 * nft 1.0.6 merges overlapping and nested prefixes in it itself and takes host prefixes written with /32 or /128.
 * Changing the list rewrites the VIP's rules (ruleset.ts, nat-plan.ts), never its slot or flow maps. The comment
 * holding a VIP's signature is limited (nft keeps 128 bytes of it) and a rule comment cannot hold 1,024 prefixes,
 * so the signature carries a digest of the list.
 */
import { createHash } from 'node:crypto';
import type { IpFamily } from '@l4fleet/maglev';
import type { NormalizedVip } from '../validate.js';

export interface SourceFilter {
  /** Canonical prefixes (`10.0.0.0/8`, `2001:db8::/32`), sorted and without repeats: the same set, the same text. */
  readonly prefixes: readonly string[];
  /** 16 hex digits of SHA-256 over `prefixes`: the signatures' stand-in for the list. */
  readonly digest: string;
}

/** Hex digits of the digest kept: 64 bits, so two different lists never share one in practice. */
const DIGEST_HEX = 16;

/**
 * The VIP's filter, undefined when it admits every source (no `sourceRanges`). validateDesired() has parsed and checked
 * the prefixes (canonical, the VIP's family, 1-1,024, no repeats) before anything is planned, so only the canonical
 * text of parsed bytes ever reaches nft text.
 */
export function sourceFilterOf(v: Pick<NormalizedVip, 'sources'>): SourceFilter | undefined {
  if (v.sources === undefined) return undefined;
  const prefixes = [...new Set(v.sources.map((p) => p.text))].sort();
  const digest = createHash('sha256').update(prefixes.join(',')).digest('hex').slice(0, DIGEST_HEX);
  return { prefixes, digest };
}

/** The rule that drops and counts a packet from outside `f` (the VIP chain's protocol is already matched). */
export function sourceRule(family: IpFamily, f: SourceFilter, counter: string): string {
  return `${family === 4 ? 'ip' : 'ip6'} saddr != { ${f.prefixes.join(', ')} } counter name "${counter}" drop`;
}
