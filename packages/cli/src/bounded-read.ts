/**
 * Reads a file (or stdin) of at most `maxBytes`: a regular file is refused by its size before a byte is read, and
 * anything else (a pipe, /dev/zero, /dev/urandom) is read in chunks and refused as soon as it passes the bound, so
 * an endless or huge input costs at most `maxBytes` of memory and never aborts the process.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const CHUNK_BYTES = 1024 * 1024;
/** How long a non-blocking stdin may stay empty before the read gives up (a writer that never writes). */
const STDIN_IDLE_LIMIT_MS = 10 * 60 * 1000; // 10 min
const STDIN_POLL_MS = 10;

export type BoundedRead = { readonly text: string } | { readonly tooLarge: number; readonly exact: boolean };

/** The file's text (UTF-8), or how large it is (`exact: false`: at least that large, reading stopped there). */
export function readBounded(file: string, maxBytes: number): BoundedRead {
  const fd = file === '-' ? 0 : openSync(file, 'r');
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.isFile() && st.size > maxBytes) return { tooLarge: st.size, exact: true };
    const chunks: Buffer[] = [];
    let total = 0;
    let idleMs = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1 - total));
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        // stdin in non-blocking mode (a pipe from some shells): wait for data instead of failing.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && idleMs < STDIN_IDLE_LIMIT_MS) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, STDIN_POLL_MS);
          idleMs += STDIN_POLL_MS;
          continue;
        }
        throw err;
      }
      if (n === 0) break;
      idleMs = 0;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) return { tooLarge: total, exact: false };
    }
    return { text: Buffer.concat(chunks, total).toString('utf8') };
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}
