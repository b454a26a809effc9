import { describe, expect, test } from 'vitest';
import {
  DEFAULT_HEALTH_FALL,
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_HEALTH_RISE,
  DEFAULT_HEALTH_TIMEOUT_MS,
  defaultHealthCheck,
} from './defaults.js';
import { ConfigError } from './errors.js';
import { parseFleet, parseFleetText } from './parse.js';
import { problems } from './problems.test-helper.js';

const SAMPLE = `
hashSeed: 0x5eed            # optional
pools:
  - name: web
    healthCheck: { type: http, port: 8080, path: /healthz, expectStatus: 200,
                   intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 }
    members:
      - { name: be1, address: 198.18.0.21, port: 80, weight: 2 }
      - { address: 198.18.0.22, port: 80 }
      - { address: 198.18.0.23, port: 80, state: draining }
  - name: dns
    healthCheck: { type: udp, payload: ping }
    members:
      - { address: "2001:DB8:0:0::1", port: 53 }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
  - { address: "2001:db8::53", port: 53, protocol: udp, pool: dns, tableSize: 4093, hash: source-ip }
`;

/** What `fn` threw; undefined when it returned (the caller's expect then fails: a test that cannot pass vacuously). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

const pool = (name: string, members: unknown[], extra: object = {}) => ({ name, members, ...extra });
const m = (address: string, port = 80, extra: object = {}) => ({ address, port, ...extra });

describe('config parse - the issue sample', () => {
  const fleet = parseFleetText(SAMPLE);

  test('reads 0x hex seed, defaults members and VIPs', () => {
    expect(fleet.hashSeed).toBe(0x5eed);
    const web = fleet.pools[0]!;
    expect(web.members.map((x) => [x.name, x.weight, x.state])).toEqual([
      ['be1', 2, 'active'],
      ['198.18.0.22:80', 1, 'active'],
      ['198.18.0.23:80', 1, 'draining'],
    ]);
    expect(fleet.vips[0]).toEqual({
      address: '198.51.100.10',
      port: 80,
      protocol: 'tcp',
      pool: 'web',
      tableSize: 65_537,
      hash: '5-tuple',
      profile: { idleTimeoutS: 300, tcpHandshakeTimeoutS: 10, tcpCloseTimeoutS: 10, onTimeout: 'drop' },
    });
  });

  test('forwarding defaults to l2 with the GUE port 6080; gue takes a port', () => {
    expect([fleet.pools[0]!.forwarding, fleet.pools[0]!.guePort]).toEqual(['l2', 6080]);
    const gue = parseFleet({ pools: [pool('p', [m('198.18.0.1')], { forwarding: 'gue', guePort: 7000 })] });
    expect([gue.pools[0]!.forwarding, gue.pools[0]!.guePort]).toEqual(['gue', 7000]);
  });

  test('health checks are fully defaulted per type, from the defaults and not from another pool', () => {
    // The explicit pool's values all differ from the defaults, so a default taken from it would show.
    const explicit = { type: 'http', port: 8080, intervalMs: 7_000, timeoutMs: 3_000, rise: 5, fall: 6 };
    const f = parseFleet({
      pools: [
        pool('a', [m('198.18.0.1')], { healthCheck: explicit }),
        pool('b', [m('198.18.0.2')], { healthCheck: { type: 'udp', payload: 'ping' } }),
        pool('c', [m('198.18.0.3')]),
      ],
    });
    expect(f.pools[0]!.healthCheck).toMatchObject(explicit);
    expect(f.pools[1]!.healthCheck).toEqual({
      type: 'udp',
      payload: 'ping',
      intervalMs: DEFAULT_HEALTH_INTERVAL_MS,
      timeoutMs: DEFAULT_HEALTH_TIMEOUT_MS,
      rise: DEFAULT_HEALTH_RISE,
      fall: DEFAULT_HEALTH_FALL,
    });
    expect(f.pools[2]!.healthCheck).toEqual(defaultHealthCheck());
  });

  test('IPv6 addresses are canonical (RFC 5952) and name defaults to [addr]:port', () => {
    expect(fleet.pools[1]!.members[0]!.address).toBe('2001:db8::1');
    expect(fleet.pools[1]!.members[0]!.name).toBe('[2001:db8::1]:53');
  });

  test('JSON is accepted too and gives the same fleet', () => {
    expect(parseFleetText(JSON.stringify(fleet))).toEqual(fleet);
    expect(parseFleetText(JSON.stringify(fleet), 'json')).toEqual(fleet);
  });

  test('a fleet without seed has no hashSeed field', () => {
    expect('hashSeed' in parseFleet({ pools: [], vips: [] })).toBe(false);
  });
});

describe('config parse - every problem at once, with path and value', () => {
  test('members[].backup - written back only when true; anything but a boolean is named', () => {
    const vips = [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }];
    const f = parseFleet({
      pools: [
        pool('web', [m('198.18.0.1'), m('198.18.0.2', 80, { backup: true }), m('198.18.0.3', 80, { backup: false })]),
      ],
      vips,
    });
    expect(f.pools[0]?.members.map((x) => x.backup)).toEqual([undefined, true, undefined]);
    expect(problems({ pools: [pool('web', [m('198.18.0.1', 80, { backup: 'yes' })])], vips })).toEqual([
      'pools[0].members[0].backup: "yes" is not true or false',
    ]);
  });

  test('onMemberDown - keep or reselect, written back only when given; a bad value or reselect with nat is named', () => {
    const vips = [{ address: '198.51.100.10', port: 80, protocol: 'udp', pool: 'web' }];
    const f = parseFleet({ pools: [pool('web', [m('198.18.0.1')], { onMemberDown: 'reselect' })], vips });
    expect(f.pools[0]?.onMemberDown).toBe('reselect');
    expect(parseFleet(f).pools[0]?.onMemberDown).toBe('reselect'); // a parsed fleet parses again
    expect(problems({ pools: [pool('web', [m('198.18.0.1')], { onMemberDown: 'drop' })], vips })).toEqual([
      'pools[0].onMemberDown: "drop" is not one of keep | reselect',
    ]);
    expect(
      problems({
        pools: [pool('web', [m('198.18.0.1', 8080)], { onMemberDown: 'reselect', forwarding: 'nat' })],
        vips,
      }),
    ).toEqual([
      'pools[0].onMemberDown: "reselect" is not supported with forwarding "nat" (its flows are conntrack entries); use "keep"',
    ]);
  });

  test('the issue examples', () => {
    expect(
      problems({
        pools: [pool('web', [m('198.18.0.1')])],
        vips: [
          { address: '198.51.100.10', port: 70000, protocol: 'tcp', pool: 'web' },
          { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'nosuchpool' },
        ],
      }),
    ).toEqual(['vips[0].port: 70000 is not a port (1-65535)', 'vips[1].pool: "nosuchpool" does not exist']);
  });

  test.each([
    [
      'duplicate VIP (canonical address)',
      {
        pools: [pool('p', [m('2001:db8::1')])],
        vips: [
          { address: '2001:db8::53', port: 53, protocol: 'udp', pool: 'p6' },
          { address: '2001:DB8:0::53', port: 53, protocol: 'udp', pool: 'p6' },
        ].map((v) => ({ ...v, pool: 'p' })),
      },
      'vips[1]: [2001:db8::53]:53/udp duplicates vips[0]',
    ],
    [
      'duplicate member',
      { pools: [pool('p', [m('198.18.0.1'), m('198.18.0.1')])] },
      'pools[0].members[1]: 198.18.0.1:80 duplicates members[0]',
    ],
    [
      'duplicate member name',
      { pools: [pool('p', [m('198.18.0.1', 80, { name: 'a' }), m('198.18.0.2', 80, { name: 'a' })])] },
      'pools[0].members[1].name: "a" duplicates members[0]',
    ],
    ['pool with no members', { pools: [pool('p', [])] }, 'pools[0].members: the pool has no members'],
    [
      'non-prime tableSize',
      {
        pools: [pool('p', [m('198.18.0.1')])],
        vips: [{ address: '198.51.100.9', port: 80, protocol: 'tcp', pool: 'p', tableSize: 65536 }],
      },
      'vips[0].tableSize: 65536 is not prime (Maglev §3.4 needs a prime; next prime is 65537)',
    ],
    ...[1e300, 2 ** 53, 4_000_000].map((size): [string, unknown, string] => [
      `tableSize ${size} (past MAX_TABLE_SIZE, not prime)`,
      {
        pools: [pool('p', [m('198.18.0.1')])],
        vips: [{ address: '198.51.100.9', port: 80, protocol: 'tcp', pool: 'p', tableSize: size }],
      },
      `vips[0].tableSize: ${String(size)} is not a table size (a prime from 2 to 2097143)`,
    ]),
    [
      'IPv6 member in an IPv4 VIP pool',
      {
        pools: [pool('p', [m('2001:db8::1')])],
        vips: [{ address: '198.51.100.9', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].pool: "p" has IPv6 members but the VIP 198.51.100.9 is IPv4',
    ],
    [
      'bad address',
      { pools: [pool('p', [m('198.18.0.256')])] },
      'pools[0].members[0].address: "198.18.0.256" is not an IPv4 or IPv6 address',
    ],
    [
      'unknown field',
      { pools: [pool('p', [m('198.18.0.1', 80, { wieght: 2 })])] },
      'pools[0].members[0].wieght: is not a known field (known: name, address, port, weight, state, backup)',
    ],
    [
      'bad state',
      { pools: [pool('p', [m('198.18.0.1', 80, { state: 'off' })])] },
      'pools[0].members[0].state: "off" is not one of active | draining | disabled',
    ],
    [
      'bad health type',
      { pools: [pool('p', [m('198.18.0.1')], { healthCheck: { type: 'icmp' } })] },
      'pools[0].healthCheck.type: "icmp" is not one of tcp | http | https | udp | dns | agent | grpc | none',
    ],
    [
      'timeout longer than interval',
      { pools: [pool('p', [m('198.18.0.1')], { healthCheck: { type: 'tcp', intervalMs: 500, timeoutMs: 1000 } })] },
      'pools[0].healthCheck.timeoutMs: 1000 is longer than intervalMs (500)',
    ],
    [
      'seed out of range',
      { hashSeed: 2 ** 32 },
      'hashSeed: 4294967296 is not an unsigned 32-bit hash seed (0-4294967295)',
    ],
    [
      'unknown forwarding',
      { pools: [pool('p', [m('198.18.0.1')], { forwarding: 'vxlan' })] },
      'pools[0].forwarding: "vxlan" is not one of l2 | ipip | gre | gue | nat',
    ],
    [
      'guePort out of range',
      { pools: [pool('p', [m('198.18.0.1')], { forwarding: 'gue', guePort: 0 })] },
      'pools[0].guePort: 0 is not a port (1-65535)',
    ],
    [
      'duplicate pool',
      { pools: [pool('p', [m('198.18.0.1')]), pool('p', [m('198.18.0.2')])] },
      'pools[1].name: "p" is defined more than once',
    ],
  ])('%s', (_name, raw, expected) => {
    expect(problems(raw)).toContain(expected);
  });

  test('many problems are all reported, each on its own line', () => {
    const list = problems({
      hashSeed: -1,
      pools: [pool('p', [m('x'), m('198.18.0.1', 0)]), pool('q', [])],
      vips: [{ address: '198.18.0.9', port: 80, protocol: 'sctp', pool: 'p' }],
    });
    expect(list.length).toBeGreaterThanOrEqual(5);
    expect(list).toContain('vips[0].protocol: "sctp" is not one of tcp | udp');
  });

  test('problems carry path and message separately', () => {
    try {
      parseFleet({ vips: [{ address: '198.18.0.1', port: 1, protocol: 'tcp', pool: 'x' }] });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([{ path: 'vips[0].pool', message: '"x" does not exist' }]);
      expect((err as ConfigError).code).toBe('INVALID');
    }
  });

  test.each([
    ['YAML', 'pools: ['],
    ['JSON', '{"pools": '],
  ])('%s syntax errors are a single SYNTAX problem', (format, text) => {
    const err = thrown(() => parseFleetText(text));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('SYNTAX');
    expect((err as ConfigError).problems).toHaveLength(1);
    expect((err as ConfigError).message).toMatch(new RegExp(`^not valid ${format}`));
  });
});

describe('config parse - JSON text as strict as YAML', () => {
  const member = (weight: string) =>
    `{"pools":[{"name":"web","healthCheck":{"type":"tcp"},"members":[{"name":"a","address":"198.18.0.1","port":80},` +
    `{"name":"b","address":"198.18.0.2","port":80,${weight}}]}],"vips":[]}`;

  test('a key given twice is refused naming its path (JSON.parse kept the last: a silent drain)', () => {
    const err = thrown(() => parseFleetText(member('"weight":5,"weight":0'))) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.code).toBe('SYNTAX');
    expect(err.problems).toEqual([
      {
        path: 'pools[0].members[1].weight',
        message: 'not valid JSON: the key "weight" is given more than once (JSON.parse would keep the last)',
      },
    ]);
  });

  test.each([
    ['top level', '{"vips":[],"vips":[]}', 'vips'],
    ['escaped spelling of the same key', member('"weight":5,"w\\u0065ight":0'), 'pools[0].members[1].weight'],
    ['a key that is no identifier', '{"pools":[{"a b":1,"a b":2}]}', 'pools[0]["a b"]'],
  ])('%s', (_what, text, path) => {
    const err = thrown(() => parseFleetText(text)) as ConfigError;
    expect(err.code).toBe('SYNTAX');
    expect(err.problems[0]?.path).toBe(path);
  });

  test('the same key in sibling objects, and key-like strings as values, are fine', () => {
    const text = member('"weight":2').replace('"name":"b"', '"name":"weight"');
    expect(parseFleetText(text).pools[0]?.members.map((m) => [m.name, m.weight])).toEqual([
      ['a', 1],
      ['weight', 2],
    ]);
    expect(parseFleetText('{"pools":[],"vips":[]}')).toEqual({ pools: [], vips: [] });
  });

  test.each([
    ['JSON', '\uFEFF{"pools":[],"vips":[]}'],
    ['YAML', '\uFEFFpools: []\nvips: []\n'],
  ])('%s with a UTF-8 byte order mark is read like without it', (_format, text) => {
    expect(parseFleetText(text)).toEqual({ pools: [], vips: [] });
    expect(parseFleetText(text, _format === 'JSON' ? 'json' : 'yaml')).toEqual({ pools: [], vips: [] });
  });
});
