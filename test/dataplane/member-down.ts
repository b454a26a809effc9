/**
 * One scenario for every kernel data plane: what a pool's remembered UDP flows do when their backend is decided down
 * and comes back (`onMemberDown`, packages/config/src/on-member-down.ts). UDP, because a UDP client that keeps
 * sending from one port is what `keep` strands on a dead backend; TCP reselect is the same data-plane path.
 */
import { type DataPlane, keepsFlows, type OnMemberDown, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow } from '@l4fleet/maglev';
import { expect } from 'vitest';
import {
  CLIENT4,
  CLIENT6,
  clearRecorders,
  type DsrTopology,
  expectedBackend,
  flowKey,
  landings,
  sendFlows,
  VIP4,
  VIP6,
} from './topology.js';

/** The cases every kernel driver's file runs: both settings, IPv4 and IPv6 (test.each with ON_MEMBER_DOWN_TITLE). */
export const ON_MEMBER_DOWN_CASES = [
  ['keep', VIP4],
  ['reselect', VIP4],
  ['keep', VIP6],
  ['reselect', VIP6],
] as const;
export const ON_MEMBER_DOWN_TITLE =
  'onMemberDown %s - a UDP flow whose backend is decided down (%s): stays on it, or moves to the table and stays there when it returns';

/** One case: a 251-slot UDP VIP on port 80 from the driver file's `vipTable`, two flows from the client. */
export function onMemberDownCase(
  topo: DsrTopology,
  dp: DataPlane,
  vipTable: (o: { address: string; port: number; protocol: 'udp'; size: number }) => VipTable,
  mode: OnMemberDown,
  vip: string,
): Promise<void> {
  const t = vipTable({ address: vip, port: 80, protocol: 'udp', size: 251 });
  const src = vip === VIP4 ? CLIENT4 : CLIENT6;
  return expectOnMemberDown(topo, dp, t, twoFlows(t, src, mode === 'keep' ? 37_000 : 37_200), mode);
}

/** `t` with backend `down` decided down (no slots, `down: true`) or with every backend up (`down` undefined). */
export function withDown(t: VipTable, down: number | undefined, onMemberDown: OnMemberDown): VipTable {
  const backends: VipTable['backends'] = t.backends.map(({ down: _d, ...b }, i) =>
    i === down ? { ...b, down: true } : b,
  );
  const slots = buildTable(
    backends.map((b, i) => ({ name: b.name, weight: i === down ? 0 : 1 })),
    t.slots.length,
  );
  return { ...t, backends, slots, onMemberDown };
}

/**
 * Applies `t` (3 or more backends, a UDP VIP), remembers `x` and `y` (flows on different backends), marks x's backend
 * down, then up again, each time sending both flows. Expects x to stay on its backend throughout with `keep`; with
 * `reselect` to move to the table's backend when its own goes down and to stay there when it returns; y never moves.
 */
export async function expectOnMemberDown(
  topo: DsrTopology,
  dp: DataPlane,
  t: VipTable,
  flows: { x: Flow; y: Flow },
  mode: OnMemberDown,
): Promise<void> {
  const { x, y } = flows;
  const up = withDown(t, undefined, mode);
  const a = expectedBackend(up, x);
  const c = expectedBackend(up, y);
  expect(c).not.toBe(a); // the caller picks flows on different backends
  const down = withDown(t, a, mode);
  const b = expectedBackend(down, x);
  expect(b).not.toBe(a);
  expect(keepsFlows(down, down.backends[a] as VipTable['backends'][number])).toBe(mode === 'keep');

  const landed = async (): Promise<(number[] | undefined)[]> => {
    await clearRecorders(topo.backends);
    await sendFlows(topo, [x, y]);
    const got = await landings(topo);
    return [got.get(flowKey(x)), got.get(flowKey(y))];
  };
  await dp.apply([up]);
  expect(await landed()).toEqual([[a], [c]]);
  await dp.apply([down]);
  const moved = mode === 'reselect' ? b : a;
  // Twice: the first packet after the change places the flow, the second follows what it remembered.
  expect(await landed()).toEqual([[moved], [c]]);
  expect(await landed()).toEqual([[moved], [c]]);
  await dp.apply([up]);
  expect(await landed()).toEqual([[moved], [c]]);
}

/** Two UDP flows from `src` to `t`'s VIP, source ports from `sport` on, that `t` gives different backends. */
export function twoFlows(t: VipTable, src: string, sport: number): { x: Flow; y: Flow } {
  const flow = (p: number): Flow => ({ src, sport: p, dst: t.vip.address, dport: t.vip.port, protocol: 'udp' });
  const x = flow(sport);
  for (let p = sport + 1; p < sport + 100; p++) {
    const y = flow(p);
    if (expectedBackend(t, y) !== expectedBackend(t, x)) return { x, y };
  }
  throw new Error(`no second flow on another backend near source port ${sport}`);
}
