/** The data plane's one seam to programs (nft, ip): injected, so unit tests record instead of running. */
import { type RunResult, run } from '@l4fleet/process';

export type ExecResult = RunResult;

/** Runs `argv`, feeding `input` on stdin; resolves with the exit code (never rejects on a non-zero exit). */
export type Exec = (argv: readonly string[], input?: string) => Promise<ExecResult>;

/** A wedged nft must not hang the agent; a healthy one takes milliseconds. */
const KILL_AFTER_MS = 30_000;

/**
 * `nsenter --net` rather than `ip netns exec`: it only switches the network namespace and does not
 * remount /sys, which saves a few milliseconds on every delta.
 */
export function createExec(netns?: string): Exec {
  return (argv, input) =>
    run(argv, {
      namespace: netns,
      enter: 'nsenter',
      allowFailure: true,
      timeoutMs: KILL_AFTER_MS,
      ...(input === undefined ? {} : { input }),
    });
}
