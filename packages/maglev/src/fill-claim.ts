/** One turn of the fill loop, shared by the TypeScript loops (src/fill.ts, src/fill-grouped.ts). */

/** Backend k claims its next free preferred slot; returns true when that filled the table. */
export function claim(table: Int32Array, cursor: Int32Array, owner: Int32Array, k: number, filled: number): boolean {
  const size = table.length;
  const s = cursor[2 * k + 1] as number;
  let p = cursor[2 * k] as number;
  while ((table[p] as number) !== -1) {
    p += s;
    if (p >= size) p -= size;
  }
  table[p] = owner[k] as number;
  p += s;
  cursor[2 * k] = p >= size ? p - size : p;
  return filled + 1 === size;
}
