import { describe, expect, test } from 'vitest';
import { ineffectiveSettings } from './ineffective.js';
import { BPF_MAX_VIP_MEMBERS } from './limits.js';
import { parseFleet } from './parse.js';
import { buildVipTable } from './table.js';

const member = (name: string, last: number, extra: object = {}) => ({
  name,
  address: `198.18.0.${last}`,
  port: 80,
  ...extra,
});
const fleetOf = (pool: object, tableSize = 251) =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', ...pool }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize }],
  });

describe('ineffectiveSettings: valid settings apply notes', () => {
  test('a member whose weight share is under one slot is named, with the VIP and the table size', () => {
    const fleet = fleetOf({ members: [member('big', 21, { weight: 65_535 }), member('tiny', 22, { weight: 1 })] });
    // The note is about the table every node builds: the member really owns no slot there.
    const table = buildVipTable(fleet, fleet.vips[0] as (typeof fleet.vips)[number], new Map());
    const tiny = table.backends.findIndex((m) => m.name === 'tiny');
    expect(table.slots.includes(tiny)).toBe(false);
    expect(ineffectiveSettings(fleet)).toEqual([
      {
        path: 'pools[0].members[1].weight',
        message: expect.stringContaining(
          `1 gives member "tiny" no slot of vips[0] 198.51.100.10:80/tcp's 251-slot table`,
        ),
      },
    ]);
  });

  test('a small share that still owns a slot, and a drained member (weight 0), are not noted', () => {
    expect(
      ineffectiveSettings(fleetOf({ members: [member('big', 21, { weight: 200 }), member('small', 22)] })),
    ).toEqual([]);
    expect(ineffectiveSettings(fleetOf({ members: [member('a', 21), member('drained', 22, { weight: 0 })] }))).toEqual(
      [],
    );
  });

  test('a member noted once however many VIPs use its pool', () => {
    const fleet = parseFleet({
      pools: [{ name: 'web', members: [member('big', 21, { weight: 65_535 }), member('tiny', 22, { weight: 1 })] }],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
        { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
      ],
    });
    expect(ineffectiveSettings(fleet).map((n) => n.path)).toEqual(['pools[0].members[1].weight']);
  });

  test('past 5 members one table has no slot for, one note for the pool and table names 3 and counts the rest', () => {
    const tiny = (count: number) => Array.from({ length: count }, (_, t) => member(`tiny${t}`, 22 + t, { weight: 1 }));
    const five = ineffectiveSettings(fleetOf({ members: [member('big', 21, { weight: 65_535 }), ...tiny(5)] }));
    expect(five.map((n) => n.path)).toEqual([1, 2, 3, 4, 5].map((j) => `pools[0].members[${j}].weight`));
    const six = ineffectiveSettings(fleetOf({ members: [member('big', 21, { weight: 65_535 }), ...tiny(6)] }));
    expect(six).toEqual([
      {
        path: 'pools[0].members',
        message:
          `6 members get no slot of vips[0] 198.51.100.10:80/tcp's 251-slot table (each one's share of the pool's ` +
          `weight is under one slot): members[1] "tiny0" (weight 1), members[2] "tiny1" (weight 1), members[3] ` +
          `"tiny2" (weight 1) and 3 more; they take no new flows; raise their weights or the VIP's tableSize`,
      },
    ]);
  });

  test('minActiveMembers above the primaries (with backups) says the backups always serve', () => {
    const pool = (minActiveMembers: number) => ({
      members: [member('a', 21), member('b', 22), member('s', 29, { backup: true })],
      minActiveMembers,
    });
    expect(ineffectiveSettings(fleetOf(pool(3)))).toEqual([
      {
        path: 'pools[0].minActiveMembers',
        message:
          "3 is more than the pool's 2 primaries (members not marked backup): its backups take new flows always, with every primary up",
      },
    ]);
    expect(ineffectiveSettings(fleetOf(pool(2)))).toEqual([]);
  });

  describe('a forwarding some driver lacks: those nodes refuse the whole state', () => {
    const withForwarding = (forwarding: string, vips: object[]) =>
      parseFleet({
        hashSeed: 7,
        pools: [
          { name: 'plain', members: [member('a', 21)] },
          { name: 'web', forwarding, members: [member('b', 22)] },
          { name: 'web6', forwarding, members: [{ name: 'b6', address: '2001:db8::22', port: 80 }] },
        ],
        vips: [{ address: '198.51.100.9', port: 80, protocol: 'tcp', pool: 'plain' }, ...vips],
      });
    const v4 = { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' };
    const v6 = { address: '2001:db8:1::10', port: 80, protocol: 'tcp', pool: 'web6' };

    test('nat: bpf nodes refuse every VIP of the fleet; nftables and proxy nodes serve it', () => {
      expect(ineffectiveSettings(withForwarding('nat', [v4]))).toEqual([
        {
          path: 'pools[1].forwarding',
          message:
            'nat is not supported by the bpf data plane (it has no connection tracking): bpf nodes refuse the whole desired state, every VIP, and keep serving the last one they took, so later edits reach only the other nodes; serve this fleet with nftables or proxy nodes only',
        },
      ]);
    });

    test.each(['ipip', 'gre', 'gue'])(
      '%s: nftables nodes refuse every VIP of the fleet; bpf and proxy nodes serve it',
      (forwarding) => {
        expect(ineffectiveSettings(withForwarding(forwarding, [v4]))).toEqual([
          {
            path: 'pools[1].forwarding',
            message: `${forwarding} is not supported by the nftables data plane (it forwards at L2 or with nat only): nftables nodes refuse the whole desired state, every VIP, and keep serving the last one they took, so later edits reach only the other nodes; serve this fleet with bpf or proxy nodes only`,
          },
        ]);
      },
    );

    test('an IPv6 VIP on an encapsulating pool: bpf nodes refuse too without an IPv6 node address', () => {
      const notes = ineffectiveSettings(withForwarding('gue', [v4, v6]));
      expect(notes.map((n) => n.path)).toEqual(['pools[1].forwarding', 'pools[2].forwarding']);
      expect(notes[0]?.message).not.toContain('IPv6');
      expect(notes[1]?.message).toContain(
        '; bpf nodes refuse it too unless they have an IPv6 node address (node.address6 or dataplane.encapSourceAddress6) for vips[2] [2001:db8:1::10]:80/tcp',
      );
    });

    test('l2, and a pool no served VIP uses (none, or only a disabled one), are not noted', () => {
      expect(ineffectiveSettings(withForwarding('l2', [v4]))).toEqual([]);
      expect(ineffectiveSettings(withForwarding('nat', []))).toEqual([]);
      expect(ineffectiveSettings(withForwarding('gue', [{ ...v4, state: 'disabled' }]))).toEqual([]);
      // A draining VIP is still in the desired state.
      expect(ineffectiveSettings(withForwarding('gue', [{ ...v4, state: 'draining' }])).map((n) => n.path)).toEqual([
        'pools[1].forwarding',
      ]);
    });
  });

  describe('a profile field the data planes of a forwarding do not apply (design 0012, which field applies where)', () => {
    const withProfile = (forwarding: string, profile: object, extra: object = {}) =>
      parseFleet({
        hashSeed: 7,
        pools: [{ name: 'web', forwarding, members: [member('a', 21)] }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', profile, ...extra }],
      });
    const profileNotes = (fleet: ReturnType<typeof withProfile>) =>
      ineffectiveSettings(fleet).filter((n) => n.path.includes('.profile.'));
    const l2Why =
      'under forwarding l2 (direct server return) nftables nodes apply only the idle timeout (they see one direction of a flow: no handshake, no close, and an expired flow is hashed again, not dropped) and bpf nodes no profile field (their LRU flow table has no timeouts)';

    test('l2: handshake, close and onTimeout are applied by proxy nodes only; the idle timeout is not noted', () => {
      const fleet = withProfile('l2', {
        idleTimeoutS: 5,
        tcpHandshakeTimeoutS: 2,
        tcpCloseTimeoutS: 3,
        onTimeout: 'reset',
      });
      expect(profileNotes(fleet)).toEqual([
        {
          path: 'vips[0].profile.tcpHandshakeTimeoutS',
          message: `2 is applied to 198.51.100.10:80/tcp by proxy nodes only: ${l2Why}`,
        },
        {
          path: 'vips[0].profile.tcpCloseTimeoutS',
          message: `3 is applied to 198.51.100.10:80/tcp by proxy nodes only: ${l2Why}`,
        },
        {
          path: 'vips[0].profile.onTimeout',
          message: `"reset" is applied to 198.51.100.10:80/tcp by proxy nodes only: ${l2Why}`,
        },
      ]);
    });

    test.each(['ipip', 'gre', 'gue'])(
      '%s: every field that is not the default is applied by proxy nodes only',
      (fw) => {
        const notes = profileNotes(withProfile(fw, { idleTimeoutS: 5, tcpCloseTimeoutS: 3 }));
        const why = `bpf nodes, which serve ${fw} (nftables nodes refuse it), apply no profile field (their LRU flow table has no timeouts: entries leave when it is full)`;
        expect(notes).toEqual([
          {
            path: 'vips[0].profile.idleTimeoutS',
            message: `5 is applied to 198.51.100.10:80/tcp by proxy nodes only: ${why}`,
          },
          {
            path: 'vips[0].profile.tcpCloseTimeoutS',
            message: `3 is applied to 198.51.100.10:80/tcp by proxy nodes only: ${why}`,
          },
        ]);
      },
    );

    test('a UDP VIP on gue: its idle timeout is noted', () => {
      const fleet = withProfile('gue', { idleTimeoutS: 5 }, { protocol: 'udp' });
      expect(profileNotes(fleet).map((n) => n.path)).toEqual(['vips[0].profile.idleTimeoutS']);
    });

    test('defaults (written or not), nat, a disabled VIP and the idle timeout at l2 are not noted', () => {
      const defaults = { idleTimeoutS: 300, tcpHandshakeTimeoutS: 10, tcpCloseTimeoutS: 10, onTimeout: 'drop' };
      expect(profileNotes(withProfile('gue', defaults))).toEqual([]);
      expect(profileNotes(withProfile('gue', {}))).toEqual([]);
      expect(profileNotes(withProfile('l2', { idleTimeoutS: 5 }))).toEqual([]);
      const udpDefault = withProfile('gue', { idleTimeoutS: 30 }, { protocol: 'udp' });
      expect(profileNotes(udpDefault)).toEqual([]);
      expect(
        profileNotes(withProfile('nat', { idleTimeoutS: 5, tcpHandshakeTimeoutS: 2, onTimeout: 'reset' })),
      ).toEqual([]);
      expect(profileNotes(withProfile('gue', { idleTimeoutS: 5 }, { state: 'disabled' }))).toEqual([]);
      // A draining VIP is still served: its flows still time out (or not) by the profile.
      expect(profileNotes(withProfile('gue', { idleTimeoutS: 5 }, { state: 'draining' }))).toHaveLength(1);
    });
  });

  describe('VIP x member pairs beyond what bpf nodes hold', () => {
    /**
     * `vips` VIPs on one pool of `members` members, the first `disabled` of them disabled; `extra` VIP fields for the
     * VIPs from index `from` on; `pool`: more pool fields.
     */
    const wide = (vips: number, members: number, extra: object = {}, from = vips, pool: object = {}, disabled = 1) =>
      parseFleet({
        hashSeed: 7,
        pools: [
          {
            name: 'web',
            ...pool,
            members: Array.from({ length: members }, (_x, i) => ({
              name: `m${i}`,
              address: `198.18.${i >> 8}.${i & 255}`,
              port: 80,
              ...(i < disabled ? { state: 'disabled' } : {}),
            })),
          },
        ],
        vips: Array.from({ length: vips }, (_x, v) => ({
          address: `198.51.100.${v}`,
          port: 80,
          protocol: 'tcp',
          pool: 'web',
          ...(v >= from ? extra : {}),
        })),
      });

    test('66 VIPs on one pool of 1,001 members (one disabled): 66,000 pairs, noted (written anyway)', () => {
      expect(BPF_MAX_VIP_MEMBERS).toBe(65_536);
      expect(ineffectiveSettings(wide(66, 1_001))).toEqual([
        {
          path: 'vips',
          message:
            'bpf nodes hold at most 65,536 VIP x member pairs; this fleet has 66,000 (each served VIP times the members of its pool not disabled): bpf nodes will refuse it; nftables and proxy nodes serve it',
        },
      ]);
    });

    test('65 VIPs (65,000 pairs), and 66 with one disabled, are within: no note', () => {
      expect(ineffectiveSettings(wide(65, 1_001))).toEqual([]);
      expect(ineffectiveSettings(wide(66, 1_001, { state: 'disabled' }, 65))).toEqual([]);
      // A draining VIP keeps its table, so it counts.
      expect(ineffectiveSettings(wide(66, 1_001, { state: 'draining' }, 65)).map((n) => n.path)).toEqual(['vips']);
    });

    // bpf nodes give an id to every backend of a VIP's table, and with second chance (ipip, gre, gue) that includes
    // the previous owners carried for up to secondChance.retainS: disabled members, and removed ones.
    const pairsNote = (fleet: ReturnType<typeof wide>) => ineffectiveSettings(fleet).filter((n) => n.path === 'vips');

    test('second chance: disabled members carried as previous owners count; past the bound, bpf nodes can refuse', () => {
      // 65 x 1,000 = 65,000 in the tables, 65 x 1,010 = 65,650 with the 10 disabled members carried.
      expect(pairsNote(wide(65, 1_010, {}, 65, { forwarding: 'gue' }, 10))).toEqual([
        {
          path: 'vips',
          message:
            "bpf nodes hold at most 65,536 VIP x member pairs; this fleet has 65,000 (each served VIP times the members of its pool not disabled), 65,650 with the disabled members of its pools with second chance (ipip, gre, gue), which stay in the VIPs' backends as previous owners for up to secondChance.retainS after they left the table, as removed members do: bpf nodes can refuse it while they are carried; proxy nodes serve it",
        },
      ]);
      // The same fleet at l2 carries no previous owner: 65,000 is all.
      expect(pairsNote(wide(65, 1_010, {}, 65, {}, 10))).toEqual([]);
    });

    test('second chance: within 10 % of the bound is noted, as removing or disabling members can cross it', () => {
      // 65,000 (65,065 with the disabled one) is past 90 % of 65,536 (58,982).
      expect(pairsNote(wide(65, 1_001, {}, 65, { forwarding: 'gue' }))).toEqual([
        {
          path: 'vips',
          message:
            "bpf nodes hold at most 65,536 VIP x member pairs; this fleet has 65,000 (each served VIP times the members of its pool not disabled), 65,065 with the disabled members of its pools with second chance (ipip, gre, gue), which stay in the VIPs' backends as previous owners for up to secondChance.retainS after they left the table, as removed members do: within 10 % of the bound, so disabling or removing members can make bpf nodes refuse it; proxy nodes serve it",
        },
      ]);
      // Second chance off carries none; 58 x 1,001 (58,058, under 90 %) leaves room.
      expect(pairsNote(wide(65, 1_001, {}, 65, { forwarding: 'gue', secondChance: { enabled: false } }))).toEqual([]);
      expect(pairsNote(wide(58, 1_001, {}, 58, { forwarding: 'gue' }))).toEqual([]);
    });
  });
});
