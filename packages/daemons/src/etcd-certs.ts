/** TLS material for a test etcd: a CA, a server certificate (127.0.0.1, localhost) and a client one (CN root). */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@l4fleet/process';

export interface EtcdTls {
  /** PEM contents, ready for the etcd3 client's credentials / the store's tls options. */
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Paths of the same files (for CLI flags --cacert --cert --key). */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** Made with openssl in `dir` (ca.pem, server.pem/.key, client.pem/.key), valid two days. */
export async function makeCerts(dir: string): Promise<EtcdTls> {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => run(['openssl', ...args]);
  await ssl('genrsa', '-out', f('ca.key'), '2048');
  await ssl(
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-days',
    '2',
    '-subj',
    '/CN=l4fleet-test-ca',
    '-out',
    f('ca.pem'),
  );
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const name of ['server', 'client']) {
    const cn = name === 'client' ? 'root' : 'localhost';
    await ssl('genrsa', '-out', f(`${name}.key`), '2048');
    await ssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    await ssl(
      ...['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial'],
      ...['-days', '2', '-extfile', f('ext.cnf'), '-out', f(`${name}.pem`)],
    );
  }
  return {
    ca: await readFile(f('ca.pem')),
    cert: await readFile(f('client.pem')),
    key: await readFile(f('client.key')),
    caFile: f('ca.pem'),
    certFile: f('client.pem'),
    keyFile: f('client.key'),
  };
}
