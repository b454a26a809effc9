/**
 * Helpers the bpf driver's real-kernel tests share: a driver on the DSR topology's node, the loader's start log, and
 * bpftool for reading and editing pinned maps by hand.
 */
import { spawnSync } from 'node:child_process';
import { type BpfDataPlane, type BpfDataPlaneOptions, createBpfDataPlane } from '@l4fleet/dataplane';
import { type Logger, pino } from 'pino';
import { type DsrTopology, NODE4, NODE6 } from './topology.js';

/** How the loader started (its `programLoaded` event): from pins or the object, attached or left unchanged. */
export interface Loaded {
  readonly attach: string;
  readonly progId: number;
  readonly from: string;
}

/** A logger that collects the driver's `programLoaded` events into `loads`, and every event's name into `events`. */
export function loaderLog(): { logger: Logger; loads: Loaded[]; events: string[] } {
  const loads: Loaded[] = [];
  const events: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const e = JSON.parse(line) as { event?: string } & Loaded;
        if (e.event !== undefined) events.push(e.event);
        if (e.event === 'programLoaded') loads.push({ attach: e.attach, progId: e.progId, from: e.from });
      },
    },
  );
  return { logger, loads, events };
}

/** A bpf driver on the topology's node (eth0, both node addresses) over `bpffsPath`/`pinName`. */
export function dsrBpfDriver(
  topo: DsrTopology,
  opts: { bpffsPath: string; pinName: string; logger: Logger },
  extra: Partial<BpfDataPlaneOptions> = {},
): BpfDataPlane {
  return createBpfDataPlane({
    interface: 'eth0',
    netns: topo.node.ns,
    nodeAddresses: [NODE4, NODE6],
    ...opts,
    ...extra,
  });
}

/** Runs bpftool (the tests' reads and hand edits of pinned maps): its stdout, or an error naming the command. */
export function bpftool(args: readonly string[]): string {
  const r = spawnSync('bpftool', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `b` as bpftool's byte arguments after `hex`. */
export const hexArgs = (b: Buffer): string[] => [...b].map((x) => x.toString(16).padStart(2, '0'));

/** A little-endian u32: an array map's key. */
export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
