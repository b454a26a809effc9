/**
 * The in-memory host setup.test.ts runs backend setup, teardown and status against (test-only: excluded from the
 * build by its `.test-helper.ts` name).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressText } from '@l4fleet/config';
import { parseAddress } from '@l4fleet/maglev';
import type { Exec } from '../exec.js';
import { toHex } from '../validate.js';

export const NETNS = 'net:[4026531840]';
/** Where hostDeps mounts the bpf file system. */
const BPFFS = '/sys/fs/bpf';
/** Above any pid_max (2^22): no process has it. */
export const DEAD_PID = 2 ** 31 - 1;
/** A host as a distribution leaves it: nothing as a backend needs it yet. */
export const PRISTINE = {
  'net/ipv4/conf/all/arp_ignore': '0',
  'net/ipv4/conf/all/arp_announce': '0',
  'net/ipv4/conf/all/rp_filter': '1',
  'net/ipv4/conf/eth0/rp_filter': '0',
};
export const INPUT = {
  vips: ['198.51.100.7', '2001:db8::7'],
  nodes: ['198.18.0.1'],
  forwarding: 'gue',
  interface: 'eth0',
};

/**
 * A host as ip, tc, sysctl and bpftool answer for it, in memory: `lo` holds addresses as the kernel prints them
 * (canonical text), paths exist once made, sysctls (default: already as a backend needs them) are read and written,
 * the clsact qdisc and our filter come and go, `ls` lists what is under a directory. A delete of what is not there
 * fails as the kernel or coreutils
 * answer it (`ip addr del`, `tc qdisc del`, `tc filter del`, `rmdir`), and so does an add of what is. `hang(prefix)` makes the next command starting with `prefix` wait
 * until released (a setup stopped there, as by a kill); `reached` resolves when it gets there.
 * `maps` holds each pinned map's entries (path -> key hex -> value hex, as syncMaps writes them): `map dump` prints
 * them, `bpftool batch` applies its lines in order and, as bpftool does, stops at the first that fails, the ones
 * before it staying applied; `batch.failAt` (0-based, once) makes that line fail (ENOMEM, memlock, a kill).
 */
