/**
 * Drives l4fleet-bpf (native/bpf-loader.c): one long-running process per data plane that loaded the node
 * program, reused or created its pinned maps, attached it at tc ingress, and now writes maps on request.
 * Requests are pipelined: an apply sends all of its requests, then waits for the answers, in order.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';

/** Where the package build puts the loader and the object (same relative path from src/bpf and dist/bpf). */
export const BPF_LOADER_PATH = fileURLToPath(new URL('../../native/bin/l4fleet-bpf', import.meta.url));
export const BPF_NODE_OBJECT_PATH = fileURLToPath(new URL('../../native/bin/bpf/node.bpf.o', import.meta.url));

/** A request that has not answered by then is taken as lost: the process is killed. */
const REQUEST_TIMEOUT_MS = 30_000;

export const Op = {
  update: 1,
  delete: 2,
  tableCreate: 3,
  tableWrite: 4,
  tableDelete: 5,
  dump: 6,
  stats: 7,
  flowsClear: 8,
  remove: 9,
  progInfo: 10,
  /** Second chance: the slots' previous owners (src/bpf/previous.ts). */
  tablePrev: 11,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

export interface Request {
  readonly op: Op;
  readonly payload: Buffer;
  /** For error messages: what this request does (`table-write v_c6336401_tcp_80`). */
  readonly what: string;
}

export interface Loader {
  /** How the start went: `attached` (program (re)attached) or `unchanged` (the same program already ran). */
  readonly started: Promise<{ readonly attach: 'attached' | 'unchanged'; readonly progId: number }>;
  /** Sends all requests, resolves with their replies in order; rejects at the first failure (BPF_FAILED). */
  send(requests: readonly Request[]): Promise<Buffer[]>;
  close(): Promise<void>;
}

export interface LoaderOptions {
  readonly pinDir: string;
  readonly iface: string;
  readonly flowTableSize: number;
  readonly netns?: string;
  readonly logger: Logger;
  readonly loaderPath?: string;
  readonly objectPath?: string;
}

export function bpfAvailable(opts: { loaderPath?: string; objectPath?: string } = {}): string | undefined {
  for (const [p, mode] of [
    [opts.loaderPath ?? BPF_LOADER_PATH, constants.X_OK],
    [opts.objectPath ?? BPF_NODE_OBJECT_PATH, constants.R_OK],
  ] as const) {
    try {
      accessSync(p, mode);
    } catch {
      return p;
    }
  }
  return undefined;
}

interface Pending {
  readonly what: string;
  resolve(b: Buffer): void;
  reject(err: Error): void;
}

export function startLoader(opts: LoaderOptions): Loader {
  const argv = [
    ...(opts.netns === undefined ? [] : ['nsenter', `--net=/run/netns/${opts.netns}`]),
    opts.loaderPath ?? BPF_LOADER_PATH,
    opts.pinDir,
    opts.objectPath ?? BPF_NODE_OBJECT_PATH,
    opts.iface,
    String(opts.flowTableSize),
  ];
  const child: ChildProcessWithoutNullStreams = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const pending: Pending[] = [];
  let buf: Buffer = Buffer.alloc(0);
  let stderrTail = '';
  let gone: Error | undefined;

  const fail = (err: Error): void => {
    gone ??= err;
    for (const p of pending.splice(0)) p.reject(err);
  };
  child.stdout.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (buf.length >= 8) {
      const len = buf.readUInt32LE(4);
      if (buf.length < 8 + len) break;
      const status = buf.readUInt32LE(0);
      const body = buf.subarray(8, 8 + len);
      buf = buf.subarray(8 + len);
      const p = pending.shift();
      if (!p) continue;
      if (status === 0) p.resolve(Buffer.from(body));
      else p.reject(new DataPlaneError('BPF_FAILED', `l4fleet-bpf: ${p.what}: ${body.toString('utf8')}`));
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderrTail = (stderrTail + d).slice(-2000);
  });
  const lost = (why: string): DataPlaneError =>
    new DataPlaneError(
      'BPF_LOADER_LOST',
      `l4fleet-bpf ${why}${stderrTail ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    );
  child.on('error', (err) => fail(lost(`could not run (${err.message})`)));
  child.on('exit', (code, signal) => fail(lost(`exited (${signal ?? `code ${code}`})`)));
  child.stdin.on('error', () => {}); // the exit handler reports why

  const expect = (what: string): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      if (gone) return reject(gone);
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(lost(`did not answer ${what} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.push({
        what,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });

  const started = expect('start').then((b) => {
    const [attach, id] = b.toString('utf8').split(' ');
    opts.logger.debug({ event: 'bpfLoaderStarted', pid: child.pid, attach });
    return { attach: attach === 'unchanged' ? ('unchanged' as const) : ('attached' as const), progId: Number(id) };
  });
  started.catch(() => {}); // observed by whoever awaits it

  return {
    started,
    async send(requests) {
      await started;
      const replies = requests.map((r) => expect(r.what));
      const frames: Buffer[] = [];
      for (const r of requests) {
        const h = Buffer.alloc(8);
        h.writeUInt32LE(r.op, 0);
        h.writeUInt32LE(r.payload.length, 4);
        frames.push(h, r.payload);
      }
      child.stdin.write(Buffer.concat(frames));
      // All settle (no unhandled rejections); the first failure is reported.
      const settled = await Promise.allSettled(replies);
      const bad = settled.find((s) => s.status === 'rejected');
      if (bad) throw (bad as PromiseRejectedResult).reason;
      return settled.map((s) => (s as PromiseFulfilledResult<Buffer>).value);
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin.end();
      });
    },
  };
}
