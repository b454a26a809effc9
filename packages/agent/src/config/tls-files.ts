/**
 * The TLS files agent.yaml names (etcd.tls, nats.tls), by field, with a digest of each one's content. The etcd
 * client and the NATS connection read them once, at the start; a renewed certificate written over the same path
 * changes no field, so a reload compares these digests to say that only a restart uses it (reloader.ts) instead of
 * reporting a reload of nothing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
  return out;
}
