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
import {
  canonicalCidr,
  hasClsact,
  loopbackAddresses,
  mustRun,
  netnsId,
  requireTools,
  sysctlGet,
  sysctlSet,
  tcFilters,
} from './host.js';
import { acquireLock, type BackendCommand, type BackendLock, lockPath } from './lock.js';
import { parseHostDirs } from './options.js';
import { type BackendRecord, readRecord, recordPath, removeRecord, type SysctlChange, writeRecord } from './record.js';
import { type BackendChange, type BackendHostDeps, isOnLo, ourFilterOn, TOOLS, unlessDone } from './setup.js';
import { sysctlKeys } from './sysctl-plan.js';

export interface BackendTeardownReport {
  readonly recordPath: string;
  /** False when there was no record: nothing was set up here (teardown is then a no-op). */
  readonly wasSetUp: boolean;
  readonly changes: readonly BackendChange[];
  /**
   * What teardown found changed by someone else and left as it is. A step that failed (with the command's stderr)
   * is listed too, but then teardown throws BACKEND_SETUP_FAILED with the whole report in its message.
   */
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
  // What a failed command left to do: kept in the record, so teardown run again finishes it.
  let failed = false;
  const attempt = async (step: () => Promise<unknown>, what: string): Promise<boolean> => {
    try {
      await step();
      return true;
    } catch (err) {
      failed = true;
      leftAlone.push(`${what}: ${(err as Error).message}`);
      return false;
    }
  };
  // An incomplete record (a setup killed part-way) lists what setup was about to change: what it never got to
  // is skipped without a word.
  const unfinished = r.incomplete === true;
  let clsactLeft = false;
  const linkUp = (await exec(['ip', 'link', 'show', 'dev', r.interface])).code === 0;
  if (!linkUp) leftAlone.push(`interface ${r.interface} is gone (its filter and qdisc went with it)`);
  if (linkUp) {
    const ours = (await tcFilters(exec, r.interface, 'ingress')).find((f) => f.pref === TC_PREF);
    if (ours?.progName === PROGRAM_NAME) {
      const what = `${r.interface} ingress pref ${TC_PREF} still holds our filter`;
      const detach = () => detachFilter(exec, r.interface);
      if (await attempt(() => unlessDone(detach, async () => !(await ourFilterOn(exec, r.interface))), what)) {
        changes.push({ what: 'filter', detail: `${r.interface} ingress pref ${TC_PREF} removed` });
      } else clsactLeft = r.clsactCreated; // the qdisc holds our filter: it goes when the filter can
    } else if (ours) {
      leftAlone.push(`${r.interface} ingress pref ${TC_PREF} now holds another ${ours.kind} filter`);
    }
    // clsactCreated is in the intent record from the start: a setup stopped before it added the qdisc, or one whose
    // rollback removed it, never made it; an operator may have removed it by hand. Gone is what teardown wants.
    if (r.clsactCreated && !clsactLeft && !(await hasClsact(exec, r.interface))) {
      if (!unfinished) leftAlone.push(`clsact on ${r.interface} already removed`);
    } else if (r.clsactCreated && !clsactLeft) {
      const others = [
        ...(await tcFilters(exec, r.interface, 'ingress')),
        ...(await tcFilters(exec, r.interface, 'egress')),
      ];
      if (others.length === 0) {
        const del = () => mustRun(exec, ['tc', 'qdisc', 'del', 'dev', r.interface, 'clsact']);
        const gone = async () => !(await hasClsact(exec, r.interface));
        if (await attempt(() => unlessDone(del, gone), `clsact on ${r.interface} is still there`)) {
          changes.push({ what: 'qdisc', detail: `clsact removed from ${r.interface}` });
        } else clsactLeft = true;
      } else {
        leftAlone.push(`clsact on ${r.interface}: ${others.length} other filter(s) use it now`);
      }
    }
  }
  const base = `${r.bpffs}/${PIN_BASE_NAME}`;
  if ((await exec(['test', '-e', base])).code === 0) {
    if (await attempt(() => mustRun(exec, ['rm', '-rf', base]), `pins under ${base} are still there`)) {
      changes.push({ what: 'program', detail: `pins under ${base} removed` });
    }
  }
  const onLo = new Set((await loopbackAddresses(exec)).values());
  const vipsLeft: string[] = [];
  for (const cidr of r.addedVips.map(canonicalCidr)) {
    if (!onLo.has(cidr)) {
      if (!unfinished) leftAlone.push(`vip ${cidr} was already removed from lo`);
      continue;
    }
    const del = () => mustRun(exec, ['ip', 'addr', 'del', cidr, 'dev', 'lo']);
    if (await attempt(() => unlessDone(del, async () => !(await isOnLo(exec, cidr))), `vip ${cidr} is still on lo`)) {
      changes.push({ what: 'vip', detail: `${cidr} removed from lo` });
    } else vipsLeft.push(cidr);
  }
  // With a VIP setup added still on lo, arp_ignore/arp_announce stay as setup set them: back at 0 the host would
  // answer ARP for the VIP on the LAN and take its traffic from the fleet's nodes.
  const { arpIgnore, arpAnnounce } = sysctlKeys(r.interface);
  const sysctlsLeft: SysctlChange[] = [];
  for (const s of [...r.sysctls].reverse()) {
    if (!s.key.startsWith('net/ipv4/conf/all/') && !linkUp) continue; // the interface's keys went with it
    // Each key read on its own: one that cannot be read (EACCES, EIO) keeps only itself in the record.
    let now: string;
    try {
      [now = ''] = await sysctlGet(exec, [s.key]);
    } catch (err) {
      failed = true;
      sysctlsLeft.unshift(s);
      leftAlone.push(`sysctl ${s.key} cannot be read, not restored to ${s.before}: ${(err as Error).message}`);
      continue;
    }
    if (now !== s.set) {
      if (unfinished && now === s.before) continue;
      leftAlone.push(`sysctl ${s.key} is ${now} (setup set ${s.set}): changed since, not restored to ${s.before}`);
      continue;
    }
    if (vipsLeft.length > 0 && (s.key === arpIgnore || s.key === arpAnnounce)) {
      failed = true;
      sysctlsLeft.unshift(s);
      leftAlone.push(`sysctl ${s.key} kept at ${s.set}, not restored to ${s.before} while a VIP setup added is on lo`);
      continue;
    }
    if (await attempt(() => sysctlSet(exec, [[s.key, s.before]]), `sysctl ${s.key} is still ${s.set}`)) {
      changes.push({ what: 'sysctl', detail: `${s.key} ${s.set} -> ${s.before}` });
    } else sysctlsLeft.unshift(s);
  }
  const report = { recordPath: path, wasSetUp: true, changes, leftAlone };
  if (failed) {
    // The record now lists only what is left, so the next teardown neither repeats nor reports what this one did.
    await writeRecord(path, { ...r, clsactCreated: clsactLeft, addedVips: vipsLeft, sysctls: sysctlsLeft });
    throw new DataPlaneError('BACKEND_SETUP_FAILED', teardownFailure(report));
  }
  // The directory goes after the lock, which is still in it (teardownBackend).
  await removeRecord(path, false);
  return report;
}

/**
 * A teardown that could not undo everything fails (the CLI exits non-zero) with the whole report: what it did,
 * what it left and why (each failed command with its stderr).
 */
function teardownFailure(report: BackendTeardownReport): string {
  return [
    `backend teardown did not finish: the record ${report.recordPath} is kept, listing what is left; fix the cause ` +
      'and run l4fleet backend teardown again',
    ...report.changes.map((c) => `  ${c.what.padEnd(8)} ${c.detail}`),
    ...report.leftAlone.map((l) => `  left alone: ${l}`),
  ].join('\n');
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
