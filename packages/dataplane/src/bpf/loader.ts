/**
 * Drives l4fleet-bpf (native/bpf-loader/): one long-running process per data plane that loaded the node
 * program, reused or created its pinned maps, attached it at tc ingress, and now writes maps on request.
 * Requests are pipelined: an apply sends all of its requests, then waits for the answers, in order; the
 * first ones may be sent before the loader has answered its start (a restart's dump then runs right after
 * the start, without a round trip through the event loop in between).
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
/**
 * How long a failed start waits for the loader's stderr to end (it exits right after the reply) before reporting:
 * libbpf's lines say why (`couldn't reuse pinned map ...: parameter mismatch`) and may arrive after the reply.
 */
const START_STDERR_WAIT_MS = 1_000;
/** Lines of stderr in a failed start's error: libbpf explains a refused load over four lines or so. */
const START_STDERR_LINES = 6;

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
  /** A fresh table made ready where the next new VIP's table goes (src/bpf/seat.ts). */
  tableSeat: 12,
  /** Answered once that table is ready (or given up). */
  seatWait: 13,
  /** Answered ok while the program is attached where the loader's start put it (native/bpf-loader/start.c). */
  attachCheck: 14,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** Where the node program runs: tc alone, or an XDP fast path in native (driver) mode in front of it. */
export type XdpMode = 'off' | 'native';

export interface Request {
  readonly op: Op;
  readonly payload: Buffer;
  /** For error messages: what this request does (`table-write v_c6336401_tcp_80`). */
  readonly what: string;
}

export interface LoaderStart {
  /** `attached`: the program was (re)attached; `unchanged`: the same program was already attached. */
  readonly attach: 'attached' | 'unchanged';
  readonly progId: number;
  /**
   * `pins`: the restart fast path (l4f_meta names this object file and the attached program: the pinned maps
   * were opened by path, the object never parsed); `object`: libbpf opened and loaded the object.
   */
  readonly from: 'pins' | 'object';
  /** With `xdp: native`: the XDP program's id, and the families whose forwarding is off on the interface
   * (bpf_fib_lookup refuses there, so the XDP fast path is idle for them and tc forwards every packet). */
  readonly xdp?: { readonly progId: number; readonly forwardingOff: readonly (4 | 6)[] };
  /** The table made ready for the next new VIP that this loader found registered and adopted (ahead.c). */
  readonly seat?: { readonly index: number; readonly size: number };
  /** The loader honours OP_CHAINED (a loader of an earlier build does not, and would refuse such an op). */
  readonly chain?: true;
}

/** A start reply token that is not what its place needs: the loader and this driver disagree (another build). */
function badStart(text: string, field: string, value: string | undefined, want: string): DataPlaneError {
  return new DataPlaneError(
    'BPF_FAILED',
    `l4fleet-bpf start reply "${text}": ${field}: ${JSON.stringify(value)} is not ${want}`,
  );
}

/** A u32 in decimal, as the loader prints one (%u), else the badStart error. */
function startNumber(text: string, field: string, value: string | undefined, want: string): number {
  if (value === undefined || !/^\d{1,10}$/.test(value) || Number(value) > 0xffff_ffff)
    throw badStart(text, field, value, want);
  return Number(value);
}

/**
 * The loader's start reply: `attached|unchanged PROG_ID pins|object [xdp ID] [nofwd4] [nofwd6] [seat INDEX SIZE]
 * [chain]`. Every token is checked: read leniently, a garbled reply would give a NaN program or seat index that the
 * driver then acts on.
 */
