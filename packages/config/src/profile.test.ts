import { describe, expect, test } from 'vitest';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';
import { defaultProfile } from './profile.js';
import { directReturnProblems } from './semantics.js';

const m = (address: string, port: number) => ({ address, port });
const fleet = (vip: object, pool: object = {}) => ({
  pools: [{ name: 'web', members: [m('198.18.0.21', 8443), m('198.18.0.22', 8443)], forwarding: 'nat', ...pool }],
  vips: [{ address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'web', ...vip }],
});

describe('config profile - defaults', () => {
  test('a tcp VIP without a profile gets 300 s idle, 10 s handshake, 10 s close, drop', () => {
    expect(parseFleet(fleet({})).vips[0]?.profile).toEqual({
      idleTimeoutS: 300,
      tcpHandshakeTimeoutS: 10,
      tcpCloseTimeoutS: 10,
      onTimeout: 'drop',
    });
  });

  test('a udp VIP gets 30 s idle and no tcp fields', () => {
    expect(parseFleet(fleet({ protocol: 'udp' })).vips[0]?.profile).toEqual({ idleTimeoutS: 30, onTimeout: 'drop' });
    expect(defaultProfile('udp')).toEqual({ idleTimeoutS: 30, onTimeout: 'drop' });
  });

  test('given fields are kept, the others defaulted, and a parsed fleet parses again unchanged', () => {
    const f = parseFleet(fleet({ profile: { idleTimeoutS: 60, onTimeout: 'reset' } }));
    expect(f.vips[0]?.profile).toEqual({
      idleTimeoutS: 60,
      tcpHandshakeTimeoutS: 10,
      tcpCloseTimeoutS: 10,
      onTimeout: 'reset',
    });
    expect(parseFleet(JSON.parse(JSON.stringify(f)))).toEqual(f);
    const udp = parseFleet(fleet({ protocol: 'udp', profile: { idleTimeoutS: 5 } }));
    expect(parseFleet(JSON.parse(JSON.stringify(udp)))).toEqual(udp);
  });
});

describe('config profile - invalid profiles are refused with field and value', () => {
  test.each([
    ['not an object', { profile: 5 }, 'vips[0].profile: 5 is not an object'],
    ['unknown field', { profile: { idleTimeout: 5 } }, 'vips[0].profile.idleTimeout: is not a known field'],
    [
      'idle zero',
      { profile: { idleTimeoutS: 0 } },
      'vips[0].profile.idleTimeoutS: 0 is not a timeout in seconds (1-604800)',
    ],
    [
      'idle over 7 days',
      { profile: { idleTimeoutS: 604_801 } },
      'vips[0].profile.idleTimeoutS: 604801 is not a timeout in seconds (1-604800)',
    ],
    [
      'idle as a string',
      { profile: { idleTimeoutS: '30s' } },
      'vips[0].profile.idleTimeoutS: "30s" is not a timeout in seconds (1-604800)',
    ],
    [
      'fractional handshake',
      { profile: { tcpHandshakeTimeoutS: 2.5 } },
      'vips[0].profile.tcpHandshakeTimeoutS: 2.5 is not a timeout in seconds (1-600)',
    ],
    [
      'close over an hour',
      { profile: { tcpCloseTimeoutS: 3601 } },
      'vips[0].profile.tcpCloseTimeoutS: 3601 is not a timeout in seconds (1-3600)',
    ],
    [
      'unknown onTimeout',
      { profile: { onTimeout: 'rst' } },
      'vips[0].profile.onTimeout: "rst" is not one of drop | reset',
    ],
    [
      'reset on udp',
      { protocol: 'udp', profile: { onTimeout: 'reset' } },
      'vips[0].profile.onTimeout: "reset" applies only to tcp VIPs',
    ],
    [
      'handshake on udp',
      { protocol: 'udp', profile: { tcpHandshakeTimeoutS: 5 } },
      'vips[0].profile.tcpHandshakeTimeoutS: 5: applies only to tcp VIPs',
    ],
    [
      'close on udp',
      { protocol: 'udp', profile: { tcpCloseTimeoutS: 5 } },
      'vips[0].profile.tcpCloseTimeoutS: 5: applies only to tcp VIPs',
    ],
  ])('%s', (_name, vip, expected) => {
    const lines = problems(fleet(vip));
    expect(
      lines.some((l) => l.startsWith(expected)),
      lines.join('\n'),
    ).toBe(true);
  });
});

describe('config forwarding nat', () => {
  test('is accepted, and members may listen on another port than the VIP (no direct-return port rule)', () => {
    const f = parseFleet({ hashSeed: 1, ...fleet({}) });
    expect(f.pools[0]?.forwarding).toBe('nat');
    expect(directReturnProblems(f)).toEqual([]);
  });

  test('the same members under l2 break the direct-return port rule', () => {
    const f = parseFleet(fleet({}, { forwarding: 'l2' }));
    expect(directReturnProblems(f).map((p) => p.path)).toEqual(['pools[0].members[0].port']);
  });

  test.each([
    ['127.0.0.1', '198.51.100.10'],
    ['::1', '2001:db8:1::10'],
  ])(
    "a loopback member (%s) is still refused under nat, for nat's reason: the kernel drops DNAT to loopback",
    (address, vip) => {
      const f = parseFleet(fleet({ address: vip }, { members: [m(address, 8443)] }));
      expect(directReturnProblems(f)).toEqual([
        {
          path: 'pools[0].members[0].address',
          message: `"${address}" is a loopback address: forwarding nat rewrites the destination in prerouting, and the kernel drops a packet from another interface rewritten to loopback (a martian destination)`,
        },
      ]);
    },
  );

  test('an address served by nat and by direct return is refused, naming both VIPs', () => {
    const raw = {
      pools: [
        { name: 'web', members: [m('198.18.0.21', 8443)], forwarding: 'nat' },
        { name: 'dsr', members: [m('198.18.0.22', 80)] },
      ],
      vips: [
        { address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'web' },
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'dsr' },
      ],
    };
    expect(problems(raw)).toEqual([
      'vips[1].pool: "dsr" forwards by direct server return but vips[0] on the same address 198.51.100.10 uses nat: an address is served by one of the two (use another address)',
    ]);
  });
});
