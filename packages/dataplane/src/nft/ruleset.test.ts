/**
 * The ingress chain selects VIP traffic as the bpf driver does (docs/design/0007 "Packet path"), so a flow reaches the
 * same backend, or is dropped the same way, whichever kind of node ECMP sends it to: TCP / UDP right after the IP
 * header only. An IPv4 fragment (first ones included: they carry ports) and an IPv6 packet with any extension header
 * (hop-by-hop, routing, destination options, AH, fragment) are not VIP traffic; fragments are counted `fragment`, the
 * rest `port`.
 */
import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { nftCountersReport } from './counters-report.js';
import { TEST_LAYOUT } from './layout.test-helper.js';
import { BASE_CHAIN, DROP_FRAGMENT, FORWARD_CHAIN } from './names.js';
import { renderNft } from './ops.js';
import { planApply } from './plan.js';
import { baseChainRules, baseTable, forwardChainRules } from './ruleset.js';
import { baseChainsDiffering } from './state.js';

const layout = TEST_LAYOUT;

function vip(address: string): VipTable {
  const v6 = address.includes(':');
  const backends = [1, 2].map((i) => ({ name: `b${i}`, address: v6 ? `2001:db8:1::${i}` : `198.18.0.${i}`, port: 80 }));
  return {
    vip: { address, port: 80, protocol: 'udp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, 13),
  };
}
const norm = (...t: VipTable[]) => validateDesired(t, { requireSamePort: true });

/** The ingress chain as the version before the fragment rules wrote it (6 rules, no drop_fragment counter). */
const PREVIOUS_INGRESS_RULES = 6;
/** The ingress chain as the version before the VLAN rule wrote it (8 rules: the fragment rules, no VLAN rule). */
const BEFORE_VLAN_INGRESS_RULES = 8;

describe('ingress chain: which packets are VIP traffic (as bpf)', () => {
  test('VLAN: a frame tagged with a VLAN id (802.1Q or 802.1ad, the tag the kernel moved into the skb) is left to its VLAN device first; a priority tag (id 0) is not', () => {
    // nft reads the offloaded tag back in place (nft_payload_copy_vlan): ether type at 12, the TCI at 14.
    expect(baseChainRules()[0]).toBe('ether type { 8021q, 8021ad } @ll,112,16 & 0x0fff != 0 accept');
  });

  test('a table from the version before the VLAN rule (8 ingress rules): its ingress chain is read as differing, written again', () => {
    const forward = forwardChainRules(layout).length;
    expect(
      baseChainsDiffering(
        new Map([
          [BASE_CHAIN, BEFORE_VLAN_INGRESS_RULES],
          [FORWARD_CHAIN, forward],
        ]),
      ),
    ).toEqual(new Set([BASE_CHAIN]));
    expect(
      baseChainsDiffering(
        new Map([
          [BASE_CHAIN, baseChainRules().length],
          [FORWARD_CHAIN, forward],
        ]),
      ),
    ).toEqual(new Set());
  });

  test('IPv4: only an unfragmented packet is looked up as VIP traffic (a first fragment carries ports too)', () => {
    expect(baseChainRules()[1]).toBe(
      'meta pkttype host ip frag-off & 0x3fff == 0 ip daddr . meta l4proto . th dport vmap @vips4',
    );
  });

  test('IPv6: the lookup keys on the header right after the fixed one (ip6 nexthdr), so an extension header never matches', () => {
    // meta l4proto and th would be found behind hop-by-hop, routing, destination options, AH and a first fragment.
    expect(baseChainRules()[2]).toBe('meta pkttype host ip6 daddr . ip6 nexthdr . th dport vmap @vips6');
  });

  test('fragments to a VIP address are dropped and counted drop_fragment, before the port filter', () => {
    const rules = baseChainRules();
    const v4 = rules.indexOf(
      'meta pkttype host ip frag-off & 0x3fff != 0 ip daddr @vipaddrs4 counter name "drop_fragment" drop',
    );
    // 44: the IPv6 fragment header (a number: nft would resolve `ipv6-frag` through /etc/protocols).
    const v6 = rules.indexOf('meta pkttype host ip6 nexthdr 44 ip6 daddr @vipaddrs6 counter name "drop_fragment" drop');
    const port = rules.findIndex((r) => r.endsWith('counter name "drop_port" drop'));
    expect(v4).toBeGreaterThan(2);
    expect(v6).toBeGreaterThan(2);
    expect(port).toBeGreaterThan(Math.max(v4, v6));
    expect(baseTable(layout)).toContain(`counter ${DROP_FRAGMENT} { }`);
  });

  test('a table from the previous version (6 ingress rules, no drop_fragment counter): its ingress chain is read as differing and written again with the counter added first; no new table', () => {
    const forward = forwardChainRules(layout).length;
    expect(
      baseChainsDiffering(
        new Map([
          [BASE_CHAIN, PREVIOUS_INGRESS_RULES],
          [FORWARD_CHAIN, forward],
        ]),
      ),
    ).toEqual(new Set([BASE_CHAIN]));
    const current = planApply(null, norm(vip('198.51.100.7')), layout).next;
    const p = planApply({ ...current, baseChainsDiffer: new Set([BASE_CHAIN]) }, norm(vip('198.51.100.7')), layout);
    expect(p.tableCreated).toBe(false);
    const text = renderNft(layout.table, p.ops);
    const counter = text.indexOf(`add counter netdev l4t ${DROP_FRAGMENT}\n`);
    const flush = text.indexOf('flush chain netdev l4t ingress');
    expect(counter).toBeGreaterThan(-1);
    expect(flush).toBeGreaterThan(counter);
    expect(text).not.toMatch(/delete table|_slots/);
  });

  test('counters: drop_fragment is reported as drops.fragment', () => {
    const none = { packets: 0, bytes: 0 };
    const c = nftCountersReport(
      new Map([[DROP_FRAGMENT, { packets: 3, bytes: 4_500 }]]),
      { vips: new Map(), port: none, noBackend: none, source: none },
      null,
      0,
    );
    expect(c.drops.fragment).toEqual({ packets: 3, bytes: 4_500 });
    expect(c.drops.port).toEqual(none);
  });
});
