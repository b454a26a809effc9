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
  type BackendObject,
  DEFAULT_BACKEND_OBJECT,
  desiredMaps,
  detachFilter,
  loadProgram,
  type MapContents,
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
import { acquireLock, lockPath } from './lock.js';
import {
  type BackendSetupInput,
  type BackendSetupOptions,
  type HostAddress,
  parseBackendSetupOptions,
  parseHostDirs,
} from './options.js';
import { prune } from './prune.js';
import {
  type BackendRecord,
  RECORD_VERSION,
  readRecord,
  recordPath,
  removeRecord,
  type SysctlChange,
  writeRecord,
} from './record.js';
import { planSysctls, sysctlKeys } from './sysctl-plan.js';

/** Where setup, teardown and status act; every field but `exec` has a default. */
export interface BackendHostDeps {
  readonly exec: Exec;
  /** Mounted bpf file system for the pins, an absolute path; default /sys/fs/bpf. */
  readonly bpffs?: string;
  /** Directory of the setup record and its lock, an absolute path; default /run/l4fleet. */
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
  /**
   * What setup could not tidy up, though the host is as asked: a previous program generation whose pins could not
   * be removed, with rm's stderr (the next setup tries again). Empty when there was nothing to say.
   */
  readonly warnings: readonly string[];
}

export const TOOLS = ['ip', 'tc', 'bpftool', 'sysctl', 'stat', 'readlink'] as const;
/** In the kernel's text (loopbackAddresses()), which the record is compared with: not as typed (`2001:DB8::1`). */
const prefixOf = (a: HostAddress): string => `${addressText(a.family, a.bytes)}/${a.family === 4 ? 32 : 128}`;
const exists = async (exec: Exec, path: string): Promise<boolean> => (await exec(['test', '-e', path])).code === 0;

/**
 * Runs one undo or teardown step; when it fails, `done` says whether the host is already as the step would leave
 * it (what it deletes is gone: removed by hand, by a rollback, or never made by a setup stopped before it got
 * there; what it adds is there). `ip addr del`, `tc ... del` and `rmdir` fail on what is not there, which is what
 * the step wanted. Only a step that failed with the host not as wanted throws, with the step's own error.
 */
export async function unlessDone(step: () => Promise<unknown>, done: () => Promise<boolean>): Promise<void> {
  try {
    await step();
  } catch (err) {
    // A check that cannot tell counts as not done: the step's failure stands.
    if (!(await done().catch(() => false))) throw err;
  }
}

/** `cidr` (in the kernel's text, as loopbackAddresses() gives it) is on lo. */
export const isOnLo = async (exec: Exec, cidr: string): Promise<boolean> =>
  [...(await loopbackAddresses(exec)).values()].includes(cidr);

/** Our program is the filter at clsact ingress priority TC_PREF on `ifname`. */
export const ourFilterOn = async (exec: Exec, ifname: string): Promise<boolean> =>
  (await tcFilters(exec, ifname, 'ingress')).some((f) => f.pref === TC_PREF && f.progName === PROGRAM_NAME);

export async function setupBackend(input: BackendSetupInput, deps: BackendHostDeps): Promise<BackendSetupReport> {
  const opts = parseBackendSetupOptions(input);
  const { bpffs, stateDir } = parseHostDirs(deps);
  const { exec } = deps;
  await requireTools(exec, TOOLS);
  const object = await readBackendObject(deps.objectPath ?? DEFAULT_BACKEND_OBJECT);
  await requireBpffs(exec, bpffs);
  const netns = await netnsId(exec);
  const path = recordPath(stateDir, netns);
  // Held from the first read of the host to the last write of the record (lock.ts says why).
  const lock = await acquireLock(lockPath(path), 'setup');
  try {
    return await setupLocked(opts, { exec, bpffs, netns, path, object, createdDir: lock.createdDir });
  } finally {
    await lock.release();
  }
}

interface SetupContext {
  readonly exec: Exec;
  readonly bpffs: string;
  readonly netns: string;
  readonly path: string;
  readonly object: BackendObject;
  /** The lock made the state directory. */
  readonly createdDir: boolean;
}

