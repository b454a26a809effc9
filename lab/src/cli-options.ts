/** `l4fleet-lab`'s option readers and its `up` summary (cli.ts builds the commands). */
import type { Command } from 'commander';
import { LabError } from './errors.js';
import type { LabStatus } from './runtime/status.js';
import { UP_OPTION_FLAGS } from './runtime/up-conflicts.js';
import type { LabDataPath } from './topology/data-path.js';
import { isLabId, LAB_ID_RULE } from './topology/lab-id.js';
import { DEFAULT_LAB_ID } from './topology/model.js';

/**
 * Flows per protocol at most: each takes a local port from Linux's default ephemeral range 32768-60999
 * (net.ipv4.ip_local_port_range), so more could never all be open at once.
 */
export const MAX_FLOWS = 60_999 - 32_768 + 1;

/**
 * A whole-number option: digits only (Number() would take '' and ' ' as 0, and 0x1f, 1e3), at most `max` where the
 * option has a bound of its own; counts the topology bounds are checked there (model.ts).
 */
export function int(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
      throw new LabError('OPTION_INVALID', `--${name} "${v}" is not a whole number`);
    }
    if (n > max) throw new LabError('OPTION_INVALID', `--${name} ${n} is more than ${max}`);
    return n;
  };
}

export function dataPathLine(p: LabDataPath): string {
  return `data plane ${p.dataplane}, backends ${p.backendNetwork === 'routed' ? 'routed (behind the router)' : "on the nodes' segment"}, forwarding ${p.forwarding}`;
}

/**
 * What `lab up` prints once the lab is up. The status hint goes through npx: the workspace's `l4fleet` bin is not on
 * a new user's PATH (the README's commands use `npx l4fleet` too).
 */
export function upSummary(s: LabStatus): string[] {
  const etcd = s.etcd.endpoints.join(',');
  return [
    `lab "${s.id}" is up (${s.runtime}, ${s.mode} mode): ${s.nodes.length} nodes, ${s.backends.length} backends`,
    dataPathLine(s.dataPath),
    `etcd: ${etcd}`,
    `try: export L4FLEET_ETCD=${etcd}; npx l4fleet status`,
    ...(s.dashboard ? [`dashboard: ${s.dashboard.url} (write token in ${s.dashboard.tokenFile})`] : []),
    ...s.vips.map((v) => `vip ${v.protocol} ${v.address} port ${v.port}`),
  ];
}

/** The `up` flags given on the command line (or, for the control slot, by its env default). */
export function givenUpOptions(cmd: Command): Set<string> {
  const given = new Set<string>();
  for (const flag of UP_OPTION_FLAGS) {
    const attribute = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (cmd.getOptionValueSource(attribute) === 'cli') given.add(flag);
  }
  const envSlot = process.env.L4FLEET_LAB_CONTROL_SLOT;
  if (envSlot !== undefined && envSlot !== '') given.add('control-slot');
  return given;
}

/**
 * The lab id of every command: --id, else L4FLEET_LAB_ID (empty is unset), else the default; checked here for every
 * command (not only `up`'s topology): the id names the state directory `down` removes, so `--id ..` would remove the
 * state root's parent (as root, `/run`).
 */
export function labId(cmd: Command): string {
  const option = (cmd.optsWithGlobals() as { id?: string }).id;
  const env = process.env.L4FLEET_LAB_ID;
  const [id, from] =
    option !== undefined
      ? [option, '--id']
      : env !== undefined && env !== ''
        ? [env, 'L4FLEET_LAB_ID']
        : [DEFAULT_LAB_ID, 'lab id'];
  if (!isLabId(id)) throw new LabError('OPTION_INVALID', `${from} "${id}" is not a lab id: it must be ${LAB_ID_RULE}`);
  return id;
}

/** Labs side by side need their own control network: the env default lets scripts pick one for every `up`. */
export function controlSlotDefault(): number {
  const env = process.env.L4FLEET_LAB_CONTROL_SLOT;
  return env === undefined || env === '' ? 0 : int('control-slot (env L4FLEET_LAB_CONTROL_SLOT)')(env);
}
