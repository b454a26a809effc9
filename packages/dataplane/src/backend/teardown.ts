/**
 * `l4fleet backend teardown` and `status`. Teardown undoes exactly what the record says setup did: our filter,
 * the clsact qdisc if setup created it (and nothing else uses it), the pins, the VIPs setup added to `lo`, and
 * each sysctl back to its value before setup - unless someone changed it since, which teardown then leaves
 * alone and reports.
 */
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { counterDump, detachFilter, PIN_BASE_NAME, PROGRAM_NAME, TC_PREF } from './bpf.js';
import { type BackendCounters, parseCounterDump } from './counters.js';
import { canonicalCidr, loopbackAddresses, netnsId, requireTools, sysctlGet, sysctlSet, tcFilters } from './host.js';
import { acquireLock, type BackendCommand, type BackendLock, lockPath } from './lock.js';
import { parseHostDirs } from './options.js';
import { type BackendRecord, readRecord, recordPath, removeRecord } from './record.js';
import { type BackendChange, type BackendHostDeps, TOOLS } from './setup.js';

export interface BackendTeardownReport {
  readonly recordPath: string;
  /** False when there was no record: nothing was set up here (teardown is then a no-op). */
  readonly wasSetUp: boolean;
  readonly changes: readonly BackendChange[];
  /** What teardown found changed by someone else and left as it is. */
  readonly leftAlone: readonly string[];
}

/** The record of this namespace, under the lock (released by the caller). */
async function locate(
  deps: BackendHostDeps,
  command: BackendCommand,
): Promise<{ path: string; record: BackendRecord | undefined; lock: BackendLock }> {
  const { stateDir } = parseHostDirs(deps);
  await requireTools(deps.exec, TOOLS);
  const path = recordPath(stateDir, await netnsId(deps.exec));
  const lock = await acquireLock(lockPath(path), command);
  try {
    return { path, record: await readRecord(path), lock };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

export async function teardownBackend(deps: BackendHostDeps): Promise<BackendTeardownReport> {
  const { path, record, lock } = await locate(deps, 'teardown');
  let removeDir = false;
  try {
    if (!record) return { recordPath: path, wasSetUp: false, changes: [], leftAlone: [] };
    const report = await undoSetup(deps.exec, path, record);
    removeDir = record.stateDirCreated;
    return report;
  } finally {
    await lock.release(removeDir);
  }
}

async function undoSetup(exec: Exec, path: string, r: BackendRecord): Promise<BackendTeardownReport> {
  const changes: BackendChange[] = [];
  const leftAlone: string[] = [];
  // An incomplete record (a setup killed part-way) lists what setup was about to change: what it never got to
  // is skipped without a word.
  const unfinished = r.incomplete === true;
  const linkUp = (await exec(['ip', 'link', 'show', 'dev', r.interface])).code === 0;
  if (!linkUp) leftAlone.push(`interface ${r.interface} is gone (its filter and qdisc went with it)`);
  if (linkUp) {
    const ours = (await tcFilters(exec, r.interface, 'ingress')).find((f) => f.pref === TC_PREF);
    if (ours?.progName === PROGRAM_NAME) {
      await detachFilter(exec, r.interface);
      changes.push({ what: 'filter', detail: `${r.interface} ingress pref ${TC_PREF} removed` });
    } else if (ours) {
      leftAlone.push(`${r.interface} ingress pref ${TC_PREF} now holds another ${ours.kind} filter`);
    }
    if (r.clsactCreated) {
      const others = [
        ...(await tcFilters(exec, r.interface, 'ingress')),
        ...(await tcFilters(exec, r.interface, 'egress')),
      ];
      if (others.length === 0) {
        const del = await exec(['tc', 'qdisc', 'del', 'dev', r.interface, 'clsact']);
        if (del.code === 0) changes.push({ what: 'qdisc', detail: `clsact removed from ${r.interface}` });
      } else {
        leftAlone.push(`clsact on ${r.interface}: ${others.length} other filter(s) use it now`);
      }
    }
  }
  const base = `${r.bpffs}/${PIN_BASE_NAME}`;
  if ((await exec(['test', '-e', base])).code === 0) {
    await exec(['rm', '-rf', base]);
    changes.push({ what: 'program', detail: `pins under ${base} removed` });
  }
  const onLo = new Set((await loopbackAddresses(exec)).values());
  for (const cidr of r.addedVips.map(canonicalCidr)) {
    if (!onLo.has(cidr)) {
      if (!unfinished) leftAlone.push(`vip ${cidr} was already removed from lo`);
      continue;
    }
    const del = await exec(['ip', 'addr', 'del', cidr, 'dev', 'lo']);
    if (del.code === 0) changes.push({ what: 'vip', detail: `${cidr} removed from lo` });
  }
  const keys = r.sysctls.map((s) => s.key).filter((k) => k.startsWith('net/ipv4/conf/all/') || linkUp);
  const now = keys.length > 0 ? await sysctlGet(exec, keys) : [];
  for (const s of [...r.sysctls].reverse()) {
    const i = keys.indexOf(s.key);
    if (i < 0) continue;
    if (now[i] !== s.set) {
      if (unfinished && now[i] === s.before) continue;
      leftAlone.push(`sysctl ${s.key} is ${now[i]} (setup set ${s.set}): changed since, not restored to ${s.before}`);
      continue;
    }
    await sysctlSet(exec, [[s.key, s.before]]);
    changes.push({ what: 'sysctl', detail: `${s.key} ${s.set} -> ${s.before}` });
  }
  // The directory goes after the lock, which is still in it (teardownBackend).
  await removeRecord(path, false);
  return { recordPath: path, wasSetUp: true, changes, leftAlone };
}

export interface BackendStatus {
  readonly recordPath: string;
  readonly record: BackendRecord;
  /** Our program is the filter at clsact ingress priority TC_PREF on the record's interface. */
  readonly attached: boolean;
  readonly progId?: number;
  readonly counters: BackendCounters;
}

/** The setup in this namespace and its counters; throws BACKEND_RECORD_INVALID when nothing is set up. */
export async function backendStatus(deps: BackendHostDeps): Promise<BackendStatus> {
  const { path, record, lock } = await locate(deps, 'status');
  try {
    if (!record) {
      throw new DataPlaneError(
        'BACKEND_RECORD_INVALID',
        `not set up: no record at ${path} (run l4fleet backend setup)`,
      );
    }
    if (record.incomplete) {
      throw new DataPlaneError(
        'BACKEND_RECORD_INVALID',
        `${path}: a setup did not finish (it was stopped part-way): run l4fleet backend setup again, or teardown`,
      );
    }
    const ours = (await tcFilters(deps.exec, record.interface, 'ingress')).find((f) => f.pref === TC_PREF);
    const attached = ours?.progName === PROGRAM_NAME;
    const counters = parseCounterDump(await counterDump(deps.exec, record.pinDir));
    return {
      recordPath: path,
      record,
      attached,
      ...(attached && ours?.progId !== undefined ? { progId: ours.progId } : {}),
      counters,
    };
  } finally {
    await lock.release();
  }
}
