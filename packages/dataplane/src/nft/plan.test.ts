import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { echoRule } from './echo.js';
import { planFold } from './fold.js';
import { TEST_LAYOUT } from './layout.test-helper.js';
import { hexToAddress } from './names.js';
import { nftStatements, renderBatch, renderNft } from './ops.js';
import { type KernelBackend, type KernelState, type Plan, planApply, RETIRED_MAX } from './plan.js';
import { baseChainRules, forwardChainRules, type Layout } from './ruleset.js';
import { effectiveSlot } from './slot-delta.js';

const layout: Layout = TEST_LAYOUT;

function vip(n: number, opts: Partial<VipTable> = {}, size = 13): VipTable {
  const backends = Array.from({ length: n }, (_x, i) => ({ name: `b${i}`, address: `198.18.0.${i + 1}`, port: 80 }));
  return {
    vip: { address: '198.18.2.1', port: 80, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, size),
    ...opts,
  };
}

const norm = (...t: VipTable[]) => validateDesired(t, { requireSamePort: true });
const lines = (script: string) => script.split('\n').filter(Boolean);
/** The plan as the nft script and as l4fleet-nft-batch requests (undefined when it needs nft). */
const script = (p: Plan): string => renderNft(layout.table, p.ops);
const batch = (p: Plan): string | undefined => renderBatch(p.ops);

function applied(...t: VipTable[]): KernelState {
  return planApply(null, norm(...t), layout).next;
}

