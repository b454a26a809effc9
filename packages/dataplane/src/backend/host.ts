/**
 * What `backend setup` reads and changes on the host, each through the injected Exec (so it works in a named
 * network namespace, and unit tests can record): tools, the bpf file system, the interface, sysctls, the
 * addresses on `lo`, and the tc clsact qdisc and ingress filters.
 */
import { addressText } from '@l4fleet/config';
import { parseAddress } from '@l4fleet/maglev';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { toHex } from '../validate.js';

/** Runs argv; a non-zero exit throws BACKEND_SETUP_FAILED naming the command and its stderr. */
export async function mustRun(exec: Exec, argv: readonly string[], input?: string): Promise<string> {
  const r = await exec(argv, input);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ');
    throw new DataPlaneError('BACKEND_SETUP_FAILED', `${argv.join(' ')}: exit ${r.code}: ${why}`);
  }
  return r.stdout;
}

function json<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new DataPlaneError('BACKEND_SETUP_FAILED', `${what}: unreadable JSON output`, { cause: err });
  }
}

/** Debian package per tool, for the error message. */
const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  tc: 'iproute2',
  bpftool: 'bpftool',
  sysctl: 'procps',
  stat: 'coreutils',
  readlink: 'coreutils',
};

export async function requireTools(exec: Exec, tools: readonly string[]): Promise<void> {
  const r = await exec(['sh', '-c', tools.map((t) => `command -v ${t} >/dev/null || echo ${t}`).join('; ')]);
  const missing = r.stdout.split('\n').filter(Boolean);
  if (missing.length > 0) {
    throw new DataPlaneError(
      'BACKEND_HOST_UNSUITABLE',
      missing.map((t) => `${t}: not found on PATH (apt-get install ${TOOL_PACKAGES[t] ?? t})`).join('\n'),
    );
  }
}

/** `net:[inode]` of the namespace the commands run in. */
export async function netnsId(exec: Exec): Promise<string> {
  return (await mustRun(exec, ['readlink', '/proc/self/ns/net'])).trim();
}

/** Throws unless `dir` is a mounted bpf file system (bpftool would otherwise mount one there by itself). */
export async function requireBpffs(exec: Exec, dir: string): Promise<void> {
  const r = await exec(['stat', '-f', '-c', '%T', dir]);
  const type = r.stdout.trim();
  if (r.code !== 0 || type !== 'bpf_fs') {
    throw new DataPlaneError(
      'BACKEND_HOST_UNSUITABLE',
      `--bpffs ${dir}: ${r.code !== 0 ? 'does not exist' : `is ${type}, not a bpf file system`} ` +
        `(mount one: mount -t bpf bpf ${dir})`,
    );
  }
}

export async function requireInterface(exec: Exec, name: string): Promise<void> {
  const r = await exec(['ip', '-j', 'link', 'show', 'dev', name]);
  if (r.code !== 0) throw new DataPlaneError('INTERFACE_UNKNOWN', `--interface ${name}: no such interface`);
}

/** The interface of the IPv4 default route, else of the IPv6 one. */
export async function defaultInterface(exec: Exec): Promise<string> {
  for (const family of ['-4', '-6']) {
    const routes = json<{ dev?: string }[]>(
      await mustRun(exec, ['ip', family, '-j', 'route', 'show', 'default']),
      'ip route show default',
    );
    const dev = routes.find((r) => r.dev !== undefined)?.dev;
    if (dev !== undefined) return dev;
  }
  throw new DataPlaneError(
    'INTERFACE_UNKNOWN',
    '--interface: not given, and there is no default route to take it from (pass --interface IF)',
  );
}

/** Current values of sysctl keys (slash form), in order; a key that does not exist throws. */
export async function sysctlGet(exec: Exec, keys: readonly string[]): Promise<string[]> {
  const out = await mustRun(exec, ['sysctl', '-n', ...keys]);
  const values = out.split('\n').slice(0, keys.length);
  if (values.length !== keys.length) {
    throw new DataPlaneError('BACKEND_SETUP_FAILED', `sysctl -n ${keys.join(' ')}: ${values.length} values`);
  }
  return values.map((v) => v.trim());
}

export async function sysctlSet(exec: Exec, pairs: readonly (readonly [string, string])[]): Promise<void> {
  if (pairs.length > 0) await mustRun(exec, ['sysctl', '-qw', ...pairs.map(([k, v]) => `${k}=${v}`)]);
}

/**
 * `address/prefixlen` in the text loopbackAddresses() gives for it (the kernel's: RFC 5952 for IPv6), so a record
 * written from the address as typed (`2001:DB8::1/128`, before 2026-12-05) still matches; unparsable text is kept.
 */
export function canonicalCidr(cidr: string): string {
  const [address, prefixlen] = cidr.split('/');
  try {
    const p = parseAddress(address as string);
    return `${addressText(p.family, p.bytes)}/${prefixlen}`;
  } catch {
    return cidr;
  }
}

/** Addresses on `lo`: address bytes in hex -> `address/prefixlen` as the kernel prints it. */
export async function loopbackAddresses(exec: Exec): Promise<Map<string, string>> {
  const links = json<{ addr_info?: { local?: string; prefixlen?: number }[] }[]>(
    await mustRun(exec, ['ip', '-j', 'addr', 'show', 'dev', 'lo']),
    'ip addr show dev lo',
  );
  const out = new Map<string, string>();
  for (const a of links[0]?.addr_info ?? []) {
    if (a.local === undefined || a.prefixlen === undefined) continue;
    out.set(toHex(parseAddress(a.local).bytes), `${a.local}/${a.prefixlen}`);
  }
  return out;
}

export interface TcFilter {
  readonly pref: number;
  readonly kind: string;
  readonly progName?: string;
  readonly progId?: number;
}

export async function hasClsact(exec: Exec, ifname: string): Promise<boolean> {
  const qdiscs = json<{ kind?: string }[]>(
    await mustRun(exec, ['tc', '-j', 'qdisc', 'show', 'dev', ifname]),
    'tc qdisc show',
  );
  return qdiscs.some((q) => q.kind === 'clsact');
}

/** Filters on the clsact `ingress` or `egress` hook (tc prints each priority once bare, once with options). */
export async function tcFilters(exec: Exec, ifname: string, hook: 'ingress' | 'egress'): Promise<TcFilter[]> {
  const r = await exec(['tc', '-j', 'filter', 'show', 'dev', ifname, hook]);
  if (r.code !== 0) return []; // no clsact qdisc: no filters
  const raw = json<{ pref?: number; kind?: string; options?: { prog?: { id?: number; name?: string } } }[]>(
    r.stdout || '[]',
    'tc filter show',
  );
  const byPref = new Map<number, TcFilter>();
  for (const f of raw) {
    if (f.pref === undefined) continue;
    const prog = f.options?.prog;
    const prev = byPref.get(f.pref);
    if (prev?.progId !== undefined) continue;
    byPref.set(f.pref, {
      pref: f.pref,
      kind: f.kind ?? '?',
      ...(prog?.name === undefined ? {} : { progName: prog.name }),
      ...(prog?.id === undefined ? {} : { progId: prog.id }),
    });
  }
  return [...byPref.values()];
}
