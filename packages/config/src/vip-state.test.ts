import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';
import { buildVipTable } from './table.js';
import { servedVips, vipDraining, vipServed, withVipState } from './vip-state.js';

const pools = [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }];
const vip = (extra: object = {}) => ({ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', ...extra });
const other = { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'web' };

describe('vips[].state', () => {
  test('absent and `enabled` are served and not written back; `disabled` is kept', () => {
    for (const raw of [vip(), vip({ state: 'enabled' })]) {
      const f = parseFleet({ hashSeed: 1, pools, vips: [raw] });
      expect(f.vips[0]).not.toHaveProperty('state');
      expect(servedVips(f)).toBe(f.vips);
    }
    const f = parseFleet({ hashSeed: 1, pools, vips: [vip({ state: 'disabled' }), other] });
    expect(f.vips[0]?.state).toBe('disabled');
    expect(f.vips.map(vipServed)).toEqual([false, true]);
    expect(servedVips(f).map((v) => v.address)).toEqual(['198.51.100.11']);
  });

  test('anything else is refused naming the field and the value', () => {
    expect(problems({ pools, vips: [vip({ state: 'off' })] })).toEqual([
      'vips[0].state: "off" is not one of enabled | draining | disabled',
    ]);
    expect(problems({ pools, vips: [vip({ state: true })] })).toEqual([
      'vips[0].state: true is not one of enabled | draining | disabled',
    ]);
  });

  test('diff names the change and its effect; an added disabled VIP says it is not served', () => {
    const on = parseFleet({ hashSeed: 1, pools, vips: [vip()] });
    const off = parseFleet({ hashSeed: 1, pools, vips: [vip({ state: 'disabled' })] });
    expect(diffFleets(on, off).changes).toEqual([
      {
        kind: 'changed',
        subject: 'vip 198.51.100.10:80/tcp',
        detail: 'state enabled -> disabled (no node serves or announces it)',
      },
    ]);
    expect(diffFleets(off, on).changes[0]?.detail).toBe('state disabled -> enabled (every node serves it again)');
    expect(diffFleets(off, on).poolsChanged).toEqual([]);
    expect(diffFleets(undefined, off).changes.find((c) => c.subject.startsWith('vip'))?.detail).toBe(
      'pool web, disabled (not served)',
    );
  });

  test('explain flow: served false, no backend, and the backend it would get once enabled', () => {
    const off = parseFleet({ hashSeed: 1, pools, vips: [vip({ state: 'disabled', tableSize: 251 })] });
    const flow = { src: '198.18.5.5', sport: 4000, dst: '198.51.100.10', dport: 80, protocol: 'tcp' as const };
    const r = explainFlow(off, new Map(), flow);
    expect(r).toMatchObject({ served: false, admitted: true, backend: null, address: null });
    expect(r.why[0]).toBe(
      'the VIP is disabled (vips[].state): no node serves or announces it; enabled, the flow would go to a',
    );
    const on = explainFlow(parseFleet({ hashSeed: 1, pools, vips: [vip({ tableSize: 251 })] }), new Map(), flow);
    expect(on).toMatchObject({ served: true, backend: 'a', slot: r.slot, checksum: r.checksum });
  });

  test('draining: served and announced, kept in the file; its table is the enabled one, its checksum says it drains', () => {
    const two = [{ name: 'web', members: [...pools[0]!.members, { name: 'b', address: '198.18.0.22', port: 80 }] }];
    const on = parseFleet({ hashSeed: 1, pools: two, vips: [vip({ tableSize: 251 })] });
    const drained = parseFleet({ hashSeed: 1, pools: two, vips: [vip({ tableSize: 251, state: 'draining' })] });
    expect(drained.vips[0]?.state).toBe('draining');
    expect([vipServed(drained.vips[0]!), vipDraining(drained.vips[0]!), vipDraining(on.vips[0]!)]).toEqual([
      true,
      true,
      false,
    ]);
    expect(servedVips(drained)).toBe(drained.vips);
    const t = buildVipTable(drained, drained.vips[0]!, new Map());
    const enabled = buildVipTable(on, on.vips[0]!, new Map());
    expect(t.backends.map((m) => m.name)).toEqual(['a', 'b']);
    // The same slots: a connection ECMP moves to another node finds its backend there (the data planes refuse SYNs).
    expect(t.slots).toEqual(enabled.slots);
    expect(t.slots.includes(-1)).toBe(false);
    expect(t.checksum).not.toBe(enabled.checksum);
    expect(diffFleets(on, drained).changes[0]?.detail).toBe(
      'state enabled -> draining (still announced, open flows continue, every node refuses new ones)',
    );
    expect(diffFleets(drained, on).changes[0]?.detail).toBe(
      'state draining -> enabled (every node takes new flows again)',
    );
    expect(withVipState(on.vips[0]!, 'draining')).toMatchObject({ state: 'draining' });
    expect(withVipState(drained.vips[0]!, 'enabled')).not.toHaveProperty('state');
    const flow = { src: '198.18.5.5', sport: 4000, dst: '198.51.100.10', dport: 80, protocol: 'tcp' as const };
    const r = explainFlow(drained, new Map(), flow);
    const would = explainFlow(on, new Map(), flow).backend;
    expect(would).toMatch(/^[ab]$/);
    expect(r).toMatchObject({ served: true, backend: would });
    expect(r.why[0]).toBe(
      `the VIP is draining (vips[].state): every node refuses new flows, a TCP SYN and a UDP packet it does not remember (drops_packets{reason="no-backend"}); an open TCP connection goes on to ${would}, also on a node ECMP moves it to`,
    );
    expect(r.why.join('\n')).not.toContain('no member takes new flows');
    const udp = parseFleet({
      hashSeed: 1,
      pools: two,
      vips: [vip({ tableSize: 251, protocol: 'udp', state: 'draining' })],
    });
    const u = explainFlow(udp, new Map(), { ...flow, protocol: 'udp' });
    expect(u.why[0]).toMatch(
      /; a UDP flow goes on to its backend on the node that remembers it \(on another node it ends\)$/,
    );
  });
});
