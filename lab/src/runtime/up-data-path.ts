/**
 * The data path `lab up` runs (issue 14). Default on the netns runtime in agent mode: bpf nodes at tc ingress,
 * backends on their own subnet behind the router, GUE to them (DEFAULT_DATA_PATH). nftables with backends on the
 * nodes' segment where bpf cannot run: the Docker runtime (its images carry no bpf objects or bpf file system) and
 * static mode (no agent to drive a data plane). Without the bpf objects (built without clang) the netns default falls
 * back to nftables with one notice saying why and how to get bpf: the quick start installs clang, so a new user
 * missing it still gets a working lab and is told what they miss. Asked explicitly (`--dataplane bpf`, an
 * encapsulation, routed backends), missing objects are an error naming the file. Pure: what is built comes in.
 */
import { LabError } from '../errors.js';
import {
  type DataPathOptions,
  dataPathOf,
  impliedDataPlane,
  type LabDataPath,
  type LabDataPlane,
} from '../topology/data-path.js';
import type { LabMode, Runtime } from './state.js';

export interface UpDataPathContext {
  readonly runtime: Runtime;
  readonly mode: LabMode;
  /**
   * A file of the bpf data plane that is missing (the loader, the node or the backend object: `bpfAvailable()` of
   * @l4fleet/dataplane); undefined when all are built.
   */
  readonly bpfMissing: string | undefined;
}

export interface UpDataPath {
  readonly dataPath: LabDataPath;
  /** One line for the user when the default fell back to nftables (bpf not built); undefined otherwise. */
  readonly notice: string | undefined;
}

/** How to get the bpf data plane (packages/dataplane/scripts/build-bpf.mjs builds it when clang is there). */
export const BPF_BUILD_HINT =
  'install clang llvm libbpf-dev libelf-dev bpftool (bash scripts/install-system-deps.sh), then npm run build';

/** Where only nftables with backends on the segment runs; undefined where the default (bpf) can. */
function nftablesOnly(ctx: UpDataPathContext): string | undefined {
  if (ctx.runtime !== 'netns') {
    return `the ${ctx.runtime} runtime runs nftables nodes with l2 backends only; use --runtime netns`;
  }
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
      notice = `bpf data plane not built (${ctx.bpfMissing} missing), so this lab runs nftables with backends on the nodes' segment; for the default (bpf, routed backends, gue) ${BPF_BUILD_HINT} and run lab down, lab up again; --dataplane nftables silences this`;
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
      `${asked(dataPath)}: the bpf data plane is not built (${ctx.bpfMissing} missing); ${BPF_BUILD_HINT}, or use --dataplane nftables`,
    );
  }
  return { dataPath, notice };
}
