/**
 * The record of what `backend setup` changed on this host, so `teardown` undoes exactly that and nothing else:
 * which sysctls it set (and their values before), which VIPs it added to `lo`, whether it created the clsact
 * qdisc, and where its program and maps are pinned. One file per network namespace (its inode in the name), under
 * /run by default: cleared at boot together with everything it describes.
 */

import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { parseAddress } from '@l4fleet/maglev';
import { DataPlaneError } from '../errors.js';
import { toHex } from '../validate.js';
import { PIN_BASE_NAME } from './bpf.js';
import { FORWARDING_MODES, type ForwardingMode, IFNAME } from './options.js';
import { sysctlKeys } from './sysctl-plan.js';

export const RECORD_VERSION = 1;

export interface SysctlChange {
  /** Slash form (`net/ipv4/conf/eth0.100/rp_filter`): interface names may contain dots. */
  readonly key: string;
  /** Value before the first setup changed it; restored by teardown. */
  readonly before: string;
  /** Value setup wrote; teardown restores `before` only while the key still holds this. */
  readonly set: string;
}

export interface BackendRecord {
  readonly version: typeof RECORD_VERSION;
  /** `net:[inode]` of the namespace this record belongs to. */
  readonly netns: string;
  readonly interface: string;
  /** The bpf file system the pins live under. */
  readonly bpffs: string;
  /** Pin directory of the loaded program generation: `<bpffs>/l4fleet-backend/<object sha256 prefix>`. */
  readonly pinDir: string;
  readonly objectSha256: string;
  readonly forwarding: readonly ForwardingMode[];
  readonly guePort: number;
  /** As given on the command line. */
  readonly vips: readonly string[];
  readonly nodes: readonly string[];
  /** Second chance: the peer backends allowed as sources (absent in records of older setups: none). */
  readonly peers?: readonly string[];
  /** Absent in records of older setups: true. */
  readonly secondChance?: boolean;
  /**
   * VIP addresses (with prefix length, in the kernel's text since 2026-12-05: `2001:db8::1/128`) this setup added to
   * `lo`; VIPs that were already there are not listed.
   */
  readonly addedVips: readonly string[];
  readonly clsactCreated: boolean;
  /**
   * The state directory did not exist before setup: teardown removes it when it is empty. Absent in records of the
   * first setups (before de609f8, same RECORD_VERSION): read as false, the directory is kept.
   */
  readonly stateDirCreated: boolean;
  readonly sysctls: readonly SysctlChange[];
  /**
   * Written before setup's first change and cleared when it ends: a setup killed part-way (Ctrl-C, SIGKILL,
   * `systemctl stop` of the oneshot) leaves a record of everything it was about to change, so the next setup keeps
   * it as its own and teardown undoes it (skipping, without complaint, what it never got to).
   */
  readonly incomplete?: true;
}

export function recordPath(stateDir: string, netns: string): string {
  const inode = /^net:\[(\d+)\]$/.exec(netns)?.[1];
  if (inode === undefined) {
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `network namespace ${JSON.stringify(netns)} is not net:[N]`);
  }
  return `${stateDir}/backend-net${inode}.json`;
}

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);

/** Absolute and in its shortest form (no `.`, `..`, `//` or trailing `/`): what setup writes, what `rm -rf` may take. */
export function isCleanAbsolute(path: string): boolean {
  return path.startsWith('/') && posix.normalize(path) === path && (path === '/' || !path.endsWith('/'));
}

const addressHex = (text: string): string | undefined => {
  try {
    return toHex(parseAddress(text).bytes);
  } catch {
    return undefined;
  }
};

/**
 * Checks a record read back from disk; names the first field that is wrong. Teardown deletes the addresses
 * `addedVips` lists, writes the sysctls `sysctls` lists and removes the pins under `bpffs`, so each may name only
 * what setup itself could have changed: a VIP of `vips` as /32 or /128, the four keys of sysctlKeys(interface),
 * `<bpffs>/l4fleet-backend/<sha256 prefix>`.
 */
