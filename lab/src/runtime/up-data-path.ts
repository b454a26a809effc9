/**
 * The data path `lab up` runs (issue 14). Default in agent mode, on either runtime: bpf nodes at tc ingress,
 * backends on their own subnet behind the router, GUE to them (DEFAULT_DATA_PATH). nftables with backends on the
 * nodes' segment where bpf cannot run: static mode (no agent to drive a data plane). Without the bpf data plane (the
 * objects not built without clang; on the Docker runtime also an agent image built without it) the default falls
 * back to nftables with one notice saying why and how to get bpf: the quick start installs clang, so a new user
 * missing it still gets a working lab and is told what they miss. Asked explicitly (`--dataplane bpf`, an
 * encapsulation, routed backends), a missing part is an error naming it. Pure: what is built comes in.
 */
import { LabError } from '../errors.js';
import {
  type DataPathOptions,
  dataPathOf,
  impliedDataPlane,
  type LabDataPath,
  type LabDataPlane,
} from '../topology/data-path.js';
import type { LabMode } from './state.js';

/** A part of the bpf data plane that is missing, and how to get it. */
export interface BpfMissing {
  /** The file (the loader, the node or the backend object: `bpfAvailable()` of @l4fleet/dataplane) or image part. */
  readonly what: string;
  readonly hint: string;
}

export interface UpDataPathContext {
  readonly mode: LabMode;
  /** Undefined when the bpf data plane can run (on this machine and, for Docker, in the agent image). */
  readonly bpfMissing: BpfMissing | undefined;
}

export interface UpDataPath {
  readonly dataPath: LabDataPath;
  /** One line for the user when the default fell back to nftables (bpf not built); undefined otherwise. */
  readonly notice: string | undefined;
}

/** How to get the bpf data plane (packages/dataplane/scripts/build-bpf.mjs builds it when clang is there). */
export const BPF_BUILD_HINT =
  'install clang llvm libbpf-dev libelf-dev bpftool (bash scripts/install-system-deps.sh), then npm run build';

/** A file of the bpf data plane not built on this machine. */
export function bpfNotBuilt(file: string): BpfMissing {
  return { what: file, hint: BPF_BUILD_HINT };
}

/** Where only nftables with backends on the segment runs; undefined where the default (bpf) can. */
function nftablesOnly(ctx: UpDataPathContext): string | undefined {
  if (ctx.mode !== 'agent') return `${ctx.mode} mode has no agent to drive a data plane; use --mode agent`;
  return undefined;
}

function asked(p: LabDataPath): string {
  return `--dataplane ${p.dataplane} --backend-network ${p.backendNetwork} --forwarding ${p.forwarding}`;
}

/**
 * The data path for `options` in `ctx`, or a LabError (RUNTIME_UNSUPPORTED, BPF_UNAVAILABLE, OPTION_INVALID) that
 * names the options and what is missing; nothing is made before this.
 */
export function upDataPath(options: DataPathOptions, ctx: UpDataPathContext): UpDataPath {
  let dataplane: LabDataPlane | undefined = options.dataplane ?? impliedDataPlane(options);
  let notice: string | undefined;
  if (dataplane === undefined) {
    if (nftablesOnly(ctx) !== undefined) dataplane = 'nftables';
    else if (ctx.bpfMissing !== undefined) {
      dataplane = 'nftables';
      const { what, hint } = ctx.bpfMissing;
      notice = `bpf data plane not built (${what} missing), so this lab runs nftables with backends on the nodes' segment; for the default (bpf, routed backends, gue) ${hint} and run lab down, lab up again; --dataplane nftables silences this`;
    } else dataplane = 'bpf';
  }
  const dataPath = dataPathOf({ ...options, dataplane });
  const { dataplane: d, backendNetwork, forwarding } = dataPath;
  if (d === 'nftables' && backendNetwork === 'l2' && forwarding === 'l2') return { dataPath, notice };
  const refused = nftablesOnly(ctx);
  if (refused !== undefined) throw new LabError('RUNTIME_UNSUPPORTED', `${asked(dataPath)}: ${refused}`);
  if (d === 'bpf' && ctx.bpfMissing !== undefined) {
    throw new LabError(
      'BPF_UNAVAILABLE',
      `${asked(dataPath)}: the bpf data plane is not built (${ctx.bpfMissing.what} missing); ${ctx.bpfMissing.hint}, or use --dataplane nftables`,
    );
  }
  return { dataPath, notice };
}
