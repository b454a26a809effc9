/** For this package's tests only (excluded from the build): a self-signed certificate and its key, made by openssl. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface TestPem {
  /** A self-signed certificate (as a CA bundle or a client certificate). */
  readonly cert: string;
  /** Its private key (PEM, unencrypted). */
  readonly key: string;
}

/** Writes `cert.pem` and `key.pem` into `dir` (an EC P-256 key: quick to make) and returns their paths. */
export function writeTestPem(dir: string): TestPem {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'].concat([
      '-subj',
      '/CN=l4fleet-cli-test',
      '-keyout',
      key,
      '-out',
      cert,
    ]),
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
  );
  return { cert, key };
}
