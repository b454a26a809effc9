/** Runs wasm/fill.wat's loops over a table in WebAssembly memory and copies the result out. */
import { FILL_WASM_BASE64 } from './fill-wasm-bytes.js';

// The few WebAssembly JS-API types used here (TypeScript puts them in lib.dom, which a Node package should not load).
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module);
    readonly exports: unknown;
  }
  interface Memory {
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
}

interface FillExports {
  readonly memory: WebAssembly.Memory;
  fillUniform(table: number, cursor: number, owner: number, n: number, size: number): void;
  fillWeighted(
    table: number,
    cursor: number,
    owner: number,
    n: number,
    size: number,
    rate: number,
    credit: number,
  ): void;
  claimTurns(table: number, cursor: number, owner: number, size: number, turns: number): void;
}

const PAGE_BYTES = 65_536;
// One instance per process, created on first use (a 666-byte module compiles in well under a millisecond).
// Its memory only grows, to the largest table built so far (4 bytes a slot + 32 a backend; 8 a slot with turns).
let instance: FillExports | null | undefined;

function exports(): FillExports | null {
  if (instance === undefined) {
    try {
      const bytes = Buffer.from(FILL_WASM_BASE64, 'base64');
      instance = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as FillExports;
    } catch {
      instance = null; // no WebAssembly (e.g. node --jitless): the TypeScript loops serve
    }
  }
  return instance;
}

export function wasmAvailable(): boolean {
  return exports() !== null;
}

export function fillWasm(table: Int32Array, cursor: Int32Array, owner: Int32Array, rate?: Float64Array): void {
  const wasm = exports();
  if (!wasm) throw new Error('WebAssembly is unavailable');
  const size = table.length;
  const n = owner.length;
  // Layout: f64 arrays first (8-byte aligned), then the i32 arrays.
  const rateAt = 0;
  const creditAt = rateAt + 8 * n;
  const tableAt = creditAt + 8 * n;
  const cursorAt = tableAt + 4 * size;
  const ownerAt = cursorAt + 8 * n;
  const at = { table: tableAt, cursor: cursorAt, owner: ownerAt };
  const buffer = stage(wasm.memory, ownerAt + 4 * n, at, table, cursor, owner);
  if (rate) {
    new Float64Array(buffer, rateAt, n).set(rate);
    new Float64Array(buffer, creditAt, n).fill(0);
    wasm.fillWeighted(tableAt, cursorAt, ownerAt, n, size, rateAt, creditAt);
  } else {
    wasm.fillUniform(tableAt, cursorAt, ownerAt, n, size);
  }
  unstage(buffer, at, table, cursor);
}

/**
 * Claims in the order `turns` gives (turns[i]: the backend whose claim is the i-th; table.length of them fill the
 * table), as src/fill-events.ts schedules them; the same claims as the TypeScript loop over `turns`.
 */
export function fillWasmTurns(table: Int32Array, cursor: Int32Array, owner: Int32Array, turns: Int32Array): void {
  const wasm = exports();
  if (!wasm) throw new Error('WebAssembly is unavailable');
  const size = table.length;
  const n = owner.length;
  if (turns.length !== size) throw new RangeError(`turns: ${turns.length} turns for a table of ${size} slots`);
  const tableAt = 0;
  const cursorAt = tableAt + 4 * size;
  const ownerAt = cursorAt + 8 * n;
  const turnsAt = ownerAt + 4 * n;
  const at = { table: tableAt, cursor: cursorAt, owner: ownerAt };
  const buffer = stage(wasm.memory, turnsAt + 4 * size, at, table, cursor, owner);
  new Int32Array(buffer, turnsAt, size).set(turns);
  wasm.claimTurns(tableAt, cursorAt, ownerAt, size, turnsAt);
  unstage(buffer, at, table, cursor);
}

/** Where a fill's i32 arrays sit in the module's memory (byte offsets). */
interface Offsets {
  readonly table: number;
  readonly cursor: number;
  readonly owner: number;
}

/** Grows the memory to `neededBytes` if short, then copies in an empty table, the cursors and the owners. */
function stage(
  memory: WebAssembly.Memory,
  neededBytes: number,
  at: Offsets,
  table: Int32Array,
  cursor: Int32Array,
  owner: Int32Array,
): ArrayBuffer {
  const short = neededBytes - memory.buffer.byteLength;
  if (short > 0) memory.grow(Math.ceil(short / PAGE_BYTES));
  const buffer = memory.buffer;
  new Int32Array(buffer, at.table, table.length).fill(-1);
  new Int32Array(buffer, at.cursor, cursor.length).set(cursor);
  new Int32Array(buffer, at.owner, owner.length).set(owner);
  return buffer;
}

/** Copies the filled table and the cursors where they left off back out. */
function unstage(buffer: ArrayBuffer, at: Offsets, table: Int32Array, cursor: Int32Array): void {
  table.set(new Int32Array(buffer, at.table, table.length));
  cursor.set(new Int32Array(buffer, at.cursor, cursor.length));
}