export function fakeHost(initialSysctls: Record<string, string> = {}) {
  const lo = new Map<string, string>(); // hex -> `address/prefixlen`, as `ip -j addr` prints it
  const paths = new Set<string>();
  const sysctls = new Map(Object.entries(initialSysctls));
  const tc = { clsact: false, filter: undefined as string | undefined };
  const hangs: { prefix: string; reached: () => void; release: Promise<void> }[] = [];
  const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
  const fail = (code: number, stderr: string) => ({ code, stdout: '', stderr: `${stderr}\n` });
  const maps = new Map<string, Map<string, string>>();
  const batch = { failAt: undefined as number | undefined };
  const unspaced = (bytes: string) => bytes.split(' ').join('');
  const spacedBytes = (h: string) => (h.match(/../g) ?? []).map((b) => `0x${b}`);
  const runBatch = (script: string) => {
    const lines = script.split('\n').filter((l) => l.trim() !== '');
    for (const [i, l] of lines.entries()) {
      if (batch.failAt === i) {
        batch.failAt = undefined;
        return fail(255, `Error: update failed: Cannot allocate memory\nError: processed ${i} commands`);
      }
      const m = /^map (update|delete) pinned (\S+) key hex ([0-9a-f ]+?)(?: value hex ([0-9a-f ]+))?$/.exec(l);
      if (!m) return fail(255, `Error: unrecognised batch line: ${l}`);
      const [, op, path, key, value] = m as unknown as [string, string, string, string, string | undefined];
      const entries = maps.get(path) ?? new Map<string, string>();
      maps.set(path, entries);
      if (op === 'update') entries.set(unspaced(key), unspaced(value ?? ''));
      else if (!entries.delete(unspaced(key))) return fail(255, 'Error: delete failed: No such file or directory');
    }
    return ok();
  };
  const under = (p: string) => [...paths].filter((x) => x.startsWith(`${p}/`));
  const hexOf = (cidr: string) => toHex(parseAddress(cidr.split('/')[0] as string).bytes);
  const exec: Exec = async (argv, input) => {
    const [cmd, ...args] = argv;
    const line = argv.join(' ');
    const h = hangs.findIndex((x) => line.startsWith(x.prefix));
    if (h >= 0) {
      const [x] = hangs.splice(h, 1);
      x?.reached();
      await x?.release;
    }
    if (cmd === 'readlink') return ok(`${NETNS}\n`);
    if (cmd === 'stat') return ok('bpf_fs\n');
    if (cmd === 'sysctl' && args[0] === '-n')
      return ok(
        `${args
          .slice(1)
          .map((k) => sysctls.get(k) ?? '2')
          .join('\n')}\n`,
      );
    if (cmd === 'sysctl' && args[0] === '-qw') {
      for (const kv of args.slice(1)) sysctls.set(kv.split('=')[0] as string, kv.split('=')[1] as string);
      return ok();
    }
    if (line === 'ip -j addr show dev lo') {
      return ok(
        JSON.stringify([
          { addr_info: [...lo.values()].map((c) => ({ local: c.split('/')[0], prefixlen: Number(c.split('/')[1]) })) },
        ]),
      );
    }
    if (cmd === 'ip' && args[0] === 'addr' && (args[1] === 'add' || args[1] === 'del')) {
      const cidr = args[2] as string;
      const hex = hexOf(cidr);
      if (args[1] === 'del') {
        if (!lo.has(hex)) return fail(2, 'RTNETLINK answers: Cannot assign requested address');
        lo.delete(hex);
      } else {
        if (lo.has(hex)) return fail(2, 'RTNETLINK answers: File exists');
        const p = parseAddress(cidr.split('/')[0] as string);
        lo.set(hex, `${addressText(p.family, p.bytes)}/${cidr.split('/')[1]}`);
      }
      return ok();
    }
    if (cmd === 'test') {
      // A directory exists while anything is under it (mkdir -p made its parents).
      const p = args[1] as string;
      return paths.has(p) || under(p).length > 0 ? ok() : fail(1, '');
    }
    if (cmd === 'ls') {
      // The names directly under the directory, one a line, as ls prints them when its output is not a terminal.
      const p = args.at(-1) as string;
      if (!paths.has(p) && under(p).length === 0) return fail(2, `ls: cannot access '${p}': No such file or directory`);
      const names = new Set(under(p).map((x) => x.slice(p.length + 1).split('/')[0] as string));
      return ok(
        [...names]
          .sort()
          .map((n) => `${n}\n`)
          .join(''),
      );
    }
    if (cmd === 'rmdir') {
      const p = args[0] as string;
      if (under(p).length > 0) return fail(1, `rmdir: failed to remove '${p}': Directory not empty`);
      if (!paths.delete(p)) return fail(1, `rmdir: failed to remove '${p}': No such file or directory`);
      return ok();
    }
    if (cmd === 'mkdir') {
      // -p: the directories it makes under the bpf file system (mounted, so never made) are there, each its own.
      const p = args.at(-1) as string;
      for (let i = p.indexOf('/', BPFFS.length + 1); i > 0; i = p.indexOf('/', i + 1)) paths.add(p.slice(0, i));
      paths.add(p);
    }
    if (line.startsWith('bpftool prog load')) paths.add(args[3] as string);
    if (cmd === 'rm') {
      for (const p of [...paths]) if (p.startsWith(args[1] as string)) paths.delete(p);
      for (const p of [...maps.keys()]) if (p.startsWith(args[1] as string)) maps.delete(p);
    }
    if (line.startsWith('bpftool -j map dump')) {
      const entries = [...(maps.get(args.at(-1) as string) ?? [])];
      return ok(JSON.stringify(entries.map(([k, v]) => ({ key: spacedBytes(k), value: spacedBytes(v) }))));
    }
    if (line === 'bpftool batch file -')
      return runBatch(typeof input === 'string' ? input : [...(input ?? [])].join(''));
    if (line.startsWith('bpftool -j prog show')) return ok('{"id":42}');
    if (line.startsWith('tc -j qdisc show')) return ok(JSON.stringify(tc.clsact ? [{ kind: 'clsact' }] : []));
    if (line.startsWith('tc -j filter show')) {
      const ingress = args.at(-1) === 'ingress' && tc.filter !== undefined;
      return ok(
        JSON.stringify(ingress ? [{ pref: 1, kind: 'bpf', options: { prog: { id: 42, name: 'l4fb_ingress' } } }] : []),
      );
    }
    const noQdisc = 'Error: Cannot find specified qdisc on specified device.';
    if (line.startsWith('tc qdisc add')) {
      if (tc.clsact) return fail(2, 'Error: Exclusivity flag on, cannot modify.');
      tc.clsact = true;
    }
    if (line.startsWith('tc qdisc del')) {
      if (!tc.clsact) return fail(2, noQdisc);
      Object.assign(tc, { clsact: false, filter: undefined });
    }
    if (line.startsWith('tc filter replace')) {
      if (!tc.clsact) return fail(2, noQdisc);
      tc.filter = args.at(-1);
    }
    if (line.startsWith('tc filter del')) {
      if (!tc.clsact) return fail(2, "Error: Parent Qdisc doesn't exists.");
      if (tc.filter === undefined) return fail(2, 'Error: Cannot find specified filter chain.');
      tc.filter = undefined;
    }
    return ok();
  };
  const hang = (prefix: string) => {
    let reached = () => {};
    let release = () => {};
    const at = new Promise<void>((r) => {
      reached = r;
    });
    hangs.push({
      prefix,
      reached: () => reached(),
      release: new Promise<void>((r) => {
        release = r;
      }),
    });
    return { reached: at, release: () => release() };
  };
  return { exec, lo, paths, sysctls, tc, maps, batch, hang };
}

export async function hostDeps(exec: Exec, cleanups: (() => Promise<unknown>)[]) {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-backend-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const objectPath = join(dir, 'backend.bpf.o');
  await writeFile(objectPath, 'not really an object');
  return { exec, bpffs: BPFFS, stateDir: join(dir, 'state'), objectPath };
}
