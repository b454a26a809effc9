/**
 * The backend program through Debian's own tools: bpftool loads native/bin/bpf/backend.bpf.o and pins the
 * program and its maps, writes the allow lists (one `bpftool batch` per change), and tc attaches the pinned
 * program to clsact ingress. Setup is a one-shot command with nothing to keep running, so no loader of our own.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { mustRun } from './host.js';
import { type BackendSetupOptions, FORWARDING_MODES } from './options.js';

/** Built by scripts/build-bpf.mjs from native/bpf/backend.bpf.c (same path from src/ and dist/). */
export const DEFAULT_BACKEND_OBJECT = fileURLToPath(new URL('../../native/bin/bpf/backend.bpf.o', import.meta.url));
/** The program's name in the object (SEC("tc") function); how a filter is recognised as ours. */
export const PROGRAM_NAME = 'l4fb_ingress';
/** Directory under the bpf file system holding one subdirectory per loaded object generation. */
export const PIN_BASE_NAME = 'l4fleet-backend';
/**
 * tc priority 1: decapsulation runs before any other ingress classifier, which then sees the client's packet as
 * if it had been routed here.
 */
export const TC_PREF = 1;
export const TC_HANDLE = 1;
/** backend.bpf.c: config.flags bit, allow-list values. */
const CFG_NO_SECOND_CHANCE = 1;
const SRC_NODE = 1;
const SRC_PEER = 2;

export interface BackendObject {
  readonly path: string;
  readonly sha256: string;
}

export async function readBackendObject(path: string): Promise<BackendObject> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    // Only a missing file means the package was built without clang; EACCES, EISDIR, EIO... have other causes.
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'missing (build @l4fleet/dataplane with clang: apt-get install clang llvm libbpf-dev, then npm run build)'
        : `cannot be read: ${code ?? (err as Error).message}`;
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `bpf object ${path}: ${why}`, { cause: err });
  }
  return { path, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Loads the object and pins the program at `<pinDir>/prog` and its maps under `<pinDir>/maps/`. */
export async function loadProgram(exec: Exec, object: BackendObject, pinDir: string): Promise<void> {
  await mustRun(exec, ['mkdir', '-p', pinDir]);
  await mustRun(exec, [
    'bpftool',
    'prog',
    'load',
    object.path,
    `${pinDir}/prog`,
    'type',
    'classifier',
    'pinmaps',
    `${pinDir}/maps`,
  ]);
}

export async function pinnedProgId(exec: Exec, pinDir: string): Promise<number> {
  const out = await mustRun(exec, ['bpftool', '-j', 'prog', 'show', 'pinned', `${pinDir}/prog`]);
  const id = (JSON.parse(out) as { id?: number }).id;
  if (typeof id !== 'number') throw new DataPlaneError('BACKEND_SETUP_FAILED', `${pinDir}/prog: no program id`);
  return id;
}

/** Attaches (or atomically replaces) our filter at clsact ingress, priority TC_PREF. */
export async function attachFilter(exec: Exec, ifname: string, pinDir: string): Promise<void> {
  await mustRun(exec, [
    'tc',
    'filter',
    'replace',
    'dev',
    ifname,
    'ingress',
    'pref',
    String(TC_PREF),
    'handle',
    String(TC_HANDLE),
    'bpf',
    'direct-action',
    'object-pinned',
    `${pinDir}/prog`,
  ]);
}

export async function detachFilter(exec: Exec, ifname: string): Promise<void> {
  await mustRun(exec, ['tc', 'filter', 'del', 'dev', ifname, 'ingress', 'pref', String(TC_PREF)]);
}

/** What the maps should hold: key hex -> value hex per map (hex without separators). */
export type MapContents = ReadonlyMap<string, ReadonlyMap<string, string>>;

const hex = (b: Uint8Array | number[]): string => Buffer.from(b).toString('hex');

export function desiredMaps(opts: BackendSetupOptions): MapContents {
  const modes = opts.forwarding.reduce((m, f) => m | (1 << FORWARDING_MODES.indexOf(f)), 0);
  // struct config { __u32 modes (host order, little endian on x86/arm64); __be16 gue_port; __u16 flags; }
  const config = Buffer.alloc(8);
  config.writeUInt32LE(modes, 0);
  config.writeUInt16BE(opts.guePort, 4);
  config.writeUInt16LE(opts.secondChance ? 0 : CFG_NO_SECOND_CHANCE, 6);
  const set = (list: BackendSetupOptions['vips'], family: 4 | 6) =>
    new Map(list.filter((a) => a.family === family).map((a) => [a.hex, '01']));
  // The allow lists' value: SRC_NODE 1 | SRC_PEER 2 (a peer's packets are never forwarded again).
  const sources = (family: 4 | 6) => {
    const m = new Map<string, number>();
    for (const a of opts.nodes) if (a.family === family) m.set(a.hex, SRC_NODE);
    for (const a of opts.peers) if (a.family === family) m.set(a.hex, (m.get(a.hex) ?? 0) | SRC_PEER);
    return new Map([...m].map(([k, v]) => [k, v.toString(16).padStart(2, '0')]));
  };
  return new Map([
    ['l4fb_config', new Map([['00000000', hex(config)]])],
    ['l4fb_nodes4', sources(4)],
    ['l4fb_nodes6', sources(6)],
    ['l4fb_vips4', set(opts.vips, 4)],
    ['l4fb_vips6', set(opts.vips, 6)],
  ]);
}

async function dumpMap(exec: Exec, path: string): Promise<Map<string, string>> {
  const out = await mustRun(exec, ['bpftool', '-j', 'map', 'dump', 'pinned', path]);
  const entries = JSON.parse(out) as { key: string[]; value: string[] }[];
  return new Map(entries.map((e) => [e.key.map((b) => b.slice(2)).join(''), e.value.map((b) => b.slice(2)).join('')]));
}

const spaced = (h: string): string => h.match(/../g)?.join(' ') ?? '';

/** Brings the pinned maps to `desired` with one `bpftool batch`; returns how many entries it wrote or deleted. */
export async function syncMaps(exec: Exec, pinDir: string, desired: MapContents): Promise<number> {
  const lines: string[] = [];
  for (const [name, want] of desired) {
    const path = `${pinDir}/maps/${name}`;
    const have = await dumpMap(exec, path);
    for (const key of have.keys()) {
      // Arrays cannot delete: the config slot is only ever overwritten.
      if (!want.has(key) && name !== 'l4fb_config') lines.push(`map delete pinned ${path} key hex ${spaced(key)}`);
    }
    for (const [key, value] of want) {
      if (have.get(key) !== value) {
        lines.push(`map update pinned ${path} key hex ${spaced(key)} value hex ${spaced(value)}`);
      }
    }
  }
  if (lines.length > 0) await mustRun(exec, ['bpftool', 'batch', 'file', '-'], `${lines.join('\n')}\n`);
  return lines.length;
}

export async function counterDump(exec: Exec, pinDir: string): Promise<string> {
  return mustRun(exec, ['bpftool', '-j', 'map', 'dump', 'pinned', `${pinDir}/maps/l4fb_counters`]);
}
