/**
 * The TLS files agent.yaml names (etcd.tls, nats.tls, health.caFile): read, checked, and digested. The etcd client and
 * the NATS link are handed the content runtime.ts reads once, at the start (readTlsFiles), never a path: a renewed
 * certificate written over the same path changes no field, so a reload compares digests to say that only a restart
 * uses it (reloader.ts) instead of reporting a reload of nothing, and a file deleted since leaves the running agent its
 * copy. health.caFile is read again by a reload that finds it changed.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { AgentError } from '../errors.js';
import { NotReadable, readRegularFile } from './regular-file.js';
import type { AgentConfig, TlsFiles } from './types.js';

/** The content of one section's TLS files (etcd.tls, nats.tls), as read at the start. */
export interface TlsContent {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface TlsFile {
  readonly file: string;
  /** sha256 of the content, or `unreadable (WHY)`. */
  readonly digest: string;
  /** Why the file could not be read, when it could not: an errno code, `not a regular file` or its size. */
  readonly unreadable?: string;
  /** Why the start would refuse what it holds (readTlsFile: `is empty`, `holds no PEM certificate ...`), if it would. */
  readonly refused?: string;
}

/** A certificate, key or CA bundle is KiB; a system bundle ~220 KiB. Past this a digest reads the file as unreadable. */
export const MAX_TLS_FILE_BYTES = 16 * 1024 * 1024; // 16 MiB
/** A bundle of roots is a few hundred KiB at most (Mozilla's whole store is ~220 KiB). */
export const MAX_HEALTH_CA_FILE_BYTES = 1024 * 1024; // 1 MiB
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
/** The field of the health probes' roots, read with its own bound. */
const HEALTH_CA_FIELD = 'health.caFile';

/**
 * `file`, read with readRegularFile, or an AgentError naming `path` (the field) and the file: CONFIG_UNREADABLE when it
 * cannot be opened (its errno), CONFIG_INVALID when it is no regular file or larger than `maxBytes` (`bound` names
 * the constant). What it holds is checkTlsContent's.
 */
function readConfigFile(path: string, file: string, maxBytes: number, bound: string): Buffer {
  const refuse = (code: 'CONFIG_UNREADABLE' | 'CONFIG_INVALID', why: string, cause?: unknown): never => {
    const problem = { path, message: `"${file}" ${why}` };
    throw new AgentError(code, `${path}: ${problem.message}`, {
      problems: [problem],
      ...(cause === undefined ? {} : { cause }),
    });
  };
  let content: Buffer;
  try {
    content = readRegularFile(file, maxBytes);
  } catch (err) {
    if (err instanceof NotReadable) {
      return refuse('CONFIG_INVALID', `is ${err.message}${err.tooLarge ? ` (${bound})` : ''}`, err);
    }
    return refuse('CONFIG_UNREADABLE', `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  return content;
}

/**
 * `pem` (read from `file` for field `path`) holds at least one PEM certificate and every one parses, or an AgentError
 * CONFIG_INVALID naming the field, the file and why: a CA or certificate that does not parse would otherwise fail
 * every handshake (every probe, each check then deciding its members down) without naming the file.
 */
function checkCertificates(path: string, file: string, pem: Buffer): void {
  const refuse = (why: string, cause?: unknown): never => {
    const problem = { path, message: `"${file}" ${why}` };
    throw new AgentError('CONFIG_INVALID', `${path}: ${problem.message}`, {
      problems: [problem],
      ...(cause === undefined ? {} : { cause }),
    });
  };
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) refuse('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      refuse(`certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`, err);
    }
  });
}

/** What a TLS file holds: PEM certificates (a CA bundle, a certificate chain), each checked to parse, or a key. */
export type TlsFileKind = 'certificates' | 'key';

/**
 * The checks of what a TLS file holds, however it was read (readTlsFile here; the CLI's PEM flags read pipes too):
 * not empty, and for `certificates` at least one PEM certificate, every one parsing. Throws an AgentError
 * CONFIG_INVALID naming `path` (the field or flag) and `file`.
 */
export function checkTlsContent(path: string, file: string, content: Buffer, kind: TlsFileKind): void {
  // An empty CA was no error to Node: tls's ca '' means its default public roots (a private CA silently replaced by
  // public trust), and grpc's empty rootCertificate failed every handshake without naming the field.
  if (content.length === 0) {
    const problem = { path, message: `"${file}" is empty` };
    throw new AgentError('CONFIG_INVALID', `${path}: ${problem.message}`, { problems: [problem] });
  }
  if (kind === 'certificates') checkCertificates(path, file, content);
}

/**
 * The file agent.yaml's field `path` names (`etcd.tls.ca`, `nats.tls.key`, `health.caFile`), read and checked as the
 * start reads it: a regular file within its bound (MAX_HEALTH_CA_FILE_BYTES for health.caFile, MAX_TLS_FILE_BYTES
 * else), not empty, and for a CA or certificate holding PEM certificates that parse. One check for the start, a
 * reload and `--check` (host.ts canRead), so --check says what the start would. Throws an AgentError naming the
 * field and the file: CONFIG_UNREADABLE (cannot be opened: its errno) or CONFIG_INVALID. `kind` defaults by the
 * field's name (`*.key`: a key); the CLI's file flags (`--nats-ca`, `--cacert`, `--key`) name theirs, read by the
 * same rules.
 */
export function readTlsFile(
  path: string,
  file: string,
  kind: TlsFileKind = path.endsWith('.key') ? 'key' : 'certificates',
): Buffer {
  const health = path === HEALTH_CA_FIELD;
  const content = health
    ? readConfigFile(path, file, MAX_HEALTH_CA_FILE_BYTES, 'MAX_HEALTH_CA_FILE_BYTES')
    : readConfigFile(path, file, MAX_TLS_FILE_BYTES, 'MAX_TLS_FILE_BYTES');
  checkTlsContent(path, file, content, kind);
  return content;
}

/** Why the start would refuse the file field `path` names (readTlsFile), in its words (`is empty`); undefined: none. */
export function tlsFileProblem(path: string, file: string): string | undefined {
  try {
    readTlsFile(path, file);
    return undefined;
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    return problemOf(err, file);
  }
}

/**
 * The files of `section`.tls (etcd, nats), read once (runtime.ts, before anything starts) with readTlsFile: a file
 * that is missing, no regular file (a FIFO, /dev/stdin, /dev/zero), over MAX_TLS_FILE_BYTES, empty, or (ca, cert)
 * holding no certificate that parses refuses the start naming the field (`nats.tls.ca`) and the file. Only a regular
 * file is ever read, so nothing here can block the event loop.
 */
export function readTlsFiles(section: 'etcd' | 'nats', tls: TlsFiles | undefined): TlsContent | undefined {
  if (tls === undefined) return undefined;
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const file = tls[k];
    if (file !== undefined) out[k] = readTlsFile(`${section}.tls.${k}`, file);
  }
  return out;
}

/** The problem of `err` (an AgentError of readConfigFile or checkCertificates) without its leading `"FILE" `. */
function problemOf(err: AgentError, file: string): string {
  const message = err.problems[0]?.message ?? err.message;
  const quoted = `"${file}" `;
  return message.startsWith(quoted) ? message.slice(quoted.length) : message;
}

/**
 * The digest of the file field `path` names, and whether the start would take it (a CA renewed in place as an empty
 * or half-written file is read fine but refused by readTlsFile: a reload says a restart would fail --check).
 */
function tlsFile(path: string, file: string): TlsFile {
  let content: Buffer;
  try {
    content = readRegularFile(file, MAX_TLS_FILE_BYTES);
  } catch (err) {
    const why = err instanceof NotReadable ? err.message : ((err as NodeJS.ErrnoException).code ?? 'error');
    return { file, digest: `unreadable (${why})`, unreadable: why };
  }
  const digest = createHash('sha256').update(content).digest('hex');
  if (content.length === 0) return { file, digest, refused: 'is empty' };
  if (path.endsWith('.key')) return { file, digest };
  try {
    checkCertificates(path, file, content);
    return { file, digest };
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    return { file, digest, refused: problemOf(err, file) };
  }
}

/** Field path (`etcd.tls.cert`) -> the file and its digest, for every TLS file the config names. */
export function tlsFileDigests(config: AgentConfig): Map<string, TlsFile> {
  const out = new Map<string, TlsFile>();
  const add = (section: string, tls: TlsFiles | undefined) => {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const file = tls?.[k];
      if (file !== undefined) out.set(`${section}.tls.${k}`, tlsFile(`${section}.tls.${k}`, file));
    }
  };
  add('etcd', config.etcd.tls);
  add('nats', config.nats.tls);
  const caFile = config.health.caFile;
  if (caFile !== undefined) out.set(HEALTH_CA_FIELD, tlsFile(HEALTH_CA_FIELD, caFile));
  return out;
}

/**
 * health.caFile's roots, checked before the agent uses them (readTlsFile): a regular file of at most 1 MiB whose
 * every PEM certificate parses, with at least one. A bad file refuses the start naming the field, the file and why (a
 * TLS option that does not parse would otherwise fail every probe, each check then deciding its members down).
 */
export function readHealthCa(file: string): Buffer {
  return readTlsFile(HEALTH_CA_FIELD, file);
}
