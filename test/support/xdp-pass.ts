/**
 * An XDP_PASS program for the far end of a veth whose near end runs the node's XDP fast path: a veth delivers the
 * frames its peer sends by XDP_TX only when it runs an XDP program itself (xdp-pass.bpf.c). Used by the XDP
 * tests and the bench; a NIC needs nothing of the kind.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsHost } from './netns.js';

const SOURCE = fileURLToPath(new URL('./xdp-pass.bpf.c', import.meta.url));

/** Compiles xdp-pass.bpf.c into `dir` (clang -target bpf) and returns the object's path. */
export function buildXdpPass(dir: string): string {
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout?.trim() || 'x86_64-linux-gnu';
  const obj = `${dir}/xdp-pass.o`;
  const cc = spawnSync('clang', ['-O2', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', SOURCE, '-o', obj]);
  if (cc.status !== 0) throw new Error(`clang ${SOURCE}: ${cc.stderr.toString()}`);
  return obj;
}

/**
 * Attaches the pass program (`obj` from buildXdpPass) to `dev` in native mode, or detaches it (obj undefined).
 *
 * iproute2 loads an object with libbpf and first sets up its pin directories (tc/globals, ip, xdp) on a bpf file
 * system: /sys/fs/bpf, else the first one in /proc/mounts, which in a netns without /sys/fs/bpf may be another
 * test's (backend-host's teardown check saw them appear in its own). TC_BPF_MNT names a directory of ours instead;
 * iproute2 mounts a bpf file system there inside `ip netns exec`'s mount namespace, gone when the command ends.
 */
export async function xdpPass(host: NetnsHost, dev: string, obj: string | undefined): Promise<void> {
  const own = obj === undefined ? [] : ['env', `TC_BPF_MNT=${iproute2Bpffs(obj)}`];
  await host.run([
    ...own,
    'ip',
    'link',
    'set',
    'dev',
    dev,
    'xdpdrv',
    ...(obj === undefined ? ['off'] : ['obj', obj, 'sec', 'xdp']),
  ]);
}

function iproute2Bpffs(obj: string): string {
  const dir = `${dirname(obj)}/iproute2-bpffs`;
  mkdirSync(dir, { recursive: true });
  return dir;
}
