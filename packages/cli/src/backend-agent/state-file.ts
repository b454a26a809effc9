/**
 * The backend's own state, as its agent tells the fleet's `agent` health checks (HAProxy's agent-check words): one
 * line in a file, `WORD` or `WORD # reason`. `l4fleet backend state drain --reason "deploying v42"` writes it, the
 * application's deploy script may too, and `l4fleet backend agent` answers it to every node that asks.
 *
 * The default file is under /var/lib, not /run: a backend an operator put in `maint` for a hardware job stays out
 * of the tables across the reboot that job needs. No file means `ready`: a host that never used it is served.
 */
import { chmod, mkdir, open, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { AGENT_DOWN_WORDS, AGENT_UP_WORDS } from '@l4fleet/agent';

export const DEFAULT_BACKEND_STATE_FILE = '/var/lib/l4fleet/backend-state';
/** The words a state may be: what the node's agent check reads as up, then as down. */
export const BACKEND_STATES: readonly string[] = [...AGENT_UP_WORDS, ...AGENT_DOWN_WORDS];
/** A reason longer than this is refused (the node keeps 80 characters of it in its reason anyway). */
export const MAX_STATE_REASON_CHARS = 200;
/** A state file larger than this is not a state file. */
const MAX_STATE_FILE_BYTES = 4_096;
/** What a host without a state file answers. */
export const DEFAULT_BACKEND_STATE: BackendState = { word: 'ready' };

export interface BackendState {
  readonly word: string;
  readonly reason?: string;
}

/** A state problem, naming what was wrong and its value. */
export class BackendStateError extends Error {
  override readonly name = 'BackendStateError';
}

const show = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);

/** Checks a state from the command line or a file; `what` names where it came from in the error. */
export function backendState(word: string, reason: string | undefined, what: string): BackendState {
  const w = word.trim().toLowerCase();
  if (!BACKEND_STATES.includes(w)) {
    throw new BackendStateError(`${what}: ${show(word)} is not a state (one of ${BACKEND_STATES.join(' | ')})`);
  }
  if (reason === undefined || reason.trim() === '') return { word: w };
  const r = reason.trim();
  // One line, printable: the node reads up to the first line end, and the text lands in logs and status records.
  if ([...r].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw new BackendStateError(`${what}: reason ${show(r)} has a line break or control character`);
  }
  if (r.length > MAX_STATE_REASON_CHARS) {
    throw new BackendStateError(
      `${what}: reason is ${r.length} characters, more than ${MAX_STATE_REASON_CHARS} (MAX_STATE_REASON_CHARS)`,
    );
  }
  return { word: w, reason: r };
}

/** The line the agent answers and the file holds: `drain # deploying v42`. */
export const stateLine = (s: BackendState): string => (s.reason ? `${s.word} # ${s.reason}` : s.word);

/** Parses a state file's text (its first line; `#` starts the reason). */
export function parseStateText(text: string, file: string): BackendState {
  const line = text.split(/\r?\n/)[0] ?? '';
  const hash = line.indexOf('#');
  const word = (hash < 0 ? line : line.slice(0, hash)).trim();
  return backendState(word, hash < 0 ? undefined : line.slice(hash + 1), file);
}

/** Reads the state file: DEFAULT_BACKEND_STATE when there is none; a BackendStateError when it is not a state. */
export async function readStateFile(file: string): Promise<BackendState> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_BACKEND_STATE;
    throw new BackendStateError(`${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(MAX_STATE_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0).catch((err: Error) => {
      throw new BackendStateError(`${file}: ${err.message}`, { cause: err });
    });
    if (bytesRead > MAX_STATE_FILE_BYTES) {
      throw new BackendStateError(`${file}: more than ${MAX_STATE_FILE_BYTES} bytes: not a state file`);
    }
    return parseStateText(buf.toString('utf8', 0, bytesRead), file);
  } finally {
    await fh.close();
  }
}

/**
 * Writes the state atomically (a temporary file in the same directory, then rename), so the agent never reads half.
 * The agent runs as another user (the unit's DynamicUser), so the file is made 0644 and the directories this creates
 * 0755 explicitly: modes given to mkdir and open are cut by the umask, and under umask 027 the agent could not read
 * the file root wrote. Directories that were already there keep their modes (the path may be any the operator chose).
 */
export async function writeStateFile(file: string, state: BackendState): Promise<void> {
  const dir = dirname(resolve(file)); // absolute, as mkdir's answer below: the walk up stops at it
  const tmp = join(dir, `.backend-state.${process.pid}.tmp`);
  try {
    const made = await mkdir(dir, { recursive: true, mode: 0o755 });
    if (made !== undefined) {
      // From the state file's directory up to the first one mkdir created.
      for (let d = dir; ; d = dirname(d)) {
        await chmod(d, 0o755);
        if (d === made || dirname(d) === d) break;
      }
    }
    await writeFile(tmp, `${stateLine(state)}\n`, { mode: 0o644 });
    await chmod(tmp, 0o644);
    await rename(tmp, file);
  } catch (err) {
    throw new BackendStateError(`${file}: ${(err as Error).message}`, { cause: err });
  }
}
