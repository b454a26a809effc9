/**
 * What the bpf node puts on the wire, seen by a raw (AF_PACKET) socket in a backend namespace: packet taps
 * run before tc ingress, so the encapsulated frame is captured even where a decapsulating program runs.
 */
import type { DataPlane, DataPlaneCounters } from '@l4fleet/dataplane';
import { type Flow, flowHash } from '@l4fleet/maglev';
import type { NetnsHost } from '@l4fleet/test-support/netns';
import { expect } from 'vitest';

/** Captures up to `count` frames that carry an encapsulation (IP proto 4/41/47, or UDP to `guePort`). */
const SNIFF_PY = `
import json, socket, sys, time, select
count, seconds, gue = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('eth0', 0))
print('ready', flush=True)
out, end = [], time.time() + seconds
while len(out) < count and time.time() < end:
    r, _, _ = select.select([s], [], [], 0.1)
    if not r: continue
    f, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING: continue
    et = int.from_bytes(f[12:14], 'big')
    if et == 0x0800: proto, l4 = f[23], 14 + (f[14] & 15) * 4
    elif et == 0x86dd: proto, l4 = f[20], 54
    else: continue
    if proto in (4, 41, 47) or (proto == 17 and int.from_bytes(f[l4 + 2:l4 + 4], 'big') == gue):
        out.append('%d:%s' % (len(f), f[:200].hex()))
print(json.dumps(out), flush=True)
`;

export interface CapturedPacket {
  readonly outerFamily: 4 | 6;
  readonly outerSrc: string;
  readonly outerDst: string;
  /** IPv4: protocol; IPv6: next header. */
  readonly outerProto: number;
  readonly ttl: number;
  readonly df: boolean;
  readonly ipv4ChecksumOk: boolean;
  readonly flowLabel: number;
  /** GRE: flags/version word and protocol type. */
  readonly gre?: { readonly flags: number; readonly protocol: number };
  readonly udp?: { readonly sport: number; readonly dport: number; readonly length: number; readonly checksum: number };
  /** GUE variant 0 (a header, as second chance sends it: node-maps.h struct l4f_gue_sc) after the UDP header. */
  readonly gueHeader?: {
    readonly hlen: number;
    readonly proto: number;
    readonly flags: number;
    readonly privateType: number;
    readonly hopIndex: number;
    readonly hopCount: number;
    readonly hop: string;
  };
  readonly innerFamily: 4 | 6;
  readonly innerSrc: string;
  readonly innerDst: string;
  readonly innerSport: number;
  readonly innerDport: number;
  /** Outer length field agrees with the frame (IPv4 total length / IPv6 payload length). */
  readonly lengthOk: boolean;
}

function addr(b: Buffer, at: number, family: 4 | 6): string {
  if (family === 4) return [...b.subarray(at, at + 4)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export function parseEncapsulated(hex: string, frameLen?: number): CapturedPacket {
  const f = Buffer.from(hex, 'hex');
  const v6 = f.readUInt16BE(12) === 0x86dd;
  const outerFamily = v6 ? 6 : 4;
  let at = 14;
  const outerProto = v6 ? (f[20] as number) : (f[23] as number);
  const l3 = v6 ? 40 : ((f[14] as number) & 15) * 4;
  const ttl = v6 ? (f[21] as number) : (f[22] as number);
  const df = v6 ? true : (f.readUInt16BE(20) & 0x4000) !== 0;
  const lengthOk = frameLen === undefined || (v6 ? f.readUInt16BE(18) + 54 : f.readUInt16BE(16) + 14) === frameLen;
  const outerSrc = addr(f, v6 ? 22 : 26, outerFamily);
  const outerDst = addr(f, v6 ? 38 : 30, outerFamily);
  at += l3;
  let gre: CapturedPacket['gre'];
  let udp: CapturedPacket['udp'];
  if (outerProto === 47) {
    gre = { flags: f.readUInt16BE(at), protocol: f.readUInt16BE(at + 2) };
    at += 4;
  } else if (outerProto === 17) {
    udp = {
      sport: f.readUInt16BE(at),
      dport: f.readUInt16BE(at + 2),
      length: f.readUInt16BE(at + 4),
      checksum: f.readUInt16BE(at + 6),
    };
    at += 8;
  }
  let gueHeader: CapturedPacket['gueHeader'];
  if (udp && (f[at] as number) >> 6 === 0) {
    const hlen = (f[at] as number) & 0x1f;
    gueHeader = {
      hlen,
      proto: f[at + 1] as number,
      flags: f.readUInt16BE(at + 2),
      privateType: f.readUInt16BE(at + 4),
      hopIndex: f[at + 6] as number,
      hopCount: f[at + 7] as number,
      hop: addr(f, at + 8, outerFamily),
    };
    at += 4 + hlen * 4;
  }
  const innerFamily = (f[at] as number) >> 4 === 6 ? 6 : 4;
  const il3 = innerFamily === 6 ? 40 : ((f[at] as number) & 15) * 4;
  return {
    outerFamily,
    outerSrc,
    outerDst,
    outerProto,
    ttl,
    df,
    ipv4ChecksumOk: v6 || checksum(f.subarray(14, 14 + l3)) === 0xffff,
    flowLabel: v6 ? f.readUInt32BE(14) & 0xfffff : 0,
    ...(gre ? { gre } : {}),
    ...(udp ? { udp } : {}),
    ...(gueHeader ? { gueHeader } : {}),
    innerFamily,
    innerSrc: addr(f, at + (innerFamily === 6 ? 8 : 12), innerFamily),
    innerDst: addr(f, at + (innerFamily === 6 ? 24 : 16), innerFamily),
    innerSport: f.readUInt16BE(at + il3),
    innerDport: f.readUInt16BE(at + il3 + 2),
    lengthOk,
  };
}

/** Runs `during` while capturing encapsulated frames on the backend's eth0. */
export async function captureEncapsulated(
  backend: NetnsHost,
  during: () => Promise<void>,
  opts: { count: number; seconds: number; guePort: number },
): Promise<CapturedPacket[]> {
  const child = backend.spawn([
    'python3',
    '-c',
    SNIFF_PY,
    String(opts.count),
    String(opts.seconds),
    String(opts.guePort),
  ]);
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error(`sniffer exited early: ${out}`)));
  });
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await ready;
  await during();
  await done;
  const line = out.split('\n').find((l) => l.startsWith('[')) ?? '[]';
  return (JSON.parse(line) as string[]).map((h) => {
    const [len, hex] = h.split(':') as [string, string];
    return parseEncapsulated(hex, Number(len));
  });
}

