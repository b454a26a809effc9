/**
 * `l4fleet backend setup`: makes this host a direct-server-return backend for the fleet's encapsulated traffic.
 * Everything is checked first (options, tools, object, bpf file system, interface, a foreign filter in our tc
 * slot); then each change is made with its undo, so a failure part-way leaves the host as it was. Running it again
 * with the same options changes nothing; with other options it changes only what differs.
 */
import { addressText } from '@l4fleet/config';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import {
  attachFilter,
  DEFAULT_BACKEND_OBJECT,
  desiredMaps,
  detachFilter,
  loadProgram,
  PIN_BASE_NAME,
  PROGRAM_NAME,
  pinnedProgId,
  readBackendObject,
  syncMaps,
  TC_PREF,
} from './bpf.js';
import {
  canonicalCidr,
  defaultInterface,
  hasClsact,
  loopbackAddresses,
  mustRun,
  netnsId,
  requireBpffs,
  requireInterface,
  requireTools,
  sysctlGet,
  sysctlSet,
  tcFilters,
} from './host.js';
import {
  type BackendSetupInput,
  DEFAULT_BPFFS_DIR,
  DEFAULT_STATE_DIR,
  type HostAddress,
  parseBackendSetupOptions,
} from './options.js';
import {
  type BackendRecord,
  dirExists,
  RECORD_VERSION,
  readRecord,
  recordPath,
  type SysctlChange,
  writeRecord,
} from './record.js';
import { planSysctls, sysctlKeys } from './sysctl-plan.js';

/** Where setup, teardown and status act; every field but `exec` has a default. */
export interface BackendHostDeps {
  readonly exec: Exec;
  /** Mounted bpf file system for the pins; default /sys/fs/bpf. */
  readonly bpffs?: string;
  /** Directory of the setup record; default /run/l4fleet. */
  readonly stateDir?: string;
  /** The compiled backend program; default native/bin/bpf/backend.bpf.o of this package. */
  readonly objectPath?: string;
}

export interface BackendChange {
  /** `sysctl`, `vip`, `program`, `maps`, `qdisc`, `filter`. */
  readonly what: string;
  readonly detail: string;
}

export interface BackendSetupReport {
  readonly interface: string;
  readonly recordPath: string;
  readonly pinDir: string;
  readonly progId: number;
  /** Empty when the host already was exactly as asked. */
  readonly changes: readonly BackendChange[];
}

export const TOOLS = ['ip', 'tc', 'bpftool', 'sysctl', 'stat', 'readlink'] as const;

/** In the kernel's text (loopbackAddresses()), which the record is compared with: not as typed (`2001:DB8::1`). */
const prefixOf = (a: HostAddress): string => `${addressText(a.family, a.bytes)}/${a.family === 4 ? 32 : 128}`;
const exists = async (exec: Exec, path: string): Promise<boolean> => (await exec(['test', '-e', path])).code === 0;

