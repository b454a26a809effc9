/**
 * A real gRPC server with the health service (grpc.health.v1, @grpc/grpc-js, the messages encoded by protobuf.js
 * through @grpc/proto-loader), for tests of the `grpc` check: what each service answers is in `statuses` ('' is the
 * server as a whole); a service not there gets NOT_FOUND, as the protocol says.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const HEALTH_PROTO = `
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
`;

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface GrpcHealthServer {
  readonly port: number;
  /** Service name -> what Check answers; change it and the next call answers so. */
  readonly statuses: Map<string, ServingStatus>;
  close(): Promise<void>;
}

/**
 * Listens on `address` (port 0: any), cleartext unless `tls` gives a key and certificate; `withHealth: false` serves
 * no service at all (a gRPC server without the health service answers UNIMPLEMENTED).
 */
export async function startGrpcHealthServer(opts: {
  readonly address?: string;
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  readonly statuses?: Iterable<readonly [string, ServingStatus]>;
  readonly withHealth?: boolean;
}): Promise<GrpcHealthServer> {
  const statuses = new Map<string, ServingStatus>(opts.statuses ?? [['', 'SERVING']]);
  const server = new grpc.Server();
  if (opts.withHealth !== false) {
    const dir = await mkdtemp(join(tmpdir(), 'l4fleet-grpc-health-'));
    try {
      await writeFile(join(dir, 'health.proto'), HEALTH_PROTO);
      const loaded = grpc.loadPackageDefinition(
        loadSync(join(dir, 'health.proto'), { enums: String, defaults: true }),
      ) as unknown as { grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } } };
      server.addService(loaded.grpc.health.v1.Health.service, {
        Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, done: grpc.sendUnaryData<unknown>) => {
          const status = statuses.get(call.request.service);
          if (status === undefined)
            done({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
          else done(null, { status });
        },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const credentials = opts.tls
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: opts.tls.key, cert_chain: opts.tls.cert }])
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.address ?? '127.0.0.1'}:0`, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    statuses,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // A probe's session still open would hold tryShutdown: end it after a short grace.
        setTimeout(() => server.forceShutdown(), 500).unref();
      }),
  };
}