describe('planApply', () => {
  test('first apply - creates the table, one VIP chain, every slot', () => {
    const p = planApply(null, norm(vip(3)), layout);
    expect(p.tableCreated).toBe(true);
    expect(script(p)).toContain('table netdev l4t {');
    expect(script(p)).toContain('add chain netdev l4t v_c6120201_tcp_80');
    expect(script(p)).toContain('jhash ip saddr . tcp sport . ip daddr . tcp dport mod 13 seed 7');
    expect(script(p)).toContain('add element netdev l4t vips4 { 198.18.2.1 . tcp . 80 : jump v_c6120201_tcp_80 }');
    expect(p.slotsChanged).toBe(13);
    expect(p.backendsAdded).toBe(3);
  });

  test('retain - a VIP leaving keeps its chain, jump, address and backends until a plan without retain', () => {
    const other = vip(1, { vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' } });
    // Both addresses are still VIP addresses of the driver (the leaving one moves to the NAT table): both answer pings.
    const echo = new Set(['4|c6120201', '4|c6120202']);
    const kept = planApply(applied(vip(3), other), norm(other), layout, echo, new Set(['v_c6120201_tcp_80']));
    expect(script(kept)).toBe('');
    expect(kept.next.vips.has('v_c6120201_tcp_80')).toBe(true);
    expect(kept.next.backends.size).toBe(3);
    const gone = planApply(kept.next, norm(other), layout, echo);
    expect(script(gone)).toContain('delete chain netdev l4t v_c6120201_tcp_80');
    expect(script(gone)).toContain('delete element netdev l4t vips4 { 198.18.2.1 . tcp . 80 }');
    expect(script(gone)).toContain('delete element netdev l4t vipaddrs4 { 198.18.2.1 }');
    expect(gone.backendsRemoved).toBe(2);
  });

  test('same state again - nothing to do', () => {
    const p = planApply(applied(vip(3)), norm(vip(3)), layout);
    expect(script(p)).toBe('');
    expect(p.vips).toEqual([{ vip: '198.18.2.1:80/tcp', action: 'unchanged', slotsChanged: 0, rulesReplaced: false }]);
  });

  test('base objects read back missing (deleted by hand, no rule named them) - declared again before the first rule, once', () => {
    const current: KernelState = { ...applied(vip(3)), baseMissing: new Set(['flows4_udp', 'flow_table_full']) };
    const udp = vip(3, { vip: { address: '198.18.2.2', port: 80, protocol: 'udp' } });
    const p = lines(script(planApply(current, norm(vip(3), udp), layout)));
    const declared = p.findIndex((l) =>
      /^add map netdev l4t flows4_udp \{ type ipv4_addr \. inet_service .* : mark; flags dynamic,timeout; timeout \d+s; size \d+; \}$/.test(
        l,
      ),
    );
    expect(declared).toBeGreaterThan(-1);
    expect(p.indexOf('add counter netdev l4t flow_table_full')).toBeGreaterThan(-1);
    expect(declared).toBeLessThan(p.findIndex((l) => l.startsWith('add rule')));
    const next = planApply(current, norm(vip(3), udp), layout).next;
    expect(script(planApply(next, norm(vip(3), udp), layout))).toBe('');
  });

  test('one slot moves - one add to the overlay; moving back deletes it; the slot map is untouched', () => {
    const t = vip(3);
    const slots = Int32Array.from(t.slots);
    slots[4] = ((slots[4] as number) + 1) % 3;
    const p = planApply(applied(t), norm({ ...t, slots }), layout);
    expect(lines(script(p))).toEqual([
      expect.stringMatching(/^add element netdev l4t v_c6120201_tcp_80_over \{ 4 : \d+ \}$/),
    ]);
    expect(p.slotsChanged).toBe(1);
    const v = p.next.vips.get('v_c6120201_tcp_80');
    expect(v?.overlayCount).toBe(1);
    const back = planApply(p.next, norm(t), layout);
    expect(lines(script(back))).toEqual(['delete element netdev l4t v_c6120201_tcp_80_over { 4 }']);
    expect(back.next.vips.get('v_c6120201_tcp_80')?.overlayCount).toBe(0);
    // Moving it again, elsewhere: the overlay element is replaced.
    const slots2 = Int32Array.from(slots);
    slots2[4] = ((slots[4] as number) + 1) % 3;
    const again = planApply(p.next, norm({ ...t, slots: slots2 }), layout);
    expect(lines(script(again))).toEqual([
      'delete element netdev l4t v_c6120201_tcp_80_over { 4 }',
      expect.stringMatching(/^add element netdev l4t v_c6120201_tcp_80_over \{ 4 : \d+ \}$/),
    ]);
  });

  test('fold - overlay entries move into the slot map in steps, every slot forwarding where it did', () => {
    const t = vip(3, {}, 101);
    let state = applied(t);
    const less = vip(2, {}, 101);
    state = planApply(state, norm(less), layout).next;
    const key = 'v_c6120201_tcp_80';
    const before = state.vips.get(key) as NonNullable<ReturnType<typeof state.vips.get>>;
    expect(before.overlayCount).toBeGreaterThan(20);
    const effective = (st: typeof state): number[] =>
      Array.from({ length: 101 }, (_x, s) =>
        effectiveSlot(st.vips.get(key) as NonNullable<ReturnType<typeof st.vips.get>>, s),
      );
    const want = effective(state);
    let steps = 0;
    for (let fold = planFold(state, 10); fold !== undefined; fold = planFold(state, 10)) {
      expect(fold.slots).toBeLessThanOrEqual(10);
      expect(renderBatch(fold.ops)).toBeDefined();
      state = fold.next;
      expect(effective(state)).toEqual(want);
      steps += 1;
      expect(steps).toBeLessThan(50);
    }
    expect(state.vips.get(key)?.overlayCount).toBe(0);
    expect(steps).toBe(Math.ceil(before.overlayCount / 10));
    // Folded, the state plans like a fresh one: nothing to do for the same table.
    expect(script(planApply(state, norm(less), layout))).toBe('');
  });

  test('backend leaves - its slots move, its id and counter go; the same backend gets the id back, no other does', () => {
    const before = applied(vip(3));
    const p = planApply(before, norm(vip(2)), layout);
    expect(p.backendsRemoved).toBe(1);
    expect(script(p)).toContain('delete counter netdev l4t b_80000003');
    expect(script(p)).toContain('delete element netdev l4t v_c6120201_tcp_80_live { 2147483651 }');
    // It comes back before the fold: its old id again, so its slots only lose their overlay elements.
    const back = planApply(p.next, norm(vip(3)), layout);
    expect(script(back)).toContain('add counter netdev l4t b_80000003');
    expect(script(back)).not.toContain('flush');
    expect(script(back)).not.toMatch(/add element netdev l4t v_c6120201_tcp_80_over/);
    expect(back.next.vips.get('v_c6120201_tcp_80')?.overlayCount).toBe(0);
    // Another backend in its place gets a fresh id.
    const other = vip(3);
    const replaced = planApply(
      p.next,
      norm({ ...other, backends: [...other.backends.slice(0, 2), { name: 'x', address: '198.18.0.99', port: 80 }] }),
      layout,
    );
    expect(script(replaced)).toContain('add counter netdev l4t b_80000004');
  });

  test('seed or hash changes - rules rewritten, slot map kept', () => {
    const p = planApply(applied(vip(3)), norm(vip(3, { seed: 8 })), layout);
    expect(script(p)).toContain('flush chain netdev l4t v_c6120201_tcp_80');
    expect(script(p)).not.toContain('flush map');
    expect(p.vips[0]?.rulesReplaced).toBe(true);
  });

  test('a TCP SYN is placed by the table - known-flow rules skip it, its old entry is deleted before the add', () => {
    const rules = lines(script(planApply(null, norm(vip(3)), layout))).filter((l) => l.includes('v_c6120201_tcp_80 '));
    const known = rules.filter((l) => l.includes('map @flows4_tcp'));
    expect(known).toHaveLength(1);
    expect(known[0]).toContain('tcp flags & (syn | ack) != syn');
    const forget = rules.findIndex((l) => l.includes('delete @flows4_tcp'));
    const remember = rules.findIndex((l) => l.includes('add @flows4_tcp'));
    expect(rules[forget]).toContain('tcp flags & (syn | ack) == syn');
    expect(forget).toBeGreaterThan(-1);
    expect(forget).toBeLessThan(remember);
    // IPv6: both hint maps lose the SYN's entry; UDP has no SYN rule.
    const v6 = vip(3, { vip: { address: '2001:db8::1', port: 80, protocol: 'tcp' } });
    const v6Rules = lines(
      script(
        planApply(
          null,
          norm({ ...v6, backends: v6.backends.map((b, i) => ({ ...b, address: `2001:db8:1::${i + 1}` })) }),
          layout,
        ),
      ),
    );
    expect(v6Rules.filter((l) => /== syn delete @flows6_tcp .* delete @flows6b?_tcp/.test(l))).toHaveLength(1);
    const udp = planApply(null, norm(vip(3, { vip: { address: '198.18.2.1', port: 80, protocol: 'udp' } })), layout);
    expect(script(udp)).not.toContain('syn');
  });

  test('rules written before the SYN rule (no syn=table in the signature) are rewritten once, maps kept', () => {
    const old = applied(vip(3));
    const entry = old.vips.get('v_c6120201_tcp_80');
    if (entry === undefined) throw new Error('no vip');
    const before: KernelState = {
      ...old,
      vips: new Map([['v_c6120201_tcp_80', { ...entry, signature: entry.signature.replace(' syn=table', '') }]]),
    };
    const p = planApply(before, norm(vip(3)), layout);
    expect(script(p)).toContain('flush chain netdev l4t v_c6120201_tcp_80');
    expect(script(p)).not.toContain('flush map');
    expect(planApply(old, norm(vip(3)), layout).ops).toHaveLength(0);
  });

  test('a chain read back with another number of rules than written (one deleted by hand) - rewritten, maps kept', () => {
    const entry = applied(vip(3)).vips.get('v_c6120201_tcp_80') as NonNullable<ReturnType<KernelState['vips']['get']>>;
    expect(entry.rules).toBeGreaterThan(1);
    const read: KernelState = {
      ...applied(vip(3)),
      vips: new Map([['v_c6120201_tcp_80', { ...entry, rules: (entry.rules as number) - 1 }]]),
    };
    const p = planApply(read, norm(vip(3)), layout);
    expect(script(p)).toContain('flush chain netdev l4t v_c6120201_tcp_80');
    expect(lines(script(p)).filter((l) => l.startsWith('add rule netdev l4t v_c6120201_tcp_80'))).toHaveLength(
      entry.rules as number,
    );
    expect(script(p)).not.toMatch(/(flush|delete) map/);
    expect(p.next.vips.get('v_c6120201_tcp_80')?.rules).toBe(entry.rules);
    expect(script(planApply(p.next, norm(vip(3)), layout))).toBe('');
  });

  test('table size changes - the slot map is refilled', () => {
    const p = planApply(applied(vip(3)), norm(vip(3, {}, 17)), layout);
    expect(script(p)).toContain('flush map netdev l4t v_c6120201_tcp_80_slots');
    expect(p.slotsChanged).toBe(17);
  });

  test('VIP removed - its chain, maps, counter and address go', () => {
    const p = planApply(applied(vip(3)), [], layout);
    expect(lines(script(p))).toEqual(
      expect.arrayContaining([
        'delete element netdev l4t vips4 { 198.18.2.1 . tcp . 80 }',
        'delete chain netdev l4t v_c6120201_tcp_80',
        'delete map netdev l4t v_c6120201_tcp_80_slots',
        'delete counter netdev l4t v_c6120201_tcp_80',
        'delete element netdev l4t vipaddrs4 { 198.18.2.1 }',
      ]),
    );
    expect(p.vips.map((v) => v.action)).toEqual(['removed']);
  });

  test('a VIP chain and jump deleted by hand, its maps, set and counter left - deleted before the VIP is written again, or for good', () => {
    const other = vip(1, { vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' } });
    const key = 'v_c6120201_tcp_80';
    const full = applied(vip(3), other);
    // As readKernelState reads it: no chain, so no VIP; its objects listed as leftovers (a 65,537-slot one refused every
    // apply: `add map` kept the old map, and each slot's element differed from the one stored).
    const objects = [`map ${key}_slots`, `map ${key}_over`, `set ${key}_live`, `counter ${key}`];
    const leftovers = new Map([[key, objects.map((o) => ({ kind: o.split(' ')[0], name: o.split(' ')[1] }))]]);
    const read = { ...full, vips: new Map([...full.vips].filter(([k]) => k !== key)), leftovers } as KernelState;
    const at = (l: string[], x: string): number => l.findIndex((y) => y === x || y.startsWith(`${x} `));
    const again = lines(script(planApply(read, norm(vip(3), other), layout)));
    for (const [kind, name] of objects.slice(0, 3).map((o) => o.split(' '))) {
      expect(at(again, `delete ${kind} netdev l4t ${name}`)).toBeGreaterThan(-1);
      expect(at(again, `delete ${kind} netdev l4t ${name}`)).toBeLessThan(at(again, `add ${kind} netdev l4t ${name}`));
      // Emptied after the add too: a model older than the kernel (no read since) does not know them.
      expect(at(again, `flush ${kind} netdev l4t ${name}`)).toBeGreaterThan(
        at(again, `add ${kind} netdev l4t ${name}`),
      );
    }
    // Its counter counts on; the flow maps and the other VIP are not touched.
    expect(again.filter((l) => l.includes('counter netdev l4t v_'))).toEqual([`add counter netdev l4t ${key}`]);
    const untouched = (l: string): boolean => !/^(flush|delete) \S+ netdev l4t (flows|exact)|c6120202/.test(l);
    expect(again.every(untouched)).toBe(true);
    const gone = planApply(read, norm(other), layout);
    expect(lines(script(gone))).toEqual(
      expect.arrayContaining(objects.map((o) => `delete ${o.replace(' ', ' netdev l4t ')}`)),
    );
    expect(lines(script(gone)).every(untouched)).toBe(true);
    expect(script(planApply(gone.next, norm(other), layout))).toBe('');
  });

  test.each([
    ['map', 'v_c6120201_tcp_80_slots'],
    ['map', 'v_c6120201_tcp_80_over'],
    ['set', 'v_c6120201_tcp_80_live'],
    ['counter', 'v_c6120201_tcp_80'],
  ])(
    'a VIP chain flushed by hand and its %s %s deleted - added again before the rules, the rest written again; nothing missing is deleted',
    (kind, name) => {
      const other = vip(1, { vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' } });
      const key = 'v_c6120201_tcp_80';
      const full = applied(vip(3), other);
      const entry = full.vips.get(key);
      if (entry === undefined) throw new Error('no vip');
      // As readKernelState reads it: no rules (signature ''), no slots, the live set as listed (none when it is missing).
      const incomplete = {
        ...entry,
        signature: '',
        base: new Uint32Array(0),
        overlay: new Uint32Array(0),
        overlayCount: 0,
        live: kind === 'set' ? new Set<number>() : entry.live,
        missing: new Set([name]),
      };
      const read: KernelState = { ...full, vips: new Map([...full.vips, [key, incomplete]]) };
      const p = planApply(read, norm(vip(3), other), layout);
      const again = lines(script(p));
      const at = (x: string): number => again.findIndex((y) => y === x || y.startsWith(`${x} `));
      const firstRule = at(`add rule netdev l4t ${key}`);
      expect(at(`flush chain netdev l4t ${key}`)).toBeGreaterThan(-1);
      expect(at(`flush chain netdev l4t ${key}`)).toBeLessThan(firstRule);
      // The missing object is added before any rule names it; an existing one is not (`add` would keep it, but the
      // overlay is declared with a size): the overlay is replaced, as after a size change, unless it is the missing one.
      expect(at(`add ${kind} netdev l4t ${name}`)).toBeGreaterThan(-1);
      expect(at(`add ${kind} netdev l4t ${name}`)).toBeLessThan(firstRule);
      const added = again.filter((l) => /^add (counter|map|set) netdev l4t v_c6120201_tcp_80/.test(l));
      expect(added.map((l) => l.split(' ').slice(0, 5).join(' ')).sort()).toEqual(
        [...new Set([`add ${kind} netdev l4t ${name}`, `add map netdev l4t ${key}_over`])].sort(),
      );
      expect(again.some((l) => l.startsWith(`delete ${kind} netdev l4t ${name}`))).toBe(false);
      if (name !== `${key}_over`) {
        expect(at(`delete map netdev l4t ${key}_over`)).toBeLessThan(at(`add map netdev l4t ${key}_over`));
        expect(at(`delete map netdev l4t ${key}_over`)).toBeGreaterThan(at(`flush chain netdev l4t ${key}`));
      }
      // The slot map written whole, after its flush (and its add, when it was the missing one).
      expect(at(`flush map netdev l4t ${key}_slots`)).toBeGreaterThan(at(`add map netdev l4t ${key}_slots`));
      expect(again.filter((l) => l.startsWith(`add element netdev l4t ${key}_slots `))).toHaveLength(1);
      expect(p.slotsChanged).toBe(13);
      // The VIP's counter counts on (only a missing one is added), the flow maps and the other VIP are not touched.
      expect(again.some((l) => /^(flush|delete) \S+ netdev l4t (flows|exact)|c6120202/.test(l))).toBe(false);
      expect(again.some((l) => l.startsWith(`delete counter`))).toBe(false);
      expect(p.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
      expect(script(planApply(p.next, norm(vip(3), other), layout))).toBe('');
      // No longer desired: its other objects go, the missing one is not deleted (the transaction would be refused).
      const gone = lines(script(planApply(read, norm(other), layout)));
      const objects = [`map ${key}_slots`, `map ${key}_over`, `set ${key}_live`, `counter ${key}`];
      expect(gone.filter((l) => /^delete (map|set|counter) netdev l4t v_c6120201/.test(l)).sort()).toEqual(
        objects
          .filter((o) => o !== `${kind} ${name}`)
          .map((o) => `delete ${o.replace(' ', ' netdev l4t ')}`)
          .sort(),
      );
      expect(gone).toContain(`delete chain netdev l4t ${key}`);
    },
  );

  test('another layout (interface, timeouts) - the table is replaced in the same transaction', () => {
    const p = planApply(applied(vip(3)), norm(vip(3)), { ...layout, flowTimeoutTcpS: 60 });
    expect(lines(script(p))[0]).toBe('delete table netdev l4t');
    expect(p.tableCreated).toBe(true);
  });

  test('a retired backend keeps its id and elements: back, it gets its counter again and nothing else', () => {
    const before = applied(vip(3));
    const leave = planApply(before, norm(vip(2)), layout);
    expect([...(leave.next.retired?.values() ?? [])].map((b) => b.id)).toEqual([2147483651]);
    const back = planApply(leave.next, norm(vip(3)), layout);
    const requests = (batch(back) as string).split('\n').filter(Boolean);
    expect(requests.filter((r) => r.includes('2147483651') || r.includes('b_80000003'))).toEqual([
      'add-counter b_80000003',
      'add backend_counters 2147483651=obj:b_80000003',
      'add v_c6120201_tcp_80_live 2147483651',
    ]);
    expect(back.next.retired?.size).toBe(0);
    // A new table (another layout) has none of the old elements: a returning backend is added whole.
    const relaid = planApply(leave.next, norm(vip(3)), { ...layout, flowTableSize: 2048 });
    expect(script(relaid)).toMatch(/add element netdev l4t backends4 \{ .*2147483651 : 198\.18\.0\.3/);
  });

  test('retired backend across a new table - back after the rebuild, its address element is written again', () => {
    const leave = planApply(applied(vip(3)), norm(vip(2)), layout);
    // Another layout (agent restarted with another flowTableSize): the table is replaced without the retired element.
    const relayout = { ...layout, flowTableSize: 2048 };
    const rebuilt = planApply(leave.next, norm(vip(2)), relayout);
    expect(rebuilt.tableCreated).toBe(true);
    expect(script(rebuilt)).not.toContain('198.18.0.3');
    const back = planApply(rebuilt.next, norm(vip(3)), relayout);
    expect(script(back)).toMatch(/add element netdev l4t backends4 \{ \d+ : 198\.18\.0\.3 \}/);
  });

  test(`retired backends past RETIRED_MAX (${RETIRED_MAX}): the oldest go with their elements, never the highest id`, () => {
    const before = applied(vip(3));
    const retired = new Map<string, KernelBackend>();
    // The highest id retired first, so it is the oldest.
    const top = { id: 0x8000_0000 + 70_000, family: 4 as const, addressHex: 'c612ffff' };
    retired.set(`${top.addressHex}|`, top);
    for (let i = 0; i < RETIRED_MAX - 1; i++) {
      const b = { id: 0x8000_0000 + 100 + i, family: 4 as const, addressHex: (0xc6130000 + i).toString(16) };
      retired.set(`${b.addressHex}|`, b);
    }
    const state: KernelState = { ...before, retired, maxBackendId: 70_000 };
    const leave = planApply(state, norm(vip(2)), layout);
    expect(leave.next.retired?.size).toBe(RETIRED_MAX);
    expect(leave.next.retired?.has(`${top.addressHex}|`)).toBe(true);
    expect(leave.next.retired?.has('c6130000|')).toBe(false);
    expect((batch(leave) as string).split('\n')).toContain(`delete backends4 ${0x8000_0000 + 100}`);
  });

  test('backend change - element-only, so it can go as one l4fleet-nft-batch transaction', () => {
    const before = applied(vip(3));
    const leave = planApply(before, norm(vip(2)), layout);
    const requests = (batch(leave) as string).split('\n').filter(Boolean);
    expect(requests[0]).toBe('delete v_c6120201_tcp_80_live 2147483651');
    expect(requests).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^add v_c6120201_tcp_80_over( \d+=\d+)+$/),
        'delete backend_counters 2147483651',
        'delete-counter b_80000003',
      ]),
    );
    // Retired: its address element stays in the kernel (a restarted driver reads its id back: KernelState.retired).
    expect(requests.filter((r) => r.startsWith('delete backends4'))).toEqual([]);
    const join = planApply(
      leave.next,
      norm(
        vip(3, {
          backends: [
            ...vip(3).backends.slice(0, 2),
            { name: 'm', address: '198.18.0.9', port: 80, mac: '02:00:00:00:00:09' },
          ],
        }),
      ),
      layout,
    );
    expect((batch(join) as string).split('\n').slice(0, 5)).toEqual([
      'add-counter b_80000004',
      'add backends4 2147483652=hex:c6120009',
      'add backend_counters 2147483652=obj:b_80000004',
      'add macs 2147483652=hex:020000000009',
      'add v_c6120201_tcp_80_live 2147483652',
    ]);
  });

  test('new VIP, rule or size change - needs nft: no batch rendering', () => {
    expect(batch(planApply(null, norm(vip(3)), layout))).toBeUndefined();
    expect(batch(planApply(applied(vip(3)), norm(vip(3, { seed: 8 })), layout))).toBeUndefined();
    expect(batch(planApply(applied(vip(3)), norm(vip(3, {}, 17)), layout))).toBeUndefined();
    expect(batch(planApply(applied(vip(3)), norm(vip(3)), layout))).toBe('');
  });

  test('a change past the batch bound - no batch rendering: it goes to nft -f, streamed', () => {
    const t = vip(3, {}, 65_537);
    const leave = planApply(applied(t), norm(vip(2, {}, 65_537)), layout);
    const whole = batch(leave) as string;
    expect(whole.length).toBeGreaterThan(100_000);
    expect(renderBatch(leave.ops, whole.length)).toBe(whole);
    expect(renderBatch(leave.ops, whole.length - 1)).toBeUndefined();
  });

  test('nft statements - one default-size VIP in pieces of one statement each, joined the script', () => {
    const p = planApply(null, norm(vip(8, {}, 65_537)), layout);
    const pieces = [...nftStatements(layout.table, p.ops)];
    const joined = pieces.join('');
    expect(joined).toBe(script(p));
    // One default VIP is 1.30 M characters of script (package README); no piece is near that, so a fleet's
    // script is never one string.
    expect(joined.length).toBeGreaterThan(1_000_000);
    expect(Math.max(...pieces.map((x) => x.length))).toBeLessThan(64 * 1024);
    expect(pieces.every((x) => x.endsWith('\n'))).toBe(true);
  });

  test('IPv6 VIP - flows keyed by a 32-bit hash of the 5-tuple (nft 1.0.6 dynset key limit)', () => {
    const backends = [{ name: 'a', address: '2001:db8::10', port: 53 }];
    const t: VipTable = {
      vip: { address: '2001:db8::1', port: 53, protocol: 'udp' },
      hash: 'source-ip',
      seed: 1,
      backends,
      slots: buildTable(backends, 13),
    };
    const p = planApply(null, norm(t), layout);
    expect(script(p)).toContain('jhash ip6 saddr mod 13 seed 1');
    expect(script(p)).toContain('add @flows6_udp { jhash ip6 saddr . udp sport . ip6 daddr . udp dport mod 4294967295');
    // ... and a remembered backend is used only with the exact 5-tuple beside it.
    expect(script(p)).toContain('ip6 saddr . udp sport . ip6 daddr . udp dport . meta mark @exact6_udp');
    expect(script(p)).toContain('set exact6_udp { type ipv6_addr . inet_service . ipv6_addr . inet_service . mark;');
    expect(script(p)).toContain('add element netdev l4t vips6 { 2001:db8::1 . udp . 53');
  });

  test('draining - the VIP rules refuse a SYN (tcp) or any unremembered packet (udp) after the known flows and before the table; the slots stay', () => {
    const chain = (p: Plan) =>
      lines(script(p))
        .filter((l) => l.startsWith('add rule netdev l4t v_'))
        .map((l) => l.replace(/^add rule netdev l4t \S+ /, ''));
    const tcp = planApply(null, norm(vip(3, { draining: true })), layout);
    const rules = chain(tcp);
    const refuse = rules.indexOf('tcp flags & (syn | ack) == syn counter name "drop_no_backend" drop');
    expect(refuse).toBeGreaterThan(rules.findIndex((r) => r.includes('goto forward'))); // after the known flow
    expect(refuse).toBeLessThan(rules.findIndex((r) => r.startsWith('meta mark set jhash'))); // before the table
    expect(rules[0]).toContain('comment "l4fleet vip hash=5-tuple seed=7 size=13 syn=table draining"');
    // Enabled again: only the VIP's rules are rewritten (the flow maps and the slots stay).
    const back = planApply(tcp.next, norm(vip(3)), layout);
    expect(back.vips).toEqual([{ vip: '198.18.2.1:80/tcp', action: 'updated', slotsChanged: 0, rulesReplaced: true }]);
    expect(chain(back)).not.toContain('tcp flags & (syn | ack) == syn counter name "drop_no_backend" drop');
    expect(script(back)).not.toContain('flush map');
    const udp = chain(
      planApply(
        null,
        norm(vip(3, { vip: { address: '198.18.2.1', port: 80, protocol: 'udp' }, draining: true })),
        layout,
      ),
    );
    const udpRefuse = udp.indexOf('counter name "drop_no_backend" drop');
    expect(udpRefuse).toBeGreaterThan(udp.findIndex((r) => r.includes('goto forward')));
    expect(udpRefuse).toBeLessThan(udp.findIndex((r) => r.startsWith('meta mark set jhash')));
  });

  test('addresses from hex are canonical text (RFC 5952), so counter labels match the VIP keys', () => {
    expect(hexToAddress('c6336458')).toBe('198.51.100.88');
    expect(hexToAddress('20010db8000000000000000000000001')).toBe('2001:db8::1');
    expect(hexToAddress('20010db8007700020000000000000010')).toBe('2001:db8:77:2::10');
  });
});

// A rule of the ingress, forward or an echo chain replaced by hand (`nft replace rule`): the number of rules kept, so
// only the listing read back (KernelState.readListing) tells; the plan writes that chain again, and no other.
describe("planApply - the table's own chains replaced by hand", () => {
  const ECHO = 'echo_c6120201';
  const written = new Map([
    ['ingress', baseChainRules().join('\n')],
    ['forward', forwardChainRules(layout).join('\n')],
    [ECHO, echoRule('c6120201', layout)],
  ]);
  /** As readKernelState reads the table the plan wrote, with `edits` (chain -> listing) made by hand. */
  const readBack = (edits: Record<string, string> = {}): KernelState => {
    const listing = new Map([...written, ...Object.entries(edits)]);
    return { ...applied(vip(3)), listed: listing, readListing: listing };
  };

  test('read back as written - nothing is written, and verify keeps the listing as its reference', () => {
    const p = planApply(readBack(), norm(vip(3)), layout);
    expect(script(p)).toBe('');
    expect(p.next.listed).toEqual(written);
    expect(p.next.readListing).toBeUndefined();
  });

  test.each([
    ['ingress', baseChainRules().map((r) => (r.endsWith('@vips4') ? 'accept' : r))],
    ['forward', forwardChainRules(layout).map((r) => (r.includes('@backends4') ? 'drop' : r))],
  ])('a rule of %s replaced - the chain is flushed and written again, alone', (chain, edited) => {
    const p = planApply(readBack({ [chain]: edited.join('\n') }), norm(vip(3)), layout);
    const rules = chain === 'ingress' ? baseChainRules() : forwardChainRules(layout);
    expect(lines(script(p)).filter((l) => !l.includes('add counter') && !l.startsWith('add chain'))).toEqual([
      `flush chain netdev l4t ${chain}`,
      ...rules.map((r) => `add rule netdev l4t ${chain} ${r}`),
    ]);
    expect(p.vips.map((v) => v.action)).toEqual(['unchanged']);
    // Listed again after the write (drift.ts withListing): the edited text is no reference.
    expect(p.next.listed?.has(chain)).toBe(false);
    expect(p.next.listed?.has(chain === 'ingress' ? 'forward' : 'ingress')).toBe(true);
  });

  test('the rule of an echo chain replaced - that chain is flushed and its rule written again', () => {
    const p = planApply(readBack({ [ECHO]: 'counter name "icmp_echo" drop' }), norm(vip(3)), layout);
    expect(lines(script(p))).toEqual([
      `flush chain netdev l4t ${ECHO}`,
      `add rule netdev l4t ${ECHO} ${echoRule('c6120201', layout)}`,
    ]);
    expect(p.next.listed?.has(ECHO)).toBe(false);
  });
});
