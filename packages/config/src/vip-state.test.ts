import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';
import { servedVips, vipServed } from './vip-state.js';

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
      'vips[0].state: "off" is not one of enabled | disabled',
    ]);
    expect(problems({ pools, vips: [vip({ state: true })] })).toEqual([
      'vips[0].state: true is not one of enabled | disabled',
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
});