export function parseRecord(raw: unknown, path: string): BackendRecord {
  const bad = (field: string, value: unknown, why?: string): never => {
    throw new DataPlaneError(
      'BACKEND_RECORD_INVALID',
      `${path}: ${field} ${JSON.stringify(value)} is not valid${why ? ` (${why})` : ''}; fix or remove the file ` +
        '(teardown needs it)',
    );
  };
  if (typeof raw !== 'object' || raw === null) return bad('record', raw);
  const r = raw as Record<string, unknown>;
  if (r.version !== RECORD_VERSION) bad('version', r.version);
  for (const f of ['netns', 'interface', 'bpffs', 'pinDir', 'objectSha256'] as const) if (!isStr(r[f])) bad(f, r[f]);
  const { netns, interface: ifname, bpffs, pinDir, objectSha256 } = r as Record<string, string>;
  if (!/^net:\[\d+\]$/.test(netns as string)) bad('netns', netns, 'not net:[N]');
  if (!IFNAME.test(ifname as string)) bad('interface', ifname, 'not an interface name');
  if (!isCleanAbsolute(bpffs as string)) bad('bpffs', bpffs, 'not an absolute path in its shortest form');
  if (!/^[0-9a-f]{64}$/.test(objectSha256 as string)) bad('objectSha256', objectSha256, 'not a sha256 in hex');
  const wantPinDir = `${bpffs}/${PIN_BASE_NAME}/${(objectSha256 as string).slice(0, 16)}`;
  if (pinDir !== wantPinDir) bad('pinDir', pinDir, `setup pins at ${wantPinDir}`);
  if (!isStrList(r.forwarding) || !r.forwarding.every((m) => (FORWARDING_MODES as string[]).includes(m))) {
    bad('forwarding', r.forwarding);
  }
  if (typeof r.guePort !== 'number' || !Number.isInteger(r.guePort) || r.guePort < 1 || r.guePort > 65_535) {
    bad('guePort', r.guePort);
  }
  for (const f of ['vips', 'nodes', 'addedVips'] as const) if (!isStrList(r[f])) bad(f, r[f]);
  if (r.peers !== undefined && !(Array.isArray(r.peers) && r.peers.every(isStr))) bad('peers', r.peers);
  for (const f of ['vips', 'nodes', 'peers'] as const) {
    for (const a of (r[f] as string[] | undefined) ?? []) {
      if (addressHex(a) === undefined) bad(`${f}[]`, a, 'not an IPv4 or IPv6 address');
    }
  }
  const vipHex = new Set((r.vips as string[]).map(addressHex));
  for (const cidr of r.addedVips as string[]) {
    const [address, prefixlen, ...rest] = cidr.split('/');
    const family = address?.includes(':') ? 6 : 4;
    const ok =
      rest.length === 0 && prefixlen === (family === 4 ? '32' : '128') && vipHex.has(addressHex(address ?? ''));
    if (!ok) bad('addedVips[]', cidr, 'not one of vips as /32 or /128');
  }
  if (r.secondChance !== undefined && typeof r.secondChance !== 'boolean') bad('secondChance', r.secondChance);
  if (typeof r.clsactCreated !== 'boolean') bad('clsactCreated', r.clsactCreated);
  if (r.stateDirCreated !== undefined && typeof r.stateDirCreated !== 'boolean') {
    bad('stateDirCreated', r.stateDirCreated);
  }
  if (r.incomplete !== undefined && r.incomplete !== true) bad('incomplete', r.incomplete);
  const sysctls = r.sysctls;
  if (!Array.isArray(sysctls)) return bad('sysctls', sysctls);
  const keys: string[] = Object.values(sysctlKeys(ifname as string));
  for (const s of sysctls as unknown[]) {
    const c = s as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || !isStr(c.key) || typeof c.before !== 'string' || !isStr(c.set)) {
      bad('sysctls[]', s);
    }
    if (!keys.includes(c.key as string)) bad('sysctls[].key', c.key, `setup sets only ${keys.join(', ')}`);
  }
  // Whether the first setups created the directory is unknown: keeping it is the safe side (it may hold others' files).
  if (r.stateDirCreated === undefined) return { ...(raw as BackendRecord), stateDirCreated: false };
  return raw as BackendRecord;
}

/** The record at `path`, or undefined when there is none. */
export async function readRecord(path: string): Promise<BackendRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataPlaneError('BACKEND_RECORD_INVALID', `${path}: unreadable`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataPlaneError('BACKEND_RECORD_INVALID', `${path}: not JSON; fix or remove the file`, { cause: err });
  }
  return parseRecord(raw, path);
}

/**
 * Writes the record atomically (temporary file, then rename): a crash leaves the old or the new one. The temporary
 * name is this writer's own: with one shared name a second writer truncated the first's file under it, and the
 * first's rename then failed or published the other's half-written text.
 */
export async function writeRecord(path: string, record: BackendRecord): Promise<void> {
  await mkdir(path.slice(0, path.lastIndexOf('/')), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Removes the record, and its directory too when setup created it and nothing else is in it. */
export async function removeRecord(path: string, removeDir: boolean): Promise<void> {
  await rm(path, { force: true });
  if (removeDir) await rmdir(path.slice(0, path.lastIndexOf('/'))).catch(() => undefined);
}

export async function dirExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
