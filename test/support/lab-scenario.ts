/**
 * What the lab's scenario tests share (test/lab-e2e.int.test.ts, test/lab-faults.int.test.ts): the `l4fleet` CLI
 * against the lab's etcd, the flows broken so far, and one step's disruption table.
 */
import { cliBin, disruptionTable, type FlowRun, type FlowSummary, type Lab, type RunResult, run } from '@l4fleet/lab';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const CLI_TIMEOUT_MS = 30_000;

/** `l4fleet --etcd <every member> ...`; a non-zero exit throws unless `allowFailure`. */
export function l4fleetRun(
  lab: Lab,
  args: readonly string[],
  opts: { allowFailure?: boolean } = {},
): Promise<RunResult> {
  const etcd = lab.topology.control.etcdEndpoints.join(',');
  return run([process.execPath, cliBin(), '--etcd', etcd, ...args], {
    timeoutMs: CLI_TIMEOUT_MS,
    allowFailure: opts.allowFailure ?? false,
  });
}

/** stdout of `l4fleet --etcd <every member> ...`; throws on a non-zero exit. */
export async function l4fleet(lab: Lab, ...args: string[]): Promise<string> {
  return (await l4fleetRun(lab, args)).stdout;
}

export function brokenIds(flows: FlowRun): Set<number> {
  return new Set(flows.report.flows.filter((f) => f.state === 'broken').map((f) => f.id));
}

/** Settles, prints the step's disruption table, returns the summary and the flows broken during the step. */
export async function step(
  flows: FlowRun,
  name: string,
  before: Set<number>,
  settleMs: number,
): Promise<{ s: FlowSummary; broken: number[] }> {
  await sleep(settleMs);
  const s = await flows.summary();
  console.log(disruptionTable(name, s));
  const broken = [...brokenIds(flows)].filter((i) => !before.has(i));
  return { s, broken };
}
