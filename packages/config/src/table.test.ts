import { buildNamedTable, NO_BACKEND, slotOf } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { parseFleet } from './parse.js';
import { backendsForPool, buildVipTable } from './table.js';
import type { Fleet } from './types.js';
import { memberKey, parseVipKey, vipKey } from './vip-key.js';

const fleet = (members: object[], healthType = 'tcp', seed = 7): Fleet =>
  parseFleet({
    hashSeed: seed,
    pools: [{ name: 'web', healthCheck: { type: healthType }, members }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });

const owners = (f: Fleet, decided = new Map<string, 'up' | 'down'>()) => {
  const t = buildVipTable(f, f.vips[0]!, decided);
  const count = new Map<string, number>();
  for (const i of t.slots) {
    const name = i === NO_BACKEND ? '-' : t.backends[i]!.name;
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  return count;
};

const three = [
  { address: '198.18.0.1', port: 80 },
  { address: '198.18.0.2', port: 80 },
  { address: '198.18.0.3', port: 80 },
];

describe('config table - derivation rules', () => {
  test('disabled members leave the index space; draining ones stay with weight 0', () => {
    const f = fleet([three[0]!, { ...three[1]!, state: 'draining' }, { ...three[2]!, state: 'disabled' }]);
    const t = buildVipTable(f, f.vips[0]!, new Map());
    expect(t.backends.map((b) => b.name)).toEqual(['198.18.0.1:80', '198.18.0.2:80']);
    expect(owners(f)).toEqual(new Map([['198.18.0.1:80', 251]]));
  });

  test('decided down -> weight 0; no decision -> up', () => {
    const f = fleet(three);
    const down = new Map([[memberKey('web', '198.18.0.2:80'), 'down' as const]]);
    expect(owners(f, down).has('198.18.0.2:80')).toBe(false);
    expect(owners(f).get('198.18.0.2:80')).toBeGreaterThan(80);
  });

  test('health check none ignores decided down', () => {
    const f = fleet(three, 'none');
    const down = new Map([[memberKey('web', '198.18.0.2:80'), 'down' as const]]);
    expect(owners(f, down).get('198.18.0.2:80')).toBeGreaterThan(80);
  });

  test('all down -> every slot NO_BACKEND', () => {
    const f = fleet(three);
    const down = new Map(three.map((m) => [memberKey('web', `${m.address}:80`), 'down' as const]));
    expect(owners(f, down)).toEqual(new Map([['-', 251]]));
  });

  test('member order in the file does not change slots or checksum', () => {
    const a = fleet(three);
    const b = fleet([...three].reverse());
    const ta = buildVipTable(a, a.vips[0]!, new Map());
    const tb = buildVipTable(b, b.vips[0]!, new Map());
    expect(tb.checksum).toBe(ta.checksum);
    expect(Array.from(tb.slots)).toEqual(Array.from(ta.slots));
  });

  test('checksum changes with seed, weights and status', () => {
    const base = buildVipTable(fleet(three), fleet(three).vips[0]!, new Map()).checksum;
    const f2 = fleet(three, 'tcp', 8);
    expect(buildVipTable(f2, f2.vips[0]!, new Map()).checksum).not.toBe(base);
    const f3 = fleet([{ ...three[0]!, weight: 3 }, three[1]!, three[2]!]);
    expect(buildVipTable(f3, f3.vips[0]!, new Map()).checksum).not.toBe(base);
  });

  test('backup members - no slots while another member has weight; every slot when none has (down, draining, disabled)', () => {
    const withBackup = (others: object[]): Fleet =>
      fleet([...others, { address: '198.18.0.9', port: 80, name: 'sorry', backup: true }]);
    const f = withBackup(three);
    expect(f.pools[0]!.members.map((m) => m.backup)).toEqual([undefined, undefined, undefined, true]);
    expect(owners(f).get('sorry')).toBeUndefined();
    const allDown = new Map(three.map((m) => [memberKey('web', { name: `${m.address}:${m.port}` }), 'down' as const]));
    expect(owners(f, allDown)).toEqual(new Map([['sorry', 251]]));
    // one primary still up: it takes everything, the backup nothing
    const oneUp = new Map([...allDown].slice(1));
    expect(owners(f, oneUp)).toEqual(new Map([['198.18.0.1:80', 251]]));
    const drained = withBackup(three.map((m) => ({ ...m, state: 'draining' })));
    expect(owners(drained)).toEqual(new Map([['sorry', 251]]));
    // the backup in the index space either way: the primaries' slots do not move when it starts or stops serving
    const t = buildVipTable(f, f.vips[0]!, new Map());
    expect(t.backends.map((b) => b.name)).toContain('sorry');
    expect(Array.from(t.slots)).toEqual(
      Array.from(buildVipTable(fleet(three), fleet(three).vips[0]!, new Map()).slots).map((i) => i),
    );
    // a down backup does not serve when everything is down
    const sorryDown = new Map([...allDown, [memberKey('web', { name: 'sorry' }), 'down' as const]]);
    expect(owners(f, sorryDown)).toEqual(new Map([['-', 251]]));
  });

  test('onMemberDown - down lists decided-down active members; only reselect puts it in the checksum', () => {
    const f = (onMemberDown?: string, members: object[] = three): Fleet =>
      parseFleet({
        hashSeed: 7,
        pools: [{ name: 'web', healthCheck: { type: 'tcp' }, members, ...(onMemberDown ? { onMemberDown } : {}) }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'udp', pool: 'web', tableSize: 251 }],
      });
    const downB = new Map([[memberKey('web', { name: '198.18.0.2:80' }), 'down' as const]]);
    const keep = f();
    expect(keep.pools[0]!.onMemberDown).toBeUndefined(); // the default is not written back
    const k = buildVipTable(keep, keep.vips[0]!, downB);
    expect([k.onMemberDown, k.down]).toEqual(['keep', [1]]);
    const draining = f(undefined, [three[0]!, { ...three[1]!, state: 'draining' }, three[2]!]);
    expect(buildVipTable(draining, draining.vips[0]!, new Map()).down).toEqual([]);
    // keep: the same slots give the same checksum as a draining member (no data plane differs)
    expect(buildVipTable(draining, draining.vips[0]!, new Map()).checksum).toBe(k.checksum);
    const reselect = f('reselect');
    const r = buildVipTable(reselect, reselect.vips[0]!, downB);
    expect([r.onMemberDown, r.down]).toEqual(['reselect', [1]]);
    expect(Array.from(r.slots)).toEqual(Array.from(k.slots));
    expect(r.checksum).not.toBe(k.checksum); // nodes that keep and nodes that reselect forward differently
    // reselect with nobody down forwards as keep would, yet the setting alone is a difference
    expect(buildVipTable(reselect, reselect.vips[0]!, new Map()).checksum).not.toBe(
      buildVipTable(keep, keep.vips[0]!, new Map()).checksum,
    );
  });

  test('same as maglev buildNamedTable on backendsForPool, so slotOf + table picks the backend', () => {
    const f = fleet(three);
    const t = buildVipTable(f, f.vips[0]!, new Map());
    const named = buildNamedTable(backendsForPool(f.pools[0]!, new Map()), 251);
    expect(Array.from(t.slots)).toEqual(Array.from(named.slots));
    const slot = slotOf(
      { src: '198.18.113.9', sport: 40000, dst: '198.51.100.10', dport: 80, protocol: 'tcp' },
      251,
      7,
    );
    expect(t.backends[t.slots[slot]!]!.name).toBe(named.backends[named.slots[slot]!]);
  });

  test('a fleet without seed cannot build tables', () => {
    const f = parseFleet({
      pools: [{ name: 'web', members: three }],
      vips: [{ address: '198.51.100.1', port: 80, protocol: 'tcp', pool: 'web' }],
    });
    expect(() => buildVipTable(f, f.vips[0]!, new Map())).toThrow(/hashSeed/);
  });
});

describe('config vip keys', () => {
  test.each([
    [{ address: '198.51.100.10', port: 80, protocol: 'tcp' as const }, '198.51.100.10:80/tcp'],
    [{ address: '2001:db8::53', port: 53, protocol: 'udp' as const }, '[2001:db8::53]:53/udp'],
  ])('%j <-> %s', (vip, key) => {
    expect(vipKey(vip)).toBe(key);
    expect(parseVipKey(key)).toEqual(vip);
  });

  test.each(['1.2.3.4:80', '1.2.3.4:80/sctp', '[2001:db8::1]:99999/tcp', 'x:80/tcp'])('rejects %s', (text) => {
    expect(() => parseVipKey(text)).toThrow(/vip: /);
  });
});

describe('config diff', () => {
  test('reports member changes and the pools whose tables change', () => {
    const a = fleet(three);
    const b = fleet([{ ...three[0]!, weight: 2 }, three[1]!, { address: '198.18.0.4', port: 80 }]);
    const d = diffFleets(a, b);
    expect(d.poolsChanged).toEqual(['web']);
    expect(d.changes.map((c) => `${c.kind} ${c.subject} ${c.detail}`.trim())).toEqual([
      'changed member web/198.18.0.1:80 weight 1 -> 2',
      'removed member web/198.18.0.3:80',
      'added member web/198.18.0.4:80 198.18.0.4:80 weight 1 active',
    ]);
  });

  test('a changed onMemberDown is a pool change', () => {
    const f = (onMemberDown?: string) =>
      parseFleet({
        hashSeed: 7,
        pools: [{ name: 'web', members: three, ...(onMemberDown ? { onMemberDown } : {}) }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'udp', pool: 'web' }],
      });
    expect(diffFleets(f(), f('reselect')).changes).toContainEqual({
      kind: 'changed',
      subject: 'pool web',
      detail: 'onMemberDown keep -> reselect',
    });
    expect(diffFleets(f(), f('keep')).changes).toEqual([]);
  });

  test('identical fleets have no changes', () => {
    expect(diffFleets(fleet(three), fleet(three)).changes).toEqual([]);
  });
});
