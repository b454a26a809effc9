/**
 * Who may put a node's record (`nodes/<name>`): node names must be unique (operator guide, node.name). The key is
 * taken when it is absent, on no lease (written by hand), or held by an agent of the same address: the same node
 * restarted or upgraded while its old lease lives (etcd keeps each key on the lease of its last put, so the old
 * one's end takes only what is still on it). Held by another address, it is another agent's: writing over it made
 * both register, and the one that stopped first deleted the other's record with its lease. Shared by the etcd
 * registration (registration.ts) and the in-memory fake (memory-registration.ts), so both refuse alike.
 */
import { isIP } from 'node:net';
import { StoreError } from './errors.js';
import { MAX_TEXT_CHARS } from './limits.js';
import { shown } from './record-check.js';
import type { NodeInfo } from './types.js';

/** Control characters (C0, DEL, C1): the readers' rule for a node's version (record-check.ts decodeNodeRecord). */
const CONTROL = /\p{Cc}/u;

/**
 * Refuses (INVALID_STATE, naming the field and the value) a node's info that readers would refuse in its record
 * (record-check.ts decodeNodeRecord): an address that is not an IP address, a version with a control character or
 * over MAX_TEXT_CHARS. Written anyway, the etcd store refused its own record on every read (an INVALID_RECORD each
 * watch, the node gone from `get nodes`), while the fake, which never decodes, took it. Both stores call it.
 */
export function assertNodeInfo(info: NodeInfo): void {
  const refuse = (field: string, v: string, why: string) =>
    new StoreError('INVALID_STATE', `register node ${info.name}: node.${field}: ${shown(v)} ${why}`);
  if (info.address !== undefined && isIP(info.address) === 0) {
    throw refuse('address', info.address, 'is not an IP address');
  }
  const version = info.version;
  if (version !== undefined && version.length > MAX_TEXT_CHARS) {
    throw refuse('version', version, `is over ${MAX_TEXT_CHARS.toLocaleString('en-US')} characters`);
  }
  if (version !== undefined && CONTROL.test(version)) throw refuse('version', version, 'holds a control character');
}

/** The record's holder: the address in its value (undefined when it has none or cannot be read). */
export function holderAddress(value: string): string | undefined {
  try {
    const address = (JSON.parse(value) as { address?: unknown }).address;
    return typeof address === 'string' ? address : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The holder for the CONFLICT message, which registerRefused logs on every retry. Its address comes from the raw
 * record (not decoded: any record on a live lease holds the key), so one that is not an IP address, or a long one, is
 * shown as the store shows a refused value (control characters as `\uXXXX`, cut at 60 characters): a hand-written
 * `"\u009b2J..."` of 100,000 chars put a raw CSI and all of it into the message.
 */
function holderShown(address: string | undefined): string {
  if (address === undefined) return 'a node without an address';
  return isIP(address) !== 0 && address.length <= 60 ? address : `an unreadable address ${shown(address)}`;
}

/**
 * The refusal (CONFLICT) when `key` is held by a live lease of an agent at another address than `address`;
 * undefined when this agent may take it. Only a node not yet serving retries it, until the holder's lease ends (the
 * agent's etcd connection, at start). A node already serving (from its state file, or registered and then refused
 * on re-registration or found out at a renewal: registration.ts) takes it as the name taken: onNameTaken, and the
 * agent drains and exits 1.
 */
export function claimRefusal(
  name: string,
  key: string,
  address: string | undefined,
  holder: { readonly address: string | undefined; readonly lease: string | undefined },
): StoreError | undefined {
  if (holder.address === address) return undefined;
  const by = holderShown(holder.address);
  const lease = holder.lease === undefined ? '' : ` (lease ${holder.lease})`;
  return new StoreError(
    'CONFLICT',
    `register node ${name}: ${key}: node.name "${name}" is already registered by ${by}${lease}; node names must be unique`,
    { key, reason: 'nameTaken' },
  );
}

/**
 * Whether `err` is a holder's refusal of the name (claimRefusal), by its reason: a CONFLICT alone may be the fenced
 * write of the record finding it changed since claim() read it (registration-write.ts), e.g. this node's previous
 * lease expiring meanwhile, which the next attempt gets past. Read as a field, not by class: the agent and the store
 * may load two copies of the module.
 */
export function isNameTaken(err: unknown): err is StoreError {
  return typeof err === 'object' && err !== null && (err as { reason?: unknown }).reason === 'nameTaken';
}
