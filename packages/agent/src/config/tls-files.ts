/**
 * The TLS files agent.yaml names (etcd.tls, nats.tls, health.caFile), by field, with a digest of each one's
 * content. The etcd client and the NATS connection read theirs once, at the start; a renewed certificate written over
 * the same path changes no field, so a reload compares these digests to say that only a restart uses it (reloader.ts)
 * instead of reporting a reload of nothing. health.caFile is read again by a reload that finds it changed.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { AgentError } from '../errors.js';
import type { AgentConfig, TlsFiles } from './types.js';

export interface TlsFile {
  readonly file: string;
  /** sha256 of the content, or `unreadable (CODE)`. */
  readonly digest: string;
}

function digestOf(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch (err) {
    return `unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/** Field path (`etcd.tls.cert`) -> the file and its digest, for every TLS file the config names. */
export function tlsFileDigests(config: AgentConfig): Map<string, TlsFile> {
  const out = new Map<string, TlsFile>();
  const add = (section: string, tls: TlsFiles | undefined) => {
    for (const k of ['ca', 'cert', 'key'] as const) {
      const file = tls?.[k];
      if (file !== undefined) out.set(`${section}.tls.${k}`, { file, digest: digestOf(file) });
    }
  };
  add('etcd', config.etcd.tls);
  add('nats', config.nats.tls);
  const caFile = config.health.caFile;
  if (caFile !== undefined) out.set('health.caFile', { file: caFile, digest: digestOf(caFile) });
  return out;
}

/** A bundle of roots is a few hundred KiB at most (Mozilla's whole store is ~220 KiB). */
export const MAX_HEALTH_CA_FILE_BYTES = 1024 * 1024; // 1 MiB
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * health.caFile's roots, checked before the agent uses them: a regular file of at most 1 MiB whose every PEM
 * certificate parses, with at least one. A bad file refuses the start naming the field, the file and why (a TLS
 * option that does not parse would otherwise fail every probe, each check then deciding its members down).
 */
export function readHealthCa(file: string): Buffer {
  const refuse = (code: 'CONFIG_UNREADABLE' | 'CONFIG_INVALID', why: string, cause?: unknown): never => {
    const problem = { path: 'health.caFile', message: `"${file}" ${why}` };
    throw new AgentError(code, `health.caFile: ${problem.message}`, {
      problems: [problem],
      ...(cause === undefined ? {} : { cause }),
    });
  };
  let pem: Buffer;
  try {
    const st = statSync(file);
    if (!st.isFile()) refuse('CONFIG_INVALID', 'is not a regular file');
    if (st.size > MAX_HEALTH_CA_FILE_BYTES) {
      refuse('CONFIG_INVALID', `is ${st.size} bytes, more than ${MAX_HEALTH_CA_FILE_BYTES} (MAX_HEALTH_CA_FILE_BYTES)`);
    }
    pem = readFileSync(file);
  } catch (err) {
    if (err instanceof AgentError) throw err;
    return refuse('CONFIG_UNREADABLE', `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) refuse('CONFIG_INVALID', 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      refuse(
        'CONFIG_INVALID',
        `certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`,
        err,
      );
    }
  });
  return pem;
}
