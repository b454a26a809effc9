/**
 * Drives l4fleet-nft-batch (native/nft-batch/): one long-running process per data plane that commits
 * element and counter changes as one nf_tables transaction each, over its own netlink socket.
 *
 * Long-running because closing an nf_tables netlink socket waits for the previous commit's deferred
 * cleanup (an RCU grace period, 10-20 ms on the machines we measured); `nft -f` pays that on every
 * call. A process that stays up pays it never, and skips nft's parser: a 16,384-slot delta at
 * M = 65,537 commits in about 30 ms instead of about 110 ms.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import { vipsNamedIn } from './names.js';

/** Where the package build puts the binary (same relative path from src/nft and dist/nft). */
export const NFT_BATCH_PATH = fileURLToPath(new URL('../../native/bin/l4fleet-nft-batch', import.meta.url));

/** A commit that has not answered by then is taken as lost: the process is killed and restarted. */
const COMMIT_TIMEOUT_MS = 30_000;

export function nftBatchAvailable(path = NFT_BATCH_PATH): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface BatchWriter {
  /**
   * Commits `requests` (l4fleet-nft-batch lines) as one transaction. Rejects with NFT_FAILED when the
   * kernel refused it (nothing changed) and with NFT_BATCH_LOST when the outcome is unknown (the
   * process died or did not answer): the caller must then read the kernel's state again.
   */
  commit(requests: string): Promise<void>;
  close(): Promise<void>;
}

export interface BatchWriterOptions {
  readonly table: string;
  readonly netns?: string;
  readonly logger: Logger;
  readonly path?: string;
}

export function createBatchWriter(opts: BatchWriterOptions): BatchWriter {
  const path = opts.path ?? NFT_BATCH_PATH;
  const argv = [
    ...(opts.netns === undefined ? [] : ['nsenter', `--net=/run/netns/${opts.netns}`]),
    path,
    'netdev',
    opts.table,
  ];
  let child: ChildProcessWithoutNullStreams | undefined;
  let stdoutBuf = '';
  let stderrTail = '';
  let waiting: { resolve: (line: string) => void; reject: (err: Error) => void } | undefined;

  function start(): ChildProcessWithoutNullStreams {
    const c = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    stdoutBuf = '';
    stderrTail = '';
    c.stdout.setEncoding('utf8');
    c.stdout.on('data', (d: string) => {
      stdoutBuf += d;
      const nl = stdoutBuf.indexOf('\n');
      if (nl < 0) return;
      const line = stdoutBuf.slice(0, nl);
      stdoutBuf = stdoutBuf.slice(nl + 1);
      const w = waiting;
      waiting = undefined;
      w?.resolve(line);
    });
    c.stderr.setEncoding('utf8');
    c.stderr.on('data', (d: string) => {
      stderrTail = (stderrTail + d).slice(-2000);
    });
    const gone = (why: string): void => {
      if (child === c) child = undefined;
      const w = waiting;
      waiting = undefined;
      w?.reject(
        new DataPlaneError('NFT_BATCH_LOST', `l4fleet-nft-batch ${why}${stderrTail ? `: ${stderrTail.trim()}` : ''}`),
      );
    };
    c.on('error', (err) => gone(`could not run (${err.message})`));
    c.on('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
    c.stdin.on('error', () => {}); // the exit handler reports why
    opts.logger.debug({ event: 'nftBatchStarted', pid: c.pid });
    return c;
  }

  return {
    commit(requests) {
      child ??= start();
      const c = child;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting = undefined;
          c.kill('SIGKILL');
          reject(new DataPlaneError('NFT_BATCH_LOST', `l4fleet-nft-batch: no answer within ${COMMIT_TIMEOUT_MS} ms`));
        }, COMMIT_TIMEOUT_MS);
        waiting = {
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        c.stdin.write(`${requests}commit\n`);
      }).then((line) => {
        if (line.startsWith('ok')) return;
        // "lost": the kernel's answer could not be read, the batch may have been committed.
        const code = line.startsWith('lost ') ? 'NFT_BATCH_LOST' : 'NFT_FAILED';
        // The kernel's text names a set (`v_<hex>_tcp_80_over`): the VIP it belongs to is added, as configured.
        const why = line.replace(/^(error|lost) /, '');
        throw new DataPlaneError(code, `l4fleet-nft-batch: ${why}${vipsNamedIn(why)}`);
      });
    },
    async close() {
      const c = child;
      child = undefined;
      if (c === undefined || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
        c.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        c.stdin.end();
      });
    },
  };
}
