/**
 * MurmurHash3 x86_32 over the UTF-8 bytes of a backend name. Maglev §3.4 derives each backend's
 * permutation (offset, skip) from two different hashes of its name; what matters is that every node
 * computes the same value for the same name, so this is pure integer arithmetic with no platform input.
 */
const encoder = new TextEncoder();

/**
 * The UTF-8 bytes of `text` as a string of char codes 0-255, so one loop reads them with charCodeAt. ASCII names
 * (the common case) are returned as they are, with no allocation.
 */
function utf8Bytes(text: string): string {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return String.fromCharCode(...encoder.encode(text));
  }
  return text;
}

export function murmur3(text: string, seed: number): number {
  const data = utf8Bytes(text);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = data.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k =
      data.charCodeAt(i) |
      (data.charCodeAt(i + 1) << 8) |
      (data.charCodeAt(i + 2) << 16) |
      (data.charCodeAt(i + 3) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = data.length & 3;
  if (tail === 3) k ^= data.charCodeAt(blocks + 2) << 16;
  if (tail >= 2) k ^= data.charCodeAt(blocks + 1) << 8;
  if (tail >= 1) {
    k ^= data.charCodeAt(blocks);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  return fmix(h, data.length);
}

function fmix(hash: number, length: number): number {
  let h = hash ^ length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Seeds of the two name hashes (h1 for offset, h2 for skip). Changing them reshuffles every fleet's tables. */
export const OFFSET_HASH_SEED = 0x6d61676c; // "magl"
export const SKIP_HASH_SEED = 0x65763334; // "ev34"
