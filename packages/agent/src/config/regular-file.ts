/**
 * Reading a file the agent is told to read (agent.yaml itself, the TLS files it names) only when it is a regular file
 * within a bound: one implementation, so every such read refuses a FIFO, a device or a directory the same way.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';

/** Why `readRegularFile` read nothing: the file is not a regular file, or (`bytes` set: its size) larger than the bound. */
export class NotReadable extends Error {
  constructor(
    message: string,
    readonly bytes?: number,
  ) {
    super(message);
    this.name = 'NotReadable';
  }

  get tooLarge(): boolean {
    return this.bytes !== undefined;
  }
}

/**
 * The content of `file` if it is a regular file of at most `maxBytes`; anything else is never read (NotReadable).
 * Opened non-blocking and checked on the open descriptor (no window to swap the path): a FIFO (or /dev/stdin) held a
 * blocking open, and with it the read (a TLS file's: the event loop; agent.yaml's: that reload and every SIGHUP
 * merged behind it, or the start), until a writer came, and /dev/zero never ends. O_NONBLOCK changes nothing for a
 * regular file's read. Errors of the open itself (ENOENT, EACCES) are thrown as they are.
 */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotReadable('not a regular file');
    if (st.size > maxBytes) throw new NotReadable(`${st.size} bytes, more than ${maxBytes}`, st.size);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
