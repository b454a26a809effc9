import type { NamedTable } from './diff.js';
import { NO_BACKEND } from './table.js';

export interface TableStats {
  readonly size: number;
  /**
   * Slots owned per backend name; backends with no slots appear with 0. A null-prototype object: any name, also
   * `__proto__` or `toString`, is an own key, and a name not in the table reads as undefined.
   */
  readonly slotsPerBackend: Readonly<Record<string, number>>;
  /** Slots with no backend (all weights 0). */
  readonly empty: number;
  readonly max: number;
  readonly min: number;
  /** max - min; Maglev §3.4 promises at most 1 at equal weights. */
  readonly spread: number;
  /** max / mean over backends that own slots; 1 is perfect balance (equal weights). */
  readonly imbalance: number;
}

export function tableStats(table: NamedTable): TableStats {
  const counts = new Int32Array(table.backends.length);
  let empty = 0;
  const slots = table.slots;
  for (let s = 0; s < slots.length; s++) {
    const i = slots[s] as number;
    if (i === NO_BACKEND) empty += 1;
    else counts[i] = (counts[i] as number) + 1;
  }
  // No prototype: on a plain {} a backend named `__proto__` set the prototype instead of a key and vanished from the
  // output (`l4fleet maglev table -b __proto__,a` listed only a).
  const slotsPerBackend: Record<string, number> = Object.create(null);
  table.backends.forEach((name, i) => {
    slotsPerBackend[name] = counts[i] as number;
  });
  // Loops, not Math.max(...list): a spread of 100,000+ arguments overflows the call stack.
  let owning = 0;
  let max = 0;
  let min = Number.POSITIVE_INFINITY;
  let sum = 0;
  for (const c of counts) {
    if (c === 0) continue;
    owning += 1;
    sum += c;
    if (c > max) max = c;
    if (c < min) min = c;
  }
  if (owning === 0) min = 0;
  const mean = owning ? sum / owning : 0;
  return {
    size: table.slots.length,
    slotsPerBackend,
    empty,
    max,
    min,
    spread: max - min,
    imbalance: mean ? max / mean : 0,
  };
}