/**
 * What every node must put on the wire for `flow` encapsulated with `mode` (tc and XDP alike): the outer header
 * from `node` to `backend`, TTL 64, DF, a good IPv4 checksum and lengths, the inner packet unchanged, GRE's
 * protocol type, GUE's source port from the flow hash (ECMP entropy) with checksum 0, the IPv6 flow label.
 */
export function expectEncapsulated(
  p: CapturedPacket,
  want: { mode: 'ipip' | 'gre' | 'gue'; flow: Flow; node: string; backend: string; seed: number; guePort: number },
): void {
  const { mode, flow: f } = want;
  const v6 = f.dst.includes(':');
  expect([p.outerFamily, p.outerSrc, p.outerDst]).toEqual([v6 ? 6 : 4, want.node, want.backend]);
  expect(p.ttl).toBe(64);
  expect(p.df).toBe(true);
  expect(p.ipv4ChecksumOk).toBe(true);
  expect(p.lengthOk).toBe(true);
  expect([p.innerFamily, p.innerSrc, p.innerDst, p.innerSport, p.innerDport]).toEqual([
    v6 ? 6 : 4,
    f.src,
    f.dst,
    f.sport,
    f.dport,
  ]);
  const hash = flowHash(f, want.seed, '5-tuple');
  if (mode === 'ipip') expect(p.outerProto).toBe(v6 ? 41 : 4);
  if (mode === 'gre') {
    expect(p.outerProto).toBe(47);
    expect(p.gre).toEqual({ flags: 0, protocol: v6 ? 0x86dd : 0x0800 });
  }
  if (mode === 'gue') {
    expect(p.outerProto).toBe(17);
    expect(p.udp).toMatchObject({ sport: 0xc000 | (hash & 0x3fff), dport: want.guePort, checksum: 0 });
  }
  if (v6) expect(p.flowLabel).toBe(hash & 0xfffff);
}

/**
 * A UDP datagram sent as a raw Ethernet frame (AF_PACKET) from `iface` of the sending host to `dstMac`: what no
 * socket would send, for the node's parsing. `ipLength`: the value of the IP length field (IPv4 total length,
 * IPv6 payload length) instead of the true one; `vlan`: an 802.1Q tag with that VLAN id.
 */
export interface RawDatagram {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly ipLength?: number;
  readonly vlan?: number;
}

const SEND_PY = `
import json, socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); return ~(s + (s >> 16)) & 0xffff
iface, dst_mac, specs = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), json.loads(sys.argv[3])
src_mac = bytes.fromhex(open('/sys/class/net/%s/address' % iface).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for p in specs:
    v6 = ':' in p['dst']
    udp = struct.pack('!HHHH', p['sport'], p['dport'], 9, 0) + b'x'
    if v6:
        src, dst = socket.inet_pton(socket.AF_INET6, p['src']), socket.inet_pton(socket.AF_INET6, p['dst'])
        n = p.get('ipLength', len(udp))
        ip = struct.pack('!IHBB16s16s', 0x60000000, n, 17, 64, src, dst)
        et = b'\\x86\\xdd'
    else:
        src, dst = socket.inet_aton(p['src']), socket.inet_aton(p['dst'])
        n = p.get('ipLength', 20 + len(udp))
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, n, 0, 0x4000, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        et = b'\\x08\\x00'
    tag = struct.pack('!HH', 0x8100, p['vlan']) if 'vlan' in p else b''
    s.send(dst_mac + src_mac + tag + et + ip + udp)
`;

/** Sends `frames` from `host`'s `iface` to `dstMac`, in order. */
export async function sendRawDatagrams(
  host: NetnsHost,
  iface: string,
  dstMac: string,
  frames: readonly RawDatagram[],
): Promise<void> {
  await host.run(['python3', '-c', SEND_PY, iface, dstMac, JSON.stringify(frames)]);
}

/** The driver's counters once `ready` holds of them (polled, for at most 5 s; then the last read, for the asserts). */
export async function countersWhen(
  dp: DataPlane,
  ready: (c: DataPlaneCounters) => boolean,
): Promise<DataPlaneCounters> {
  let c = await dp.counters();
  for (let i = 0; i < 50 && !ready(c); i++) {
    await new Promise((r) => setTimeout(r, 100));
    c = await dp.counters();
  }
  return c;
}
