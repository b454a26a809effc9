import { describe, expect, test } from 'vitest';
import { findLeftovers } from './leftovers.js';
import { parseSkeleton, tableBlock } from './state.js';

describe('parseSkeleton', () => {
  test('reads the layout comment and each VIP chain signature', () => {
    const text = [
      'table netdev l4fleet {',
      '\tcomment "l4fleet layout=1 dev=eth0"',
      '\tchain ingress {',
      '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;',
      '\t}',
      '\tchain v_c0000201_tcp_80 {',
      '\t\tcounter name "v_c0000201_tcp_80" comment "l4fleet vip hash=5-tuple seed=7 size=13"',
      '\t}',
      '\tchain v_20010db8000000000000000000000001_udp_53 {',
      '\t}',
      '}',
    ].join('\n');
    const s = parseSkeleton(text);
    expect(s.layoutSignature).toBe('l4fleet layout=1 dev=eth0');
    expect([...s.chains]).toEqual([
      ['v_c0000201_tcp_80', 'l4fleet vip hash=5-tuple seed=7 size=13'],
      ['v_20010db8000000000000000000000001_udp_53', ''],
    ]);
  });
});

describe('tableBlock', () => {
  const table = (name: string, body: string[]): string[] => [`table netdev ${name} {`, ...body, '}'];
  const ours = table('l4fleet', ['\tmap vips4 {', '\t\ttype ipv4_addr . inet_proto . inet_service : verdict', '\t}']);
  const listing = [...table('l4fleet2', ['\tmap other {', '\t}']), ...ours, ...table('x', ['\tset s {', '\t}'])];

  test("cuts the driver's table out of a ruleset listing of several netdev tables", () => {
    expect(tableBlock(listing.join('\n'), 'l4fleet')).toBe(ours.join('\n'));
    expect(parseSkeleton(tableBlock(listing.join('\n'), 'l4fleet') as string).objects).toEqual(new Set(['vips4']));
  });

  test('a listing without the table (none, or others only) has no block', () => {
    expect(tableBlock('', 'l4fleet')).toBeUndefined();
    expect(tableBlock(table('l4fleet2', []).join('\n'), 'l4fleet')).toBeUndefined();
  });
});

describe('findLeftovers', () => {
  test("a VIP's maps, set and counter without its chain are leftovers, by VIP key; a VIP with its chain has none", () => {
    const block = (kind: string, name: string): string[] => [`\t${kind} ${name} {`, '\t}'];
    const whole = 'v_c6120201_tcp_80';
    const left = 'v_c6120202_tcp_80';
    const text = [
      'table netdev l4fleet {',
      ...block('counter', whole),
      ...block('counter', left),
      ...block('counter', 'drop_port'),
      ...block('map', 'flows4_tcp'),
      ...[whole, left].flatMap((k) => [...block('map', `${k}_slots`), ...block('map', `${k}_over`)]),
      ...[whole, left].flatMap((k) => block('set', `${k}_live`)),
      ...block('chain', whole),
      '}',
    ].join('\n');
    const s = parseSkeleton(text);
    expect(findLeftovers(s.objects, s.counters, s.chains)).toEqual(
      new Map([
        [
          left,
          [
            { kind: 'map', name: `${left}_slots` },
            { kind: 'map', name: `${left}_over` },
            { kind: 'set', name: `${left}_live` },
            { kind: 'counter', name: left },
          ],
        ],
      ]),
    );
  });
});
