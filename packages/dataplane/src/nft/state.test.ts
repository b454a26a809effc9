import { describe, expect, test } from 'vitest';
import { parseSkeleton } from './state.js';

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
