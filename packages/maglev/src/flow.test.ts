import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parseAddress } from './address.js';
import { MaglevError } from './errors.js';
import { type Flow, flowKey, type HashMode, slotOf } from './flow.js';
import { jhash, jhashInto } from './jhash.js';

interface KernelVector extends Flow {
  seed: number;
  size: number;
  mode: HashMode;
  slot: number;
}
const { vectors } = JSON.parse(
  readFileSync(new URL('../test-fixtures/kernel-vectors.json', import.meta.url), 'utf8'),
) as { vectors: KernelVector[] };

describe('flow hash - identical to the kernel nftables jhash', () => {
  test('the fixture covers IPv4 and IPv6, TCP and UDP, 5-tuple and source-ip', () => {
    expect(new Set(vectors.map((v) => `${v.src.includes(':') ? 6 : 4}/${v.protocol}/${v.mode}`)).size).toBe(8);
  });

  test.each(vectors)('$src:$sport -> $dst:$dport/$protocol $mode M=$size seed=$seed is slot $slot', (v) => {
    expect(slotOf(v, v.size, v.seed, v.mode)).toBe(v.slot);
  });

  test('the key is laid out as nft registers: ports in network order padded to 4 bytes', () => {
    const key = flowKey({ src: '198.18.0.1', sport: 0x1234, dst: '198.51.100.10', dport: 80, protocol: 'tcp' });
    expect(Array.from(key)).toEqual([198, 18, 0, 1, 0x12, 0x34, 0, 0, 198, 51, 100, 10, 0, 80, 0, 0]);
    expect(flowKey({ src: '2001:db8::1', sport: 1, dst: '2001:db8::2', dport: 2, protocol: 'udp' })).toHaveLength(40);
    expect(
      flowKey({ src: '2001:db8::1', sport: 1, dst: '2001:db8::2', dport: 2, protocol: 'udp' }, 'source-ip'),
    ).toHaveLength(16);
  });

  test('source-ip ignores ports and destination: a client sticks to one slot', () => {
    const a = slotOf(
      { src: '198.18.9.9', sport: 1000, dst: '198.51.100.1', dport: 80, protocol: 'tcp' },
      65_537,
      7,
      'source-ip',
    );
    const b = slotOf(
      { src: '198.18.9.9', sport: 2000, dst: '198.51.100.2', dport: 53, protocol: 'udp' },
      65_537,
      7,
      'source-ip',
    );
    expect(a).toBe(b);
  });

  test('jhash of an empty key is the initial value, as the kernel returns it', () => {
    expect(jhash(new Uint8Array(0), 0)).toBe(0xdeadbeef);
  });

  // lookup3.c's own check (driver5: hashlittle2 with *pb = 0 and *pc = initval is the kernel's jhash, and its second
  // value is b): the bpf flow cache's set and fingerprint (native/bpf/node-flows.h) are these two.
  test.each([
    [0, 0x17770551, 0xce7226e6],
    [1, 0xcd628161, 0x6cbea4b3],
  ])("jhashInto gives lookup3 hashlittle2's two values (initval %i)", (initval, c, b) => {
    const out = new Uint32Array(2);
    const key = new TextEncoder().encode('Four score and seven years ago');
    expect(jhashInto(key, initval, out)).toBe(c);
    expect([...out]).toEqual([c, b]);
    expect(jhash(key, initval)).toBe(c);
  });

  test.each([
    [
      { src: '198.18.0.1', sport: 1, dst: '2001:db8::1', dport: 1, protocol: 'tcp' },
      'FLOW_FAMILY_MISMATCH',
      'flow: src 198.18.0.1 is IPv4',
    ],
    [
      { src: '198.18.0.256', sport: 1, dst: '198.18.0.1', dport: 1, protocol: 'tcp' },
      'ADDRESS_INVALID',
      'flow.src: "198.18.0.256"',
    ],
    [
      { src: '198.18.0.1', sport: 70000, dst: '198.18.0.1', dport: 1, protocol: 'tcp' },
      'PORT_INVALID',
      'flow.sport: 70000 is not a port',
    ],
  ])('bad flow %j -> %s', (flow, code, message) => {
    expect(() => slotOf(flow as Flow, 13, 0)).toThrow(message);
    expect(() => slotOf(flow as Flow, 13, 0)).toThrow(expect.objectContaining({ code }));
  });

  test.each([
    [{ sport: 99_999 }, 'flow.sport: 99999 is not a port'],
    [{ dport: -1 }, 'flow.dport: -1 is not a port'],
    [{ sport: 1.5 }, 'flow.sport: 1.5 is not a port'],
  ])('source-ip hashing ignores the ports but still refuses a bad one: %j', (patch, message) => {
    const flow = { src: '198.18.0.1', sport: 1, dst: '198.18.0.2', dport: 2, protocol: 'tcp' as const, ...patch };
    expect(() => slotOf(flow, 13, 0, 'source-ip')).toThrow(message);
    expect(() => slotOf(flow, 13, 0, 'source-ip')).toThrow(expect.objectContaining({ code: 'PORT_INVALID' }));
  });

  test.each([
    ['not-an-address', 'ADDRESS_INVALID', 'flow.dst: "not-an-address"'],
    ['198.51.100.300', 'ADDRESS_INVALID', 'flow.dst: "198.51.100.300"'],
    ['2001:db8::10', 'FLOW_FAMILY_MISMATCH', 'flow: src 198.18.0.1 is IPv4 but dst 2001:db8::10 is IPv6'],
  ])('source-ip hashing ignores the destination but still refuses a bad one: %s', (dst, code, message) => {
    // No slot for a flow that cannot exist: explain would name a backend for it.
    const flow: Flow = { src: '198.18.0.1', sport: 1, dst, dport: 2, protocol: 'tcp' };
    expect(() => slotOf(flow, 13, 0, 'source-ip')).toThrow(message);
    expect(() => flowKey(flow, 'source-ip')).toThrow(expect.objectContaining({ code }));
  });

  test.each([[-1], [2 ** 32], [1.5]])('seed %s is refused', (seed) => {
    const flow: Flow = { src: '198.18.0.1', sport: 1, dst: '198.18.0.2', dport: 2, protocol: 'udp' };
    expect(() => slotOf(flow, 13, seed)).toThrow(MaglevError);
  });
});

describe('addresses - strict parsing', () => {
  test.each([
    ['198.51.100.7', 4, [198, 51, 100, 7]],
    ['::', 6, new Array(16).fill(0)],
    ['2001:db8::53', 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]],
    ['::ffff:198.18.0.1', 6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]],
    ['2001:DB8:0:0:0:0:0:1', 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
  ])('%s', (text, family, bytes) => {
    const parsed = parseAddress(text);
    expect(parsed.family).toBe(family);
    expect(Array.from(parsed.bytes)).toEqual(bytes);
  });

  test.each([
    '',
    '1.2.3',
    '01.2.3.4',
    '1.2.3.4.5',
    '2001:db8::1::2',
    '1:2:3:4:5:6:7:8:9',
    'fe80::1%eth0',
    'gggg::1',
    '::1.2.3',
  ])('%j is refused with the value named', (text) => {
    expect(() => parseAddress(text, 'vip')).toThrow(`vip: ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  });
});
