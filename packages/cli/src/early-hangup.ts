/**
 * SIGHUP around the agent's run. `systemctl reload` may come at any moment after the start, also while the program's
 * modules load (hundreds of ms), while agent.yaml is read, and while the command ends; Node's default for SIGHUP is
 * to exit, and systemd counts a SIGHUP death as clean, so Restart=on-failure would leave the node without its agent
 * (or hide the exit code of a start that failed). bin.ts holds SIGHUP from its first line to the process's end: it
 * is ignored (said once) whenever no other handler is there; while the agent command's own handler is installed,
 * that one alone acts.
 */

let held: (() => void) | undefined;
/** Set by the node agent command's action: only its run ends with process.exit (bin.ts). */
let agentCommand = false;

/** The node agent command runs: bin.ts keeps SIGHUP held to the end and ends the process itself. */
export function markAgentCommand(): void {
  agentCommand = true;
}

export function agentCommandRan(): boolean {
  return agentCommand;
}

/** Ignores SIGHUP until releaseEarlyHangup(), writing one log line (JSON, as the agent logs) the first time. */
export function holdEarlyHangup(write: (line: string) => void = (l) => process.stdout.write(l)): void {
  if (held !== undefined) return;
  let said = false;
  held = () => {
    // Another handler (the running agent's) answers it; this one only keeps Node's default away.
    if (said || process.listenerCount('SIGHUP') > 1) return;
    said = true;
    const line = { level: 40, time: Date.now(), event: 'signal', signal: 'SIGHUP' };
    write(`${JSON.stringify({ ...line, action: 'ignored: the agent is not running (starting or exiting)' })}\n`);
  };
  process.on('SIGHUP', held);
}

/** Gives SIGHUP back to Node's default (exit), for a command that has no use for it. */
export function releaseEarlyHangup(): void {
  if (held === undefined) return;
  process.off('SIGHUP', held);
  held = undefined;
}