export function parseStart(text: string): LoaderStart {
  const [attach, id, from, ...rest] = text.split(' ');
  if (attach !== 'attached' && attach !== 'unchanged') throw badStart(text, 'attach', attach, 'attached or unchanged');
  const progId = startNumber(text, 'progId', id, 'a program id');
  if (from !== 'pins' && from !== 'object') throw badStart(text, 'from', from, 'pins or object');
  let xdp: LoaderStart['xdp'];
  let seat: LoaderStart['seat'];
  let chain = false;
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i];
    if (word === 'xdp' && xdp === undefined) {
      xdp = { progId: startNumber(text, 'xdp progId', rest[++i], 'a program id'), forwardingOff: [] };
    } else if ((word === 'nofwd4' || word === 'nofwd6') && xdp !== undefined) {
      const off = new Set([...xdp.forwardingOff, word === 'nofwd4' ? 4 : 6]);
      xdp = { ...xdp, forwardingOff: ([4, 6] as const).filter((f) => off.has(f)) };
    } else if (word === 'seat' && seat === undefined) {
      const index = startNumber(text, 'seat index', rest[++i], 'a table index');
      seat = { index, size: startNumber(text, 'seat size', rest[++i], 'a table size') };
    } else if (word === 'chain' && !chain) {
      chain = true;
    } else {
      throw new DataPlaneError(
        'BPF_FAILED',
        `l4fleet-bpf start reply "${text}": ${JSON.stringify(word)} is not a start reply word (xdp ID, nofwd4, nofwd6, seat INDEX SIZE, chain)`,
      );
    }
  }
  return {
    attach,
    progId,
    from,
    ...(xdp === undefined ? {} : { xdp }),
    ...(seat === undefined ? {} : { seat }),
    ...(chain ? { chain: true as const } : {}),
  };
}

/**
 * Set in the op of every request of a send but the first (OP_CHAINED, native/bpf-loader/loader.h): a send is one
 * chain of dependent requests (an apply's tables before the VIP entries that refer to them), so the loader refuses
 * every request after a failed one unrun, instead of pointing a VIP at a table that is not there.
 */
export const OP_CHAINED = 0x8000_0000;

/**
 * The header of the `i`th request of a send: u32 op (chained after the first when the loader said `chain`), u32
 * payload length.
 */
export function requestHeader(r: Request, i: number, chain: boolean): Buffer {
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32LE(i > 0 && chain ? (r.op | OP_CHAINED) >>> 0 : r.op, 0);
  h.writeUInt32LE(r.payload.length, 4);
  return h;
}

export interface Loader {
  /** How the start went (LoaderStart). */
  readonly started: Promise<LoaderStart>;
  /**
   * Sends all requests, resolves with their replies in order; rejects with the first failure (BPF_FAILED). The
   * requests are one chain: the loader runs none after a failed one (OP_CHAINED).
   */
  send(requests: readonly Request[]): Promise<Buffer[]>;
  /**
   * Why the loader is gone (it exited, was killed after a request timed out, or never ran), once it is; undefined
   * while it runs. A gone loader answers nothing again: its user starts a new one.
   */
  gone(): Error | undefined;
  close(): Promise<void>;
}

export interface LoaderOptions {
  readonly pinDir: string;
  readonly iface: string;
  readonly flowTableSize: number;
  readonly netns?: string;
  /** `native`: the XDP fast path in front of tc; `off`: tc alone (and ours detached). */
  readonly xdp: XdpMode;
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
  // The loader joins the namespace itself (setns, network only, like `nsenter --net`): one exec instead of two
  // at every start (nsenter cost 37-190 ms on a loaded machine: docs/design/0007-bpf-dataplane.md, Measured).
  const argv = [
    opts.loaderPath ?? BPF_LOADER_PATH,
    ...(opts.netns === undefined ? [] : ['--netns', opts.netns]),
    '--xdp',
    opts.xdp,
    opts.pinDir,
    opts.objectPath ?? BPF_NODE_OBJECT_PATH,
    opts.iface,
    String(opts.flowTableSize),
  ];
  const child: ChildProcessWithoutNullStreams = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const pending: Pending[] = [];
  const replies = createReplyReader();
  /**
   * Lines the loader writes on stderr while starting well: a note that it emptied the flow caches, because l4f_backends
   * or l4f_vips was not pinned and starts empty (native/bpf-loader/stale.c: a remembered flow would follow its id to
   * another backend; open connections re-hash by the table then), and one that it made a map anew whose pin had
   * another definition than the object's (layout.c: its entries are lost). An operator must see both.
   */
  const noteLine = (line: string): void => {
    if (/^l4fleet-bpf: .*flows remembered over its ids cleared$/.test(line))
      opts.logger.warn({ event: 'bpfFlowsCleared', detail: line }, line);
    else if (/^l4fleet-bpf: .*: map made anew$/.test(line))
      opts.logger.warn({ event: 'bpfMapRebuilt', detail: line }, line);
  };
  let stderrTail = '';
  let gone: Error | undefined;

