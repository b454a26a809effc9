import { describe, expect, test } from 'vitest';
import { etcdCredentials } from './connection.js';

describe('connection - TLS credentials handed to etcd3 (grpc-js createSsl)', () => {
  // grpc-js falls back to its default roots (Node's, plus NODE_EXTRA_CA_CERTS) only for a null or absent root
  // certificate: an empty buffer trusted no root at all, so etcd.tls without `ca` failed every handshake.
  test('without a CA: no root certificate, so the default roots apply', () => {
    const cert = Buffer.from('client certificate');
    const key = Buffer.from('client key');
    const creds = etcdCredentials({ cert, key });
    expect(creds?.rootCertificate ?? undefined).toBeUndefined();
    expect(creds).toMatchObject({ certChain: cert, privateKey: key });
    expect(etcdCredentials({})?.rootCertificate ?? undefined).toBeUndefined();
  });

  test('with a CA: that CA alone; without tls: no credentials (plain http://)', () => {
    const ca = Buffer.from('etcd CA');
    expect(etcdCredentials({ ca })).toEqual({ rootCertificate: ca });
    expect(etcdCredentials(undefined)).toBeUndefined();
  });
});
