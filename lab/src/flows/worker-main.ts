/**
 * Entry point of the flow worker, started by FlowRun inside the client namespace:
 *   node flows/worker-main.js --tcp 198.51.100.10:80 --udp 198.51.100.11:7000 --tcp-flows 200 --udp-flows 50
 * Reads JSON commands (WorkerCommand) on stdin, writes one JSON WorkerReport per line on stdout every --report-ms.
 * Stops on the `stop` command, SIGTERM, or the end of stdin (its lab command is gone).
 */
import { createInterface } from 'node:readline';
import type { FlowTarget, WorkerCommand } from './types.js';
import { FlowWorker } from './worker.js';

function target(protocol: 'tcp' | 'udp', text: string | undefined): FlowTarget | undefined {
  if (!text) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const address = m?.[1] ?? m?.[2];
  if (!m || !address) throw new Error(`--${protocol} "${text}" is not ADDRESS:PORT`);
  return { protocol, address, port: Number(m[3]) };
}

const args = new Map<string, string>();
const argv = process.argv.slice(2);
for (let i = 0; i + 1 < argv.length; i += 2) args.set(argv[i] ?? '', argv[i + 1] ?? '');
const num = (k: string, d: number) => (args.has(k) ? Number(args.get(k)) : d);

const worker = new FlowWorker({
  tcp: target('tcp', args.get('--tcp')),
  udp: target('udp', args.get('--udp')),
  intervalMs: num('--interval-ms', 50),
  brokenAfterMs: num('--broken-after-ms', 15_000),
});
worker.open(num('--tcp-flows', 0), num('--udp-flows', 0));
const write = () => process.stdout.write(`${JSON.stringify(worker.report())}\n`);
const timer = setInterval(write, num('--report-ms', 500));

/** Time for the final report to be written before the worker exits without it. */
const STOP_EXIT_MS = 2_000;
let stopping = false;

/**
 * The `stop` command, SIGTERM, or stdin closing: the last is how a worker learns that its lab command died without
 * stopping it (killed outright). In a process group of its own (run.ts), nothing else would end it.
 */
function stop(): void {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  // The final report goes to a parent that may be gone or not reading: the worker exits without it after a bound.
  setTimeout(() => process.exit(0), STOP_EXIT_MS);
  process.stdout.write(`${JSON.stringify(worker.stop())}\n`, () => process.exit(0));
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === '') return;
  const c = JSON.parse(line) as WorkerCommand;
  if (c.cmd === 'open') worker.open(c.tcp ?? 0, c.udp ?? 0);
  else if (c.cmd === 'mark') {
    worker.mark();
    write();
  } else if (c.cmd === 'stop') stop();
});
process.stdin.on('end', stop);
process.on('SIGTERM', stop);