  const fail = (err: Error): void => {
    gone ??= err;
    for (const p of pending.splice(0)) p.reject(err);
  };
  /** The last `lines` lines of stderr, as a suffix of an error message. */
  const tail = (lines: number): string =>
    stderrTail ? `: ${stderrTail.trim().split('\n').slice(-lines).join(' | ')}` : '';
  let stderrEnded = false;
  const stderrEnd: (() => void)[] = [];
  /** Resolves once stderr ended (the loader exited), or after `ms`. */
  const stderrDrained = (ms: number): Promise<void> =>
    stderrEnded
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          stderrEnd.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
  child.stdout.on('data', (d: Buffer) => {
    for (const { status, body } of replies(d)) {
      const p = pending.shift();
      if (!p) continue;
      const why = `l4fleet-bpf: ${p.what}: ${body.toString('utf8')}`;
      if (status === 0) p.resolve(body);
      else if (p.what !== 'start') p.reject(new DataPlaneError('BPF_FAILED', why));
      // The loader exits after a failed start: its stderr (libbpf's reasons) is read to the end first.
      else
        void stderrDrained(START_STDERR_WAIT_MS).then(() =>
          p.reject(new DataPlaneError('BPF_FAILED', `${why}${tail(START_STDERR_LINES)}`)),
        );
    }
  });
  child.stderr.setEncoding('utf8');
  let stderrLine = '';
  child.stderr.on('data', (d: string) => {
    stderrTail = (stderrTail + d).slice(-2000);
    const lines = (stderrLine + d).split('\n');
    stderrLine = (lines.pop() as string).slice(-2000);
    for (const line of lines) noteLine(line);
  });
  child.stderr.on('close', () => {
    stderrEnded = true;
    for (const f of stderrEnd.splice(0)) f();
  });
  const lost = (why: string): DataPlaneError => new DataPlaneError('BPF_LOADER_LOST', `l4fleet-bpf ${why}${tail(3)}`);
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

  /** Set from the start reply, before anyone awaiting `started` sends (a send before it is one request: a dump). */
  let chain = false;
  const started = expect('start').then((b) => {
    const s = parseStart(b.toString('utf8'));
    chain = s.chain === true;
    opts.logger.debug({ event: 'bpfLoaderStarted', pid: child.pid, attach: s.attach, from: s.from });
    return s;
  });
  started.catch(() => {}); // observed by whoever awaits it

  return {
    started,
    gone: () => gone,
    async send(requests) {
      // Replies come in order after the start's, so requests may go before it answered; a failed start
      // rejects them all (the loader exits).
      const answers = requests.map((r) => expect(r.what));
      // One writev of headers and payloads as they are (a table's payload is 256 KB: no copy into one buffer).
      child.stdin.cork();
      requests.forEach((r, i) => {
        child.stdin.write(requestHeader(r, i, chain));
        if (r.payload.length > 0) child.stdin.write(r.payload);
      });
      child.stdin.uncork();
      // All settle (no unhandled rejections, also when the start fails); the first failure is reported.
      const all = Promise.allSettled(answers);
      await started;
      const settled = await all;
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

export interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

/**
 * Splits the loader's stdout into replies (u32 status, u32 length, body). Chunks are kept until a reply is
 * complete and joined once (a 256 KB dump arrives in 64 KB pipe reads: joining at every read copied it
 * again each time). A body that lies inside one chunk is returned without a copy.
 */
export function createReplyReader(): (chunk: Buffer) => Reply[] {
  let chunks: Buffer[] = [];
  let have = 0;
  return (chunk) => {
    chunks.push(chunk);
    have += chunk.length;
    const out: Reply[] = [];
    for (;;) {
      if (have < 8) break;
      let head = chunks[0] as Buffer;
      if (head.length < 8) {
        head = Buffer.concat(chunks);
        chunks = [head];
      }
      const len = head.readUInt32LE(4);
      if (have < 8 + len) break;
      if (head.length < 8 + len) {
        head = Buffer.concat(chunks, have);
        chunks = [head];
      }
      out.push({ status: head.readUInt32LE(0), body: head.subarray(8, 8 + len) });
      const rest = head.subarray(8 + len);
      chunks = rest.length > 0 ? [rest, ...chunks.slice(1)] : chunks.slice(1);
      have -= 8 + len;
    }
    return out;
  };
}
