/** Loads the apipb subset (proto/gobgp-subset.proto) into a grpc-js client constructor. */
import { fileURLToPath } from 'node:url';
import { type ChannelCredentials, type ChannelOptions, type Client, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** Path of the .proto file, the same from src/ (tests) and dist/ (build): both sit one level below the package. */
export const GOBGP_PROTO_PATH = fileURLToPath(new URL('../proto/gobgp-subset.proto', import.meta.url));

/**
 * Loader options. `keepCase`: fields stay snake_case as in the .proto, which is also how the Any field
 * `type_url` is spelled. `json`: an Any is read and written as `{ '@type': 'type.googleapis.com/apipb.X', ... }`.
 * `longs: Number`: uint64 counters and timers fit a double. `enums: String`: 'ESTABLISHED', not 6.
 */
export const PROTO_LOADER_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  json: true,
} as const;

export const TYPE_URL_PREFIX = 'type.googleapis.com/apipb.';

// biome-ignore lint/suspicious/noExplicitAny: the generated client is untyped; gobgp-client.ts wraps it with types.
export type RawGobgpClient = Client & Record<string, any>;
type ClientConstructor = new (
  address: string,
  credentials: ChannelCredentials,
  options?: ChannelOptions,
) => RawGobgpClient;

let cached: ClientConstructor | undefined;

/** The GobgpApi client constructor; the .proto is parsed once per process. */
export function gobgpClientConstructor(): ClientConstructor {
  if (!cached) {
    const definition = loadSync(GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS);
    const pkg = loadPackageDefinition(definition) as unknown as { apipb: { GobgpApi: ClientConstructor } };
    cached = pkg.apipb.GobgpApi;
  }
  return cached;
}
