import { describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { findDrift, withListing } from './drift.js';
import { LISTED_FORWARD, LISTED_INGRESS, TEST_LAYOUT } from './layout.test-helper.js';
import type { KernelState } from './plan.js';
import { layoutSignature } from './ruleset.js';

// A rule of the table's own chains replaced by hand keeps their number of rules, which was all verify's light read
// compared.
const INGRESS = [...LISTED_INGRESS];
const FORWARD = [...LISTED_FORWARD];
const ECHO = 'echo_c6120201';
const ECHO_RULE =
  'ip daddr set ip saddr ip saddr set 198.18.2.1 ip ttl set 64 th sport set th sport & 255 ether daddr set ether saddr ether saddr set 02:00:00:00:00:01 counter name "icmp_echo" fwd to "eth0"';

/** `nft -t list ruleset netdev` of the table with `edits` (chain -> its rules) made by hand. */
function listing(edits: Record<string, string[]> = {}): string {
  const chains: Record<string, string[]> = { ingress: INGRESS, forward: FORWARD, [ECHO]: [ECHO_RULE], ...edits };
  const hook = '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;';
  return [
    `table netdev ${TEST_LAYOUT.table} {`,
    `\tcomment "${layoutSignature(TEST_LAYOUT)}"`,
    ...Object.entries(chains).flatMap(([name, rules]) => [
      `\tchain ${name} {`,
      ...(name === 'ingress' ? [hook] : []),
      ...rules.map((r) => `\t\t${r}`),
      '\t}',
    ]),
    '}',
  ].join('\n');
}

const kernel = (text: string): { exec: Exec; calls: string[] } => {
  const calls: string[] = [];
  const exec: Exec = async (argv) => {
    calls.push(argv.join(' '));
    return { code: 0, stdout: argv.includes('-j') ? '{"nftables":[]}' : text, stderr: '' };
  };
  return { exec, calls };
};

const written = (): KernelState => ({
  layoutSignature: layoutSignature(TEST_LAYOUT),
  vips: new Map(),
  backends: new Map(),
  maxBackendId: 0,
  echoAddresses: new Set(['4|c6120201']),
});

describe("drift - the table's own chains replaced by hand", () => {
  test('withListing keeps the listing of ingress, forward and the echo chains after a write, then lists no more', async () => {
    const k = kernel(listing());
    const state = await withListing(k.exec, written(), TEST_LAYOUT.table);
    expect(state.listed).toEqual(
      new Map([
        ['ingress', INGRESS.join('\n')],
        ['forward', FORWARD.join('\n')],
        [ECHO, ECHO_RULE],
      ]),
    );
    expect(k.calls).toEqual(['nft -t list ruleset netdev']);
    // A slot delta writes no rule: nothing unknown, nothing listed.
    await withListing(k.exec, state, TEST_LAYOUT.table);
    expect(k.calls).toHaveLength(1);
  });

  test.each([
    ['ingress', INGRESS.map((r) => (r.endsWith('@vips4') ? 'accept' : r)), 2, INGRESS[1]],
    ['forward', FORWARD.map((r) => (r.includes('@backends4') ? 'drop' : r)), 3, FORWARD[2]],
    [ECHO, ['counter name "icmp_echo" drop'], 1, ECHO_RULE],
  ])('a rule of %s replaced (the number kept) is named, with the rule written', async (chain, rules, n, was) => {
    const state = await withListing(kernel(listing()).exec, written(), TEST_LAYOUT.table);
    const edited = listing({ [chain]: rules });
    expect(await findDrift(kernel(edited).exec, state, TEST_LAYOUT)).toBe(
      `chain ${chain}: rule ${n} is "${rules[n - 1]}", written "${was}"`,
    );
    // Flushed by hand: the number named.
    expect(await findDrift(kernel(listing({ [chain]: [] })).exec, state, TEST_LAYOUT)).toBe(
      chain === ECHO ? `chain ${chain}: 0 rules, written 1` : `chain ${chain}: 0 rules, not as written`,
    );
    // As written: not this (the fake lists no map, which the read names next).
    expect(await findDrift(kernel(listing()).exec, state, TEST_LAYOUT)).not.toMatch(/^chain /);
  });
});
