/** The loader's OP_STATS reply (counters summed over CPUs, flow entry counts); the maps' layouts are in codec.ts. */

export interface Counters {
  readonly vips: Map<number, { packets: number; bytes: number }>;
  readonly backends: Map<number, { packets: number; bytes: number }>;
  readonly stats: Map<number, { packets: number; bytes: number }>;
  readonly flows4: number;
  readonly flows6: number;
}

/** Parses the loader's OP_STATS reply (layout at stats() in native/bpf-loader/maps.c). */
export function decodeCounters(b: Buffer): Counters {
  let at = 0;
  const list = (): Map<number, { packets: number; bytes: number }> => {
    const m = new Map<number, { packets: number; bytes: number }>();
    let n = b.readUInt32LE(at);
    at += 4;
    for (; n > 0; n--) {
      m.set(b.readUInt32LE(at), {
        packets: Number(b.readBigUInt64LE(at + 4)),
        bytes: Number(b.readBigUInt64LE(at + 12)),
      });
      at += 20;
    }
    return m;
  };
  const vips = list();
  const backends = list();
  const stats = list();
  return { vips, backends, stats, flows4: b.readUInt32LE(at), flows6: b.readUInt32LE(at + 4) };
}