export async function setupBackend(input: BackendSetupInput, deps: BackendHostDeps): Promise<BackendSetupReport> {
  const opts = parseBackendSetupOptions(input);
  const { exec } = deps;
  const bpffs = deps.bpffs ?? DEFAULT_BPFFS_DIR;
  await requireTools(exec, TOOLS);
  const object = await readBackendObject(deps.objectPath ?? DEFAULT_BACKEND_OBJECT);
  await requireBpffs(exec, bpffs);
  const stateDir = deps.stateDir ?? DEFAULT_STATE_DIR;
  const path = recordPath(stateDir, await netnsId(exec));
  const prev = await readRecord(path);
  const ifname = opts.interface ?? prev?.interface ?? (await defaultInterface(exec));
  await requireInterface(exec, ifname);
  const refuse = (message: string): never => {
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', message);
  };
  if (prev && prev.interface !== ifname) {
    refuse(`--interface ${ifname}: this host is set up on ${prev.interface}; run l4fleet backend teardown first`);
  }
  if (prev && prev.bpffs !== bpffs) {
    refuse(`--bpffs ${bpffs}: this host is set up with pins under ${prev.bpffs}; run l4fleet backend teardown first`);
  }
  const base = `${bpffs}/${PIN_BASE_NAME}`;
  const pinDir = `${base}/${object.sha256.slice(0, 16)}`;
  if (!prev && (await exists(exec, base))) {
    refuse(
      `${base}: pins exist but there is no record of a setup in this network namespace (${path}): tear down ` +
        `where they were made, or remove ${base}`,
    );
  }
  const ours = (await tcFilters(exec, ifname, 'ingress')).find((f) => f.pref === TC_PREF);
  if (ours && ours.progName !== PROGRAM_NAME) {
    refuse(
      `--interface ${ifname}: tc ingress priority ${TC_PREF} holds a ${ours.kind} filter` +
        `${ours.progName ? ` (program ${ours.progName})` : ''} that is not l4fleet's; remove it or use another interface`,
    );
  }
  const keys = sysctlKeys(ifname);
  const keyList = Object.values(keys);
  const values = await sysctlGet(exec, keyList);
  const current = new Map(keyList.map((k, i) => [k, values[i] as string]));
  const onLo = await loopbackAddresses(exec);

  const undo: (() => Promise<unknown>)[] = [];
  const changes: BackendChange[] = [];
  try {
    // 1. ARP and reverse-path settings; the value before the FIRST setup is what teardown restores.
    const sysctls: SysctlChange[] = [...(prev?.sysctls ?? [])];
    for (const [key, value] of planSysctls(keys, current)) {
      const before = current.get(key) ?? '';
      await sysctlSet(exec, [[key, value]]);
      undo.push(() => sysctlSet(exec, [[key, before]]));
      changes.push({ what: 'sysctl', detail: `${key} ${before} -> ${value}` });
      const i = sysctls.findIndex((s) => s.key === key);
      if (i >= 0) sysctls[i] = { key, before: (sysctls[i] as SysctlChange).before, set: value };
      else sysctls.push({ key, before, set: value });
    }
    // 2. VIPs on lo: add the missing ones; drop the ones an earlier setup added that are no longer wanted.
    const wanted = new Set(opts.vips.map((v) => v.hex));
    const prevAdded = (prev?.addedVips ?? []).map(canonicalCidr);
    const addedVips: string[] = [];
    for (const vip of opts.vips) {
      const was = onLo.get(vip.hex);
      if (was !== undefined) {
        if (prevAdded.includes(was)) addedVips.push(was);
        continue;
      }
      const cidr = prefixOf(vip);
      await mustRun(exec, ['ip', 'addr', 'add', cidr, 'dev', 'lo']);
      undo.push(() => exec(['ip', 'addr', 'del', cidr, 'dev', 'lo']));
      addedVips.push(cidr);
      changes.push({ what: 'vip', detail: `${cidr} added to lo` });
    }
    for (const cidr of prevAdded) {
      const hex = [...onLo.entries()].find(([, c]) => c === cidr)?.[0];
      if (hex === undefined || wanted.has(hex)) continue;
      await mustRun(exec, ['ip', 'addr', 'del', cidr, 'dev', 'lo']);
      undo.push(() => exec(['ip', 'addr', 'add', cidr, 'dev', 'lo']));
      changes.push({ what: 'vip', detail: `${cidr} removed from lo (no longer a VIP)` });
    }
    // 3. The program: a new generation only when the object changed (an upgrade; its counters start at 0).
    const fresh = !(await exists(exec, `${pinDir}/prog`));
    if (fresh) {
      const baseExisted = await exists(exec, base);
      // Registered before the load: a refused object leaves the directories mkdir made.
      undo.push(async () => {
        await exec(['rm', '-rf', pinDir]);
        if (!baseExisted) await exec(['rmdir', base]);
      });
      await loadProgram(exec, object, pinDir);
      changes.push({ what: 'program', detail: `${object.path} loaded, pinned at ${pinDir}` });
    }
    // 4. The allow lists and the config, filled before the filter sees a packet.
    const written = await syncMaps(exec, pinDir, desiredMaps(opts));
    if (!fresh && prev) {
      const restore = desiredMaps(parseBackendSetupOptions(recordInput(prev)));
      undo.push(() => syncMaps(exec, pinDir, restore));
    }
    if (written > 0) changes.push({ what: 'maps', detail: `${written} entries written or deleted` });
    // 5. clsact, then our filter (replace is atomic for the packets in flight).
    let clsactCreated = prev?.clsactCreated ?? false;
    if (!(await hasClsact(exec, ifname))) {
      await mustRun(exec, ['tc', 'qdisc', 'add', 'dev', ifname, 'clsact']);
      undo.push(() => exec(['tc', 'qdisc', 'del', 'dev', ifname, 'clsact']));
      clsactCreated = true;
      changes.push({ what: 'qdisc', detail: `clsact added to ${ifname}` });
    }
    const progId = await pinnedProgId(exec, pinDir);
    if (ours?.progId !== progId) {
      await attachFilter(exec, ifname, pinDir);
      const back = prev && prev.pinDir !== pinDir && ours ? prev.pinDir : undefined;
      undo.push(() => (back ? attachFilter(exec, ifname, back) : detachFilter(exec, ifname)));
      changes.push({ what: 'filter', detail: `${ifname} ingress pref ${TC_PREF}: program ${progId}` });
    }
    const record: BackendRecord = {
      version: RECORD_VERSION,
      netns: await netnsId(exec),
      interface: ifname,
      bpffs,
      pinDir,
      objectSha256: object.sha256,
      forwarding: opts.forwarding,
      guePort: opts.guePort,
      vips: opts.vips.map((v) => v.text),
      nodes: opts.nodes.map((n) => n.text),
      peers: opts.peers.map((n) => n.text),
      secondChance: opts.secondChance,
      addedVips,
      clsactCreated,
      stateDirCreated: prev?.stateDirCreated ?? !(await dirExists(stateDir)),
      sysctls,
    };
    await writeRecord(path, record);
    return {
      interface: ifname,
      recordPath: path,
      pinDir,
      progId,
      changes: [...changes, ...(await prune(exec, base, pinDir))],
    };
  } catch (err) {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    if (err instanceof DataPlaneError) throw err;
    throw new DataPlaneError('BACKEND_SETUP_FAILED', `backend setup: ${(err as Error).message}`, { cause: err });
  }
}

/** Removes program generations other than `keep` (after an upgrade the filter no longer refers to them). */
async function prune(exec: Exec, base: string, keep: string): Promise<BackendChange[]> {
  const changes: BackendChange[] = [];
  const r = await exec(['ls', base]);
  for (const dir of r.code === 0 ? r.stdout.split('\n').filter(Boolean) : []) {
    if (`${base}/${dir}` === keep) continue;
    await exec(['rm', '-rf', `${base}/${dir}`]);
    changes.push({ what: 'program', detail: `previous generation ${base}/${dir} removed` });
  }
  return changes;
}

/** The options a record was made with, as setup input (for undo and status). */
export function recordInput(r: BackendRecord): BackendSetupInput {
  return {
    vips: r.vips,
    nodes: r.nodes,
    forwarding: r.forwarding,
    interface: r.interface,
    ...(r.forwarding.includes('gue') ? { guePort: r.guePort } : {}),
    ...(r.peers === undefined ? {} : { peers: r.peers }),
    ...(r.secondChance === undefined ? {} : { secondChance: r.secondChance }),
  };
}
