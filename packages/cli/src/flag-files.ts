/**
 * The files the CLI's flags name for TLS and logins: one reader for PEM files (--cacert, --cert, --key, --nats-ca)
 * and one for secrets (--token-file, --nats-token-file), so no flag takes an empty or blank file for "none". Every
 * refusal is exit 1 naming the flag and the file (README "Exit codes": the command line was right, the file is not).
 */
import { statSync } from 'node:fs';
import { AgentError, checkTlsContent, MAX_TLS_FILE_BYTES, type TlsFileKind } from '@l4fleet/agent';
import { readBounded } from './bounded-read.js';
import { CliError, EXIT_FAILURE } from './io.js';

type BoundedRead = ReturnType<typeof readBounded>;

/** What each pipe, FIFO or device a flag named gave (or the error), by its path and bound: see readFlagFile. */
const readOnce = new Map<string, { read: BoundedRead } | { error: unknown }>();

/**
 * readBounded(file, limit), once per process for a file that does not read the same again: a pipe
 * (`--cacert <(cat ca.pem)`), a FIFO, a device. `l4fleet rollback` opens the store twice (history, then apply), and
 * the second read of /dev/fd/63 found the pipe drained: '--cacert: "/dev/fd/63" is empty', exit 1. A regular file
 * reads the same again, so it is read each time (one rewritten in between is seen as it is now).
 */
function readFlagFile(file: string, limit: number): BoundedRead {
  let regular = false;
  try {
    regular = statSync(file).isFile();
  } catch {
    // missing or unreadable: readBounded's error names why, and is kept like a read
  }
  if (regular) return readBounded(file, limit);
  const key = `${limit}\0${file}`;
  let got = readOnce.get(key);
  if (got === undefined) {
    try {
      got = { read: readBounded(file, limit) };
    } catch (error) {
      got = { error };
    }
    readOnce.set(key, got);
  }
  if ('error' in got) throw got.error;
  return got.read;
}

/** A token is tens of bytes; past this the file is not a token (a key, a log, /dev/zero) and is not read on. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024; // 64 KiB

/**
 * The PEM file `flag` names, checked by the agent's rules for etcd.tls and nats.tls (checkTlsContent): at most
 * MAX_TLS_FILE_BYTES, not empty, and for certificates holding PEM certificates that all parse. An empty CA is the
 * danger: Node's tls (and nats.js, which skips an empty `ca`) then trusts its public roots, and a login went to any
 * server with a publicly trusted certificate; an empty etcd CA failed every handshake without naming the flag.
 * Read as the secret flags read (readBounded), not by the agent's regular-file rule: that rule keeps a FIFO from
 * holding the long-running agent's event loop, while a one-shot command may wait for its writer, so
 * `--cacert <(vault ...)` works, and /dev/zero costs MAX_TLS_FILE_BYTES.
 */
export function readPemFlag(flag: string, file: string, kind: TlsFileKind): Buffer {
  // The agent's words (`--nats-ca: "FILE" is empty`, as probe --ca-file), each naming the flag and the file.
  const refuse = (why: string, cause?: unknown): never => {
    throw new CliError(`${flag}: "${file}" ${why}`, EXIT_FAILURE, cause === undefined ? undefined : { cause });
  };
  let read: BoundedRead;
  try {
    // './-': readBounded reads stdin for '-'; a PEM flag has always named a file, '-' included.
    read = readFlagFile(file === '-' ? './-' : file, MAX_TLS_FILE_BYTES);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return refuse('is not a regular file or a pipe (a directory)', err);
    return refuse(`cannot be read (${code ?? (err as Error).message})`, err);
  }
  if ('tooLarge' in read) {
    const size = read.exact
      ? `${read.tooLarge} bytes, more than ${MAX_TLS_FILE_BYTES}`
      : `more than ${MAX_TLS_FILE_BYTES} bytes`;
    return refuse(`is ${size} (MAX_TLS_FILE_BYTES)`);
  }
  // PEM is ASCII: the UTF-8 text readBounded returns gives back the bytes that were read.
  const content = Buffer.from(read.text, 'utf8');
  try {
    checkTlsContent(flag, file, content, kind);
  } catch (err) {
    if (err instanceof AgentError) throw new CliError(err.message, EXIT_FAILURE, { cause: err });
    throw err;
  }
  return content;
}

/**
 * The secret in the file `flag` names, trimmed: at most MAX_SECRET_FILE_BYTES, read in chunks, so a pipe
 * (`--token-file <(vault ...)`) still works and /dev/zero costs 64 KiB. An empty or blank file is refused: it is a
 * failed provisioning, not a choice (a dashboard asked for a write token served read-only without a word; no token
 * is said by leaving the flag out).
 */
export function readSecretFlag(flag: string, file: string): string {
  let read: BoundedRead;
  try {
    // './-': readBounded reads stdin for '-'; a secret flag has always named a file, '-' included.
    read = readFlagFile(file === '-' ? './-' : file, MAX_SECRET_FILE_BYTES);
  } catch (err) {
    throw new CliError(`${flag}: cannot read ${file}: ${(err as Error).message}`, EXIT_FAILURE, { cause: err });
  }
  if ('tooLarge' in read) {
    const size = read.exact ? `${read.tooLarge} bytes, ` : '';
    throw new CliError(
      `${flag}: ${file} is ${size}more than ${MAX_SECRET_FILE_BYTES} bytes (MAX_SECRET_FILE_BYTES): not a secret`,
      EXIT_FAILURE,
    );
  }
  const secret = read.text.trim();
  if (secret === '') throw new CliError(`${flag}: ${file} is empty`, EXIT_FAILURE);
  return secret;
}
