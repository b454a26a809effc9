/**
 * NIC-like headroom for the per-packet bench's floods (headroom.bpf.c): the client's frames reach the node with
 * 66 bytes in front of the MAC header instead of 2, so an encapsulating node program does not reallocate each
 * packet's head, as it would not for a frame from a NIC. The sender pays that reallocation instead; a baseline
 * measured with the same program attached pays it too, so the paired difference is the node's cost alone.
 */
import { fileURLToPath } from 'node:url';
import { run } from '@l4fleet/process';
import type { NetnsHost } from '../../../test/support/netns.js';

/** The headroom the program leaves (headroom.bpf.c NIC_HEADROOM, plus the 2 bytes a local datagram has). */
export const NIC_HEADROOM_BYTES = 64;

/** Compiles headroom.bpf.c into `dir`; the object's path. */
export async function buildHeadroomProgram(dir: string): Promise<string> {
  const multiarch = (await run(['gcc', '-print-multiarch'])).stdout.trim() || 'x86_64-linux-gnu';
  const out = `${dir}/headroom.bpf.o`;
  const src = fileURLToPath(new URL('./headroom.bpf.c', import.meta.url));
  await run(['clang', '-O2', '-g', '-Wall', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', src, '-o', out]);
  return out;
}

/** Attaches the program at tc egress of `iface` in `host` (clsact created if missing). */
export async function attachHeadroom(host: NetnsHost, iface: string, object: string): Promise<void> {
  await host.run(['tc', 'qdisc', 'add', 'dev', iface, 'clsact'], { allowFailure: true });
  await host.run(['tc', 'filter', 'add', 'dev', iface, 'egress', 'bpf', 'direct-action', 'obj', object, 'sec', 'tc']);
}

/** Removes every egress filter of `iface` in `host`. */
export async function detachHeadroom(host: NetnsHost, iface: string): Promise<void> {
  await host.run(['tc', 'filter', 'del', 'dev', iface, 'egress'], { allowFailure: true });
}
