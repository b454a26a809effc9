/**
 * One change to the driver's table, rendered either as nft statements (`nft -f -`) or as requests for
 * l4fleet-nft-batch (native/nft-batch/), which writes element and counter changes to the kernel
 * without nft's per-element parsing. Both renderings of a list are one transaction.
 */
import { hexToAddress } from './names.js';

/**
 * The value of a single map element: an address (network-order hex, as the driver keeps addresses), a MAC, or a
 * named counter. Many mark-to-mark elements (slots) travel as a `bulk` op instead.
 */
export type ElementValue = { readonly address: string } | { readonly mac: string } | { readonly counter: string };

export type Op =
  /** Only nft can write this (tables, chains, rules, address-keyed maps). */
  | { readonly kind: 'nft'; readonly text: string }
  | {
      readonly kind: 'element';
      readonly verb: 'add' | 'delete';
      readonly set: string;
      readonly key: number;
      readonly value?: ElementValue;
    }
  | { readonly kind: 'counter'; readonly verb: 'add' | 'delete'; readonly name: string }
  /** Many elements of one mark-to-mark map or mark set at once (slot deltas: tens of thousands). */
  | {
      readonly kind: 'bulk';
      readonly verb: 'add' | 'delete';
      readonly set: string;
      readonly keys: Uint32Array;
      /** add to a map: the value of each key. */
      readonly values?: Uint32Array;
    };

/** Elements per nft statement: keeps lines short for the nft parser; still one transaction. */
const NFT_CHUNK = 2048;

function nftValue(v: ElementValue): string {
  if ('address' in v) return hexToAddress(v.address);
  if ('mac' in v) return v.mac;
  return `"${v.counter}"`;
}

function batchValue(v: ElementValue): string {
  if ('address' in v) return `hex:${v.address}`;
  if ('mac' in v) return `hex:${v.mac.replaceAll(':', '')}`;
  return `obj:${v.counter}`;
}

/** Elements [at, at + n) of a bulk change, as "k<sep>v" joined by `join` (keys alone for deletes). */
function bulkItems(op: Extract<Op, { kind: 'bulk' }>, at: number, n: number, sep: string, join: string): string {
  const end = Math.min(op.keys.length, at + n);
  const parts = new Array<string>(end - at);
  const { keys, values } = op;
  for (let j = at; j < end; j++) {
    parts[j - at] = values === undefined ? String(keys[j]) : `${keys[j]}${sep}${values[j]}`;
  }
  return parts.join(join);
}

/**
 * The nft script, one statement (newline included) at a time; consecutive element changes of one set share a
 * statement. A generator, not one string: a default-size table (65,537 slots) is ~1.3 M characters of script, so a
 * fresh node's first apply of some 400 VIPs would pass V8's longest string (2^29 - 24 characters). The driver writes
 * the statements to one `nft -f -` as they come (one transaction still: nft commits its whole input at once).
 */
export function* nftStatements(table: string, ops: readonly Op[]): Generator<string, void, undefined> {
  let i = 0;
  while (i < ops.length) {
    const op = ops[i] as Op;
    if (op.kind === 'nft') {
      yield `${op.text}\n`;
      i += 1;
    } else if (op.kind === 'counter') {
      yield `${op.verb} counter netdev ${table} ${op.name}\n`;
      i += 1;
    } else if (op.kind === 'bulk') {
      for (let at = 0; at < op.keys.length; at += NFT_CHUNK) {
        yield `${op.verb} element netdev ${table} ${op.set} { ${bulkItems(op, at, NFT_CHUNK, ' : ', ', ')} }\n`;
      }
      i += 1;
    } else {
      const items: string[] = [];
      for (; i < ops.length && items.length < NFT_CHUNK; i++) {
        const e = ops[i] as Op;
        if (e.kind !== 'element' || e.verb !== op.verb || e.set !== op.set) break;
        items.push(e.verb === 'add' && e.value ? `${e.key} : ${nftValue(e.value)}` : String(e.key));
      }
      yield `${op.verb} element netdev ${table} ${op.set} { ${items.join(', ')} }\n`;
    }
  }
}

/** The nft script as one string (tests, small plans); the driver streams nftStatements() instead. */
export function renderNft(table: string, ops: readonly Op[]): string {
  return [...nftStatements(table, ops)].join('');
}

/** Elements per l4fleet-nft-batch line (the set's name is written once per line). */
const BATCH_CHUNK = 4096;

/**
 * Longest batch text rendered (64 Mi characters: ~6 M slot changes, ~5 default-size tables rewritten whole). The
 * batch writer takes one string; past this the change goes to `nft -f -`, streamed, rather than near V8's longest
 * string (2^29 - 24 characters).
 */
export const MAX_BATCH_CHARS = 64 * 1024 * 1024;

/**
 * l4fleet-nft-batch requests (without the final "commit"); undefined when some change needs nft, or when they
 * would be longer than `maxChars`.
 */
export function renderBatch(ops: readonly Op[], maxChars = MAX_BATCH_CHARS): string | undefined {
  const out: string[] = [];
  let chars = 0;
  let i = 0;
  while (i < ops.length) {
    if (chars > maxChars) return undefined;
    const op = ops[i] as Op;
    if (op.kind === 'nft') return undefined;
    if (op.kind === 'counter') {
      const line = `${op.verb}-counter ${op.name}`;
      out.push(line);
      chars += line.length + 1;
      i += 1;
      continue;
    }
    if (op.kind === 'bulk') {
      for (let at = 0; at < op.keys.length && chars <= maxChars; at += BATCH_CHUNK) {
        const line = `${op.verb} ${op.set} ${bulkItems(op, at, BATCH_CHUNK, '=', ' ')}`;
        out.push(line);
        chars += line.length + 1;
      }
      i += 1;
      continue;
    }
    let line = `${op.verb} ${op.set}`;
    for (let n = 0; i < ops.length && n < BATCH_CHUNK; i++, n++) {
      const e = ops[i] as Op;
      if (e.kind !== 'element' || e.verb !== op.verb || e.set !== op.set) break;
      line += e.verb === 'add' && e.value ? ` ${e.key}=${batchValue(e.value)}` : ` ${e.key}`;
    }
    out.push(line);
    chars += line.length + 1;
  }
  if (chars > maxChars) return undefined;
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
