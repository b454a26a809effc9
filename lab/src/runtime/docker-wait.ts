/**
 * A container's exit as a WatchedChild (daemon-exits.ts), so the Docker runtime's waits (`lab up`, `add-node`,
 * `restart`) give up naming a container that died, as the netns runtime's do for its daemons. The container's init
 * is its entrypoint, which execs the host's main daemon (agent, bgpd, identity server, nats): its exit is the
 * container's. A `docker wait <name>` child prints the exit code once the container stops.
 * The watchers are this command's only: unref'd (they never keep a `lab` command from ending) and killed when this
 * process exits, so no `docker wait` outlives the command that started it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { WatchedChild } from './daemon-exits.js';

type ExitListener = (code: number | null, signal: NodeJS.Signals | null) => void;

/** A container's exit, seen through `docker wait`. */
export interface ContainerWatch extends WatchedChild {
  /** The `docker wait` process's pid (undefined if it could not start). */
  readonly watcherPid: number | undefined;
  /** Resolves once the `docker wait` process has ended, whether or not it saw the container exit. */
  readonly ended: Promise<void>;
}

const watchers = new Set<ChildProcess>();
let killOnExitInstalled = false;

/** Kills every `docker wait` of this process (at its exit, and by tests). */
export function stopContainerWatches(): void {
  for (const w of watchers) w.kill('SIGKILL');
  watchers.clear();
}

function killOnExit(): void {
  if (killOnExitInstalled) return;
  killOnExitInstalled = true;
  // 'exit' covers a normal end and process.exit(); a terminal's SIGINT reaches the watchers in our process group.
  process.once('exit', stopContainerWatches);
}

/**
 * Watches container `name`, whose init has pid `pid` (the pid the lab recorded for it). Its `exit` fires with the
 * container's exit code only when `docker wait` printed one: a watcher that ends because the engine stopped
 * answering, or the container was removed, says nothing (no exit of the container was seen).
 */
export function watchContainer(name: string, pid: number): ContainerWatch {
  const listeners: ExitListener[] = [];
  const proc = spawn('docker', ['wait', name], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const ended = new Promise<void>((resolve) => {
    proc.once('error', () => {
      watchers.delete(proc);
      resolve();
    });
    proc.once('close', (status: number | null) => {
      watchers.delete(proc);
      const printed = out.trim();
      // `docker wait` prints the exit code and exits 0; an error (engine gone, no such container) exits non-zero.
      if (status === 0 && /^\d+$/.test(printed)) for (const l of listeners) l(Number(printed), null);
      resolve();
    });
  });
  if (proc.pid !== undefined) {
    watchers.add(proc);
    killOnExit();
    // Neither the process nor its pipe keeps the event loop (and so the `lab` command) alive.
    proc.unref();
    (proc.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  }
  return {
    pid,
    watcherPid: proc.pid,
    ended,
    once(_event, listener) {
      listeners.push(listener);
      return this;
    },
  };
}
