/**
 * `up` on a lab that is already up and healthy leaves it as it is, so options asked for that the lab does not have
 * would go unheard (`up --nodes 3 --dataplane nftables` on a 2-node bpf lab printing the 2-node lab): they are
 * refused, each named with both values. Only options given count: the command line's defaults are not asked for.
 */
import { LabError } from '../errors.js';
import type { LabBfd, TopologyOptions } from '../topology/model.js';
import type { LabMode, LabState, Runtime } from './state.js';

/** The options compared, by their command-line names (what `given` holds). */
export const UP_OPTION_FLAGS = [
  'nodes',
  'backends',
  'clients',
  'etcd-members',
  'control-slot',
  'bfd',
  'bfd-interval-ms',
  'bfd-multiplier',
  'dataplane',
  'backend-network',
  'forwarding',
  'mode',
  'runtime',
] as const;

export interface UpAsked extends TopologyOptions {
  mode?: LabMode | 'auto';
  runtime?: Runtime;
  /**
   * The flags (UP_OPTION_FLAGS) the user gave; the others hold defaults and never count as asked for. Default: every
   * option that is set (a program calling Lab.up asks for what it passes; `bfd` once the key is there).
   */
  given?: ReadonlySet<string>;
}

const bfdText = (b: LabBfd | undefined) => (b ? `BFD ${b.intervalMs} ms x ${b.multiplier}` : 'no BFD');

/** "--flag asked (the lab has value)" for every option asked for that the running lab (`state`) does not have. */
export function upConflicts(state: LabState, asked: UpAsked): string[] {
  const b = asked.bfd;
  // [flag, asked, the lab's]; asked undefined: not an option this call sets.
  const compared: [string, string | number | undefined, string | number][] = [
    ['nodes', asked.nodes, state.nodeIndexes.length],
    ['backends', asked.backends, state.backends],
    ['clients', asked.clients, state.clients],
    ['etcd-members', asked.etcdMembers, state.etcdMembers ?? 1],
    ['control-slot', asked.controlSlot, state.controlSlot],
    ['bfd', 'bfd' in asked ? bfdText(b) : undefined, bfdText(state.bfd)],
    ['bfd-interval-ms', b?.intervalMs, state.bfd?.intervalMs ?? bfdText(undefined)],
    ['bfd-multiplier', b?.multiplier, state.bfd?.multiplier ?? bfdText(undefined)],
    // A state from before the lab had data paths ran nftables with l2 backends.
    ['dataplane', asked.dataplane, state.dataplane ?? 'nftables'],
    ['backend-network', asked.backendNetwork, state.backendNetwork ?? 'l2'],
    ['forwarding', asked.forwarding, state.forwarding ?? 'l2'],
    ['mode', asked.mode === 'auto' ? undefined : asked.mode, state.mode],
    ['runtime', asked.runtime, state.runtime],
  ];
  const given = asked.given;
  const out: string[] = [];
  for (const [flag, want, have] of compared) {
    if (want === undefined || want === have) continue;
    // --no-bfd is the flag `bfd` given; timers given alone are compared as timers.
    if (given !== undefined && !given.has(flag)) continue;
    if (given === undefined && flag === 'bfd' && b !== undefined) continue;
    out.push(flag === 'bfd' ? `--no-bfd (the lab has ${have})` : `--${flag} ${want} (the lab has ${have})`);
  }
  return out;
}

/** Throws OPTION_INVALID naming every option asked for that the running lab `state` does not have. */
export function refuseUpConflicts(state: LabState, asked: UpAsked): void {
  const conflicts = upConflicts(state, asked);
  if (conflicts.length === 0) return;
  throw new LabError(
    'OPTION_INVALID',
    `lab "${state.id}" is up with other options: ${conflicts.join(', ')}; run lab down --id ${state.id} first to build it with them`,
  );
}
