/**
 * One change to the driver's table, rendered either as nft text (`nft -f`) or as requests for
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

/** The nft script; consecutive element changes of one set share a statement. */
export function renderNft(table: string, ops: readonly Op[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < ops.length) {
    const op = ops[i] as Op;
    if (op.kind === 'nft') {
      out.push(op.text);
      i += 1;
    } else if (op.kind === 'counter') {
      out.push(`${op.verb} counter netdev ${table} ${op.name}`);
      i += 1;
    } else if (op.kind === 'bulk') {
      for (let at = 0; at < op.keys.length; at += NFT_CHUNK) {
        out.push(`${op.verb} element netdev ${table} ${op.set} { ${bulkItems(op, at, NFT_CHUNK, ' : ', ', ')} }`);
      }
      i += 1;
    } else {
      const items: string[] = [];
      for (; i < ops.length && items.length < NFT_CHUNK; i++) {
        const e = ops[i] as Op;
        if (e.kind !== 'element' || e.verb !== op.verb || e.set !== op.set) break;
        items.push(e.verb === 'add' && e.value ? `${e.key} : ${nftValue(e.value)}` : String(e.key));
      }
      out.push(`${op.verb} element netdev ${table} ${op.set} { ${items.join(', ')} }`);
    }
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** Elements per l4fleet-nft-batch line (the set's name is written once per line). */
const BATCH_CHUNK = 4096;

/** l4fleet-nft-batch requests (without the final "commit"); undefined when some change needs nft. */
export function renderBatch(ops: readonly Op[]): string | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < ops.length) {
    const op = ops[i] as Op;
    if (op.kind === 'nft') return undefined;
    if (op.kind === 'counter') {
      out.push(`${op.verb}-counter ${op.name}`);
      i += 1;
      continue;
    }
    if (op.kind === 'bulk') {
      for (let at = 0; at < op.keys.length; at += BATCH_CHUNK) {
        out.push(`${op.verb} ${op.set} ${bulkItems(op, at, BATCH_CHUNK, '=', ' ')}`);
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
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
