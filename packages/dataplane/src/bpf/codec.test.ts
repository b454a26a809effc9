import { describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import {
  decodeAddrKey,
  decodeBackend,
  decodeDump,
  decodeVip,
  decodeVipKey,
  encodeAddrKey,
  encodeBackend,
  encodeVip,
  encodeVipKey,
  u32View,
} from './codec.js';

describe('bpf codec - u32View', () => {
  const words = Uint32Array.from([1, 0xffff_ffff, 7, 65_537]);
  const reply = Buffer.concat([Buffer.alloc(8), Buffer.from(words.buffer)]);

  test('an aligned run of u32 is a view of the reply (no copy)', () => {
    const v = u32View(reply, 8, 4);
    expect([...v]).toEqual([...words]);
    expect(v.buffer).toBe(reply.buffer);
  });

  test('an unaligned run is copied, with the same values', () => {
    const odd = Buffer.concat([Buffer.alloc(1), reply]).subarray(1);
    const v = u32View(odd, 8, 4);
    expect([...v]).toEqual([...words]);
    expect(v.buffer).not.toBe(odd.buffer);
  });

  test('a table running past the end of the reply is refused, not truncated', () => {
    expect(() => u32View(reply, 8, 5)).toThrow(/5 u32 at 8 past the end \(24 bytes\)/);
  });
});

describe('bpf codec - values read back are checked', () => {
  const key = encodeVipKey({ family: 4, addressHex: 'c6336407', port: 80, protocol: 'tcp' });
  const vip = encodeVip({
    id: 1,
    table: 2,
    size: 251,
    seed: 7,
    hash: '5-tuple',
    forwarding: 'gue',
    guePort: 6080,
    sourceRanges: false,
    draining: false,
  });
  const backend = encodeBackend({ family: 6, addressHex: '20010db8000000000000000000000002', live: true, vipId: 1 });
  const addr = encodeAddrKey(4, 'c6336407');
  const corrupt = (b: Buffer, at: number, value: number): Buffer => {
    const c = Buffer.from(b);
    c[at] = value;
    return c;
  };
  const corrupt32 = (b: Buffer, at: number, value: number): Buffer => {
    const c = Buffer.from(b);
    c.writeUInt32LE(value, at);
    return c;
  };
  /** A dump (maps.c dump()) of these VIP entries and nothing else. */
  const dumpOf = (entries: [Buffer, Buffer][]): Buffer => {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(entries.length);
    // addresses 0, backends 0, no config (its 24 bytes all the same), tables 0
    return Buffer.concat([n, ...entries.flat(), Buffer.alloc(4 + 4 + 4 + 24 + 4)]);
  };
  const key8 = encodeVipKey({ family: 4, addressHex: 'c6336408', port: 80, protocol: 'tcp' });

  test.each([
    ['a VIP key family 9', () => decodeVipKey(corrupt(key, 19, 9), 0), /l4f_vips key .*: family: 9 is not 4 or 6/],
    [
      'a VIP key protocol 0',
      () => decodeVipKey(corrupt(key, 18, 0), 0),
      /l4f_vips key .*: protocol: 0 is not 6 \(tcp\) or 17 \(udp\)/,
    ],
    [
      'a VIP forwarding 7',
      () => decodeVip(corrupt(vip, 17, 7), 0, '198.51.100.7:80/tcp'),
      /l4f_vips 198\.51\.100\.7:80\/tcp: forwarding: 7 is not/,
    ],
    [
      'a VIP hash mode 2',
      () => decodeVip(corrupt(vip, 16, 2), 0, '198.51.100.7:80/tcp'),
      /l4f_vips 198\.51\.100\.7:80\/tcp: hash: 2 is not/,
    ],
    [
      'a backend family 9',
      () => decodeBackend(corrupt(backend, 22, 9), 0, 5),
      /l4f_backends id 5: family: 9 is not 4 or 6/,
    ],
    [
      'a VIP id 5000 (its tables would lie past the 8,192 of l4f_tables)',
      () => decodeVip(corrupt32(vip, 0, 5000), 0, '198.51.100.7:80/tcp'),
      /l4f_vips 198\.51\.100\.7:80\/tcp: id: 5000 is not below 4096/,
    ],
    [
      "a VIP table 9 for id 1 (another VIP's table)",
      () => decodeVip(corrupt32(vip, 4, 9), 0, '198.51.100.7:80/tcp'),
      /l4f_vips 198\.51\.100\.7:80\/tcp: table: 9 is not 2 or 3 \(2 x id 1, either generation\)/,
    ],
    [
      'a VIP table size 0',
      () => decodeVip(corrupt32(vip, 8, 0), 0, '198.51.100.7:80/tcp'),
      /l4f_vips 198\.51\.100\.7:80\/tcp: size: 0 is not a table size from 2 to 2097143/,
    ],
    [
      'a VIP table size above the largest Maglev table',
      () => decodeVip(corrupt32(vip, 8, 2_097_144), 0, '198.51.100.7:80/tcp'),
      /size: 2097144 is not a table size from 2 to 2097143/,
    ],
    [
      'two VIPs with the same id (so the same tables)',
      () =>
        decodeDump(
          dumpOf([
            [key, vip],
            [key8, corrupt32(vip, 4, 3)],
          ]),
        ),
      /l4f_vips 198\.51\.100\.8:80\/tcp: id: 1 is not unique \(198\.51\.100\.7:80\/tcp has it\)/,
    ],
    [
      'an IPv4 VIP key with byte 7 set (node.bpf.c looks IPv4 VIPs up with bytes 4-15 zero: it never matches)',
      () => decodeVipKey(corrupt(key, 7, 0xab), 0),
      /l4f_vips key .*: address: c6336407000000ab0000000000000000 is not an IPv4 address \(bytes 4-15 zero\)/,
    ],
    [
      'an IPv4 address key with byte 15 set',
      () => decodeAddrKey(corrupt(addr, 15, 1), 0),
      /l4f_vip_addrs key .*: address: c6336407000000000000000000000001 is not an IPv4 address \(bytes 4-15 zero\)/,
    ],
    [
      'an address key with a nonzero pad byte',
      () => decodeAddrKey(corrupt(addr, 18, 5), 0),
      /l4f_vip_addrs key .*: pad: 000500 is not 000000/,
    ],
    [
      'two backend ids for one VIP and address (only one would be marked down when it leaves)',
      () => {
        const n = Buffer.alloc(4);
        n.writeUInt32LE(1);
        const two = Buffer.alloc(4);
        two.writeUInt32LE(2);
        const b4 = encodeBackend({ family: 4, addressHex: 'c6120a0a', live: true, vipId: 1 });
        const id = (x: number): Buffer => {
          const b = Buffer.alloc(4);
          b.writeUInt32LE(x);
          return b;
        };
        return decodeDump(
          Buffer.concat([n, key, vip, Buffer.alloc(4), two, id(3), b4, id(9), b4, Buffer.alloc(4 + 24 + 4)]),
        );
      },
      /l4f_backends id 9: address: 198\.18\.10\.10 of VIP id 1 is not unique \(backend id 3 has it\)/,
    ],
    [
      'a VIP address family 9',
      () => decodeAddrKey(corrupt(addr, 16, 9), 0),
      /l4f_vip_addrs key .*: family: 9 is not 4 or 6/,
    ],
  ])('%s is refused as unreadable state, naming map, key, field and value', (_, decode, message) => {
    let err: unknown;
    try {
      decode();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('BPF_STATE_UNREADABLE');
    expect((err as Error).message).toMatch(message);
  });

  test('the values the driver writes still decode', () => {
    expect(decodeVipKey(key, 0).protocol).toBe('tcp');
    expect(decodeVip(vip, 0, 'x').forwarding).toBe('gue');
    expect(decodeBackend(backend, 0, 5).family).toBe(6);
    expect(decodeAddrKey(addr, 0).family).toBe(4);
    const other = encodeVip({ ...decodeVip(vip, 0, 'x'), id: 4095, table: 8191, size: 2_097_143 });
    expect(
      decodeDump(
        dumpOf([
          [key, vip],
          [key8, other],
        ]),
      ).vips.map((v) => v.value.table),
    ).toEqual([2, 8191]);
  });
});