async function setupLocked(opts: BackendSetupOptions, ctx: SetupContext): Promise<BackendSetupReport> {
  const { exec, bpffs, path, object } = ctx;
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
  const clsactThere = await hasClsact(exec, ifname);
  // Read before any change; only a generation already loaded (so with a previous record) has maps to put back.
  const restore = prev ? previousMaps(prev, path) : { why: `no record of a previous setup in ${path}` };

  // The plan. The value before the FIRST setup is what teardown restores.
  const sysctlWrites = planSysctls(keys, current);
  const sysctls: SysctlChange[] = [...(prev?.sysctls ?? [])];
  for (const [key, value] of sysctlWrites) {
    const i = sysctls.findIndex((s) => s.key === key);
    if (i >= 0) sysctls[i] = { key, before: (sysctls[i] as SysctlChange).before, set: value };
    else sysctls.push({ key, before: current.get(key) ?? '', set: value });
  }
  // VIPs on lo: add the missing ones; drop the ones an earlier setup added that are no longer wanted.
  const wanted = new Set(opts.vips.map((v) => v.hex));
  const prevAdded = (prev?.addedVips ?? []).map(canonicalCidr);
  const addedVips: string[] = [];
  const toAdd: string[] = [];
  for (const vip of opts.vips) {
    const was = onLo.get(vip.hex);
    if (was === undefined) {
      toAdd.push(prefixOf(vip));
      addedVips.push(prefixOf(vip));
    } else if (prevAdded.includes(was)) addedVips.push(was);
  }
  const toRemove = [...onLo.entries()]
    .filter(([hex, c]) => prevAdded.includes(c) && !wanted.has(hex))
    .map(([, c]) => c);
  const record = (fields: Pick<BackendRecord, 'vips' | 'addedVips'> & { incomplete?: true }): BackendRecord => ({
    version: RECORD_VERSION,
    netns: ctx.netns,
    interface: ifname,
    bpffs,
    pinDir,
    objectSha256: object.sha256,
    forwarding: opts.forwarding,
    guePort: opts.guePort,
    nodes: opts.nodes.map((n) => n.text),
    peers: opts.peers.map((n) => n.text),
    secondChance: opts.secondChance,
    clsactCreated: (prev?.clsactCreated ?? false) || !clsactThere,
    stateDirCreated: prev?.stateDirCreated ?? ctx.createdDir,
    sysctls,
    ...fields,
  });

  const undo: Undo[] = [];
  const changes: BackendChange[] = [];
  try {
    // 0. The intent, before the first change: everything this setup may change, so a setup killed part-way
    // (where no undo runs) leaves a record the next setup keeps as its own and teardown undoes. The VIPs it is
    // about to remove stay listed (and in vips, which they must be one of) until it has.
    undo.push({ kind: 'record', run: () => (prev ? writeRecord(path, prev) : removeRecord(path, false)) });
    await writeRecord(
      path,
      record({
        vips: [...opts.vips.map((v) => v.text), ...toRemove.map((c) => c.split('/')[0] as string)],
        addedVips: [...addedVips, ...toRemove],
        incomplete: true,
      }),
    );
    // 1. ARP and reverse-path settings.
    for (const [key, value] of sysctlWrites) {
      const before = current.get(key) ?? '';
      await sysctlSet(exec, [[key, value]]);
      const arp = key === keys.arpIgnore || key === keys.arpAnnounce;
      undo.push({
        kind: arp ? 'arp' : 'other',
        run: () => sysctlSet(exec, [[key, before]]),
        kept: `sysctl ${key} kept at ${value}, not restored to ${before} while a VIP setup added is on lo`,
      });
      changes.push({ what: 'sysctl', detail: `${key} ${before} -> ${value}` });
    }
    // 2. VIPs on lo.
    for (const cidr of toAdd) {
      await mustRun(exec, ['ip', 'addr', 'add', cidr, 'dev', 'lo']);
      const del = () => mustRun(exec, ['ip', 'addr', 'del', cidr, 'dev', 'lo']);
      undo.push({ kind: 'vip', run: () => unlessDone(del, async () => !(await isOnLo(exec, cidr))) });
      changes.push({ what: 'vip', detail: `${cidr} added to lo` });
    }
    for (const cidr of toRemove) {
      await mustRun(exec, ['ip', 'addr', 'del', cidr, 'dev', 'lo']);
      const add = () => mustRun(exec, ['ip', 'addr', 'add', cidr, 'dev', 'lo']);
      undo.push({ kind: 'other', run: () => unlessDone(add, () => isOnLo(exec, cidr)) });
      changes.push({ what: 'vip', detail: `${cidr} removed from lo (no longer a VIP)` });
    }
    // 3. The program: a new generation only when the object changed (an upgrade; its counters start at 0).
    const fresh = !(await exists(exec, `${pinDir}/prog`));
    if (fresh) {
      const baseExisted = await exists(exec, base);
      // Registered before the load: a refused object leaves the directories mkdir made (none, if mkdir failed:
      // rm -f of nothing succeeds, rmdir of nothing is done).
      undo.push({
        kind: 'other',
        run: async () => {
          await mustRun(exec, ['rm', '-rf', pinDir]);
          if (baseExisted) return;
          await unlessDone(
            () => mustRun(exec, ['rmdir', base]),
            async () => !(await exists(exec, base)),
          );
        },
      });
      // A generation without its program is what a setup killed during the load left: start it afresh.
      if (await exists(exec, pinDir)) await mustRun(exec, ['rm', '-rf', pinDir]);
      await loadProgram(exec, object, pinDir);
      changes.push({ what: 'program', detail: `${object.path} loaded, pinned at ${pinDir}` });
    }
    // 4. The allow lists and the config, filled before the filter sees a packet. The undo first: bpftool batch
    // stops at its first failing line, keeping those before (a node's delete without its update); syncMaps diffs,
    // so it puts back the previous entries after any part. A fresh generation's maps go with its pins.
    const putBack = async () => {
      if ('why' in restore) throw new Error(`${pinDir}/maps: not restored: ${restore.why}`);
      return syncMaps(exec, pinDir, restore.maps);
    };
    if (!fresh) undo.push({ kind: 'other', run: putBack });
    const written = await syncMaps(exec, pinDir, desiredMaps(opts));
    if (written > 0) changes.push({ what: 'maps', detail: `${written} entries written or deleted` });
    // 5. clsact, then our filter (replace is atomic for the packets in flight).
    if (!(await hasClsact(exec, ifname))) {
      await mustRun(exec, ['tc', 'qdisc', 'add', 'dev', ifname, 'clsact']);
      const del = () => mustRun(exec, ['tc', 'qdisc', 'del', 'dev', ifname, 'clsact']);
      undo.push({ kind: 'other', run: () => unlessDone(del, async () => !(await hasClsact(exec, ifname))) });
      changes.push({ what: 'qdisc', detail: `clsact added to ${ifname}` });
    }
    const progId = await pinnedProgId(exec, pinDir);
    if (ours?.progId !== progId) {
      await attachFilter(exec, ifname, pinDir);
      const back = prev && prev.pinDir !== pinDir && ours ? prev.pinDir : undefined;
      const detach = () =>
        unlessDone(
          () => detachFilter(exec, ifname),
          async () => !(await ourFilterOn(exec, ifname)),
        );
      undo.push({ kind: 'other', run: () => (back ? attachFilter(exec, ifname, back) : detach()) });
      changes.push({ what: 'filter', detail: `${ifname} ingress pref ${TC_PREF}: program ${progId}` });
    }
    await writeRecord(path, record({ vips: opts.vips.map((v) => v.text), addedVips }));
    // After the record: the setup is done, and prune never throws (its failures are warnings).
    const pruned = await prune(exec, base, pinDir);
    return {
      interface: ifname,
      recordPath: path,
      pinDir,
      progId,
      changes: [...changes, ...pruned.changes],
      warnings: pruned.warnings,
    };
  } catch (err) {
    const failed = await rollback(undo);
    const code = err instanceof DataPlaneError ? err.code : 'BACKEND_SETUP_FAILED';
    const message = err instanceof DataPlaneError ? err.message : `backend setup: ${(err as Error).message}`;
    if (failed.length === 0) {
      if (err instanceof DataPlaneError) throw err;
      throw new DataPlaneError(code, message, { cause: err });
    }
    throw new DataPlaneError(
      code,
      `${message}; the rollback failed too (${failed.join('; ')}): the record ${path} is kept, ` +
        'run l4fleet backend teardown to undo the rest',
      { cause: err },
    );
  }
}

