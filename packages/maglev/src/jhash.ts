/**
 * The Linux kernel's jhash (Bob Jenkins' lookup3, include/linux/jhash.h), as nftables' `jhash` expression
 * calls it: jhash(registers, len, seed). Words are read in the CPU's byte order; the kernels we target
 * (x86_64, arm64) are little-endian, so that is what we do.
 */
const JHASH_INITVAL = 0xdeadbeef;

const rol = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

function word(k: Uint8Array, i: number): number {
  return (
    (k[i] as number) | ((k[i + 1] as number) << 8) | ((k[i + 2] as number) << 16) | ((k[i + 3] as number) << 24) | 0
  );
}

/** jhash(key, key.length, initval) as the kernel computes it; returns an unsigned 32-bit value. */
export function jhash(key: Uint8Array, initval: number): number {
  return jhashInto(key, initval, scratch);
}

const scratch = new Uint32Array(2);

/**
 * jhash(key, key.length, initval), also giving lookup3's second hash (`b` after the final mix, as hashlittle2
 * returns it): out[0] = the kernel's hash (returned too), out[1] = the second. The bpf data plane's flow cache takes
 * its set and fingerprint from the two (native/bpf/node-flows.h). Allocates nothing: jhash runs per flow.
 */
export function jhashInto(key: Uint8Array, initval: number, out: Uint32Array): number {
  let length = key.length;
  let a = (JHASH_INITVAL + length + initval) | 0;
  let b = a;
  let c = a;
  let i = 0;
  while (length > 12) {
    a = (a + word(key, i)) | 0;
    b = (b + word(key, i + 4)) | 0;
    c = (c + word(key, i + 8)) | 0;
    // __jhash_mix
    a = (a - c) | 0;
    a ^= rol(c, 4);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rol(a, 6);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rol(b, 8);
    b = (b + a) | 0;
    a = (a - c) | 0;
    a ^= rol(c, 16);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rol(a, 19);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rol(b, 4);
    b = (b + a) | 0;
    length -= 12;
    i += 12;
  }
  if (length === 0) {
    out[0] = c >>> 0;
    out[1] = b >>> 0;
    return c >>> 0;
  }
  // The kernel's switch falls through from case `length` down to case 1.
  const byte = (j: number): number => key[i + j] as number;
  if (length >= 12) c = (c + (byte(11) << 24)) | 0;
  if (length >= 11) c = (c + (byte(10) << 16)) | 0;
  if (length >= 10) c = (c + (byte(9) << 8)) | 0;
  if (length >= 9) c = (c + byte(8)) | 0;
  if (length >= 8) b = (b + (byte(7) << 24)) | 0;
  if (length >= 7) b = (b + (byte(6) << 16)) | 0;
  if (length >= 6) b = (b + (byte(5) << 8)) | 0;
  if (length >= 5) b = (b + byte(4)) | 0;
  if (length >= 4) a = (a + (byte(3) << 24)) | 0;
  if (length >= 3) a = (a + (byte(2) << 16)) | 0;
  if (length >= 2) a = (a + (byte(1) << 8)) | 0;
  a = (a + byte(0)) | 0;
  // __jhash_final
  c ^= b;
  c = (c - rol(b, 14)) | 0;
  a ^= c;
  a = (a - rol(c, 11)) | 0;
  b ^= a;
  b = (b - rol(a, 25)) | 0;
  c ^= b;
  c = (c - rol(b, 16)) | 0;
  a ^= c;
  a = (a - rol(c, 4)) | 0;
  b ^= a;
  b = (b - rol(a, 14)) | 0;
  c ^= b;
  c = (c - rol(b, 24)) | 0;
  out[0] = c >>> 0;
  out[1] = b >>> 0;
  return c >>> 0;
}

/** The kernel's reciprocal_scale(): maps a 32-bit hash onto [0, range) as nft's `jhash ... mod range` does. */
export function reciprocalScale(hash: number, range: number): number {
  return Math.floor((hash * range) / 0x1_0000_0000);
}