/**
 * One step's undo. `vip` takes a VIP setup added off lo again; `arp` restores arp_ignore or arp_announce, which
 * must wait for every such VIP to be gone: with a VIP left on lo and arp_ignore 0, the host answers ARP for the VIP
 * on the LAN and takes its traffic from the fleet's nodes. `record` puts the record back as before setup.
 */
interface Undo {
  readonly kind: 'record' | 'vip' | 'arp' | 'other';
  readonly run: () => Promise<unknown>;
  /** Why an `arp` step is skipped. */
  readonly kept?: string;
}

/**
 * Runs the undo steps in reverse, each whatever the others did; returns what failed or was kept (empty when the
 * host is as it was). After a failure the intent record (step 0) stays, so teardown can finish the job.
 */
async function rollback(undo: readonly Undo[]): Promise<string[]> {
  const failed: string[] = [];
  let vipLeft = false;
  for (const u of [...undo].reverse()) {
    if (u.kind === 'record' && failed.length > 0) continue;
    if (u.kind === 'arp' && vipLeft) {
      failed.push(u.kept ?? 'an ARP sysctl kept');
      continue;
    }
    try {
      await u.run();
    } catch (err) {
      failed.push((err as Error).message);
      if (u.kind === 'vip') vipLeft = true;
    }
  }
  return failed;
}

/** What the maps held after the previous setup, for the undo; or why not (its options no longer parse). */
function previousMaps(prev: BackendRecord, path: string): { readonly maps: MapContents } | { readonly why: string } {
  try {
    return { maps: desiredMaps(parseBackendSetupOptions(recordInput(prev))) };
  } catch (err) {
    const problems = (err as Error).message.replaceAll('\n', '; ');
    return { why: `the previous setup's options in ${path} no longer parse (${problems})` };
  }
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
