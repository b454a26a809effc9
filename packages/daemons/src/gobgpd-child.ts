/**
 * A gobgpd of our own (tests, benches): in a temp dir, its gRPC API on 127.0.0.1:<free port> (or a unix socket),
 * pprof off. `restart()` keeps the API port, so a client reconnects to the same address.
 *
 *   await using gobgpd = await startGobgpd({ config: gobgpdConfigToml({...}) });
 *   await gobgpd.cliJson('global', 'rib', '-a', 'ipv4');
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, canConnect, freePort, spawnChild, waitFor } from '@l4fleet/process';
import { gobgpCli, gobgpdArgv } from './gobgpd.js';

const READY_TIMEOUT_MS = 10_000;

export interface GobgpdOptions {
  /** API port on 127.0.0.1; default a free port. */
  readonly apiPort?: number;
  /** TOML config (`-f FILE -t toml`); default none: gobgpd waits for StartBgp over gRPC. */
  readonly config?: string;
  /** Serve the API on a unix socket in the temp dir instead of TCP (`apiAddress` is then `unix:/...`). */
  readonly apiUnixSocket?: boolean;
  /** Name used in the temp dir, for debugging. */
  readonly name?: string;
}

export interface GobgpdHandle extends AsyncDisposable {
  /** `127.0.0.1:<port>` (or `unix:/path` with apiUnixSocket) for the gRPC client. */
  readonly apiAddress: string;
  /** TCP API port; 0 with apiUnixSocket. */
  readonly apiPort: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Runs `gobgp <args>` against this daemon and returns stdout (TCP API only). */
  cli(...args: string[]): Promise<string>;
  /** Runs `gobgp <args> -j` and parses the JSON (null for no output). */
  cliJson<T = unknown>(...args: string[]): Promise<T>;
  /** SIGTERM, then SIGKILL after 5 s; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash: sessions drop without NOTIFICATION). */
  kill(): Promise<void>;
  /** Stops it for good and removes its temp dir (what `await using` does); `stop()` keeps the dir for `restart()`. */
  close(): Promise<void>;
  /** Starts again on the same API port with the same config (after stop or kill). */
  restart(): Promise<void>;
  /** stdout+stderr so far (the tail). */
  logs(): string;
}

export async function startGobgpd(opts: GobgpdOptions = {}): Promise<GobgpdHandle> {
  const dir = await mkdtemp(join(tmpdir(), `l4fleet-${opts.name ?? 'gobgpd'}-`));
  const socketPath = join(dir, 'api.sock');
  const apiPort = opts.apiUnixSocket ? 0 : (opts.apiPort ?? (await freePort()));
  const apiTarget: number | string = opts.apiUnixSocket ? socketPath : apiPort;
  const apiHosts = opts.apiUnixSocket ? `unix://${socketPath}` : `127.0.0.1:${apiPort}`;
  let configFile: string | undefined;
  if (opts.config !== undefined) {
    configFile = join(dir, 'gobgpd.toml');
    await writeFile(configFile, opts.config);
  }
  let child: Child | undefined;

  async function launch(): Promise<void> {
    // A killed gobgpd leaves its socket file behind, and Go's Listen refuses an existing path.
    if (opts.apiUnixSocket) await rm(socketPath, { force: true });
    const c = spawnChild(gobgpdArgv({ apiHosts, configFile, logLevel: 'debug' }), { cwd: dir });
    child = c;
    try {
      await waitFor(
        `gobgpd API ${apiHosts}`,
        async () => ((await canConnect(apiTarget)) ? true : undefined),
        READY_TIMEOUT_MS,
        50,
        () => (c.exitReason() ? `gobgpd ${c.exitReason()}: ${c.log().slice(-2000)}` : undefined),
      );
    } catch (err) {
      await c.stop('SIGKILL');
      throw err;
    }
  }

  const handle: GobgpdHandle = {
    apiAddress: opts.apiUnixSocket ? `unix:${socketPath}` : `127.0.0.1:${apiPort}`,
    apiPort,
    dir,
    get pid() {
      return child?.pid;
    },
    cli: (...args) => gobgpCli({ apiPort }, ...args),
    async cliJson<T>(...args: string[]) {
      const out = (await handle.cli(...args, '-j')).trim();
      return JSON.parse(out === '' ? 'null' : out) as T;
    },
    stop: async () => child?.stop(),
    kill: async () => child?.stop('SIGKILL'),
    async restart() {
      await child?.stop();
      await launch();
    },
    logs: () => child?.log() ?? '',
    async close() {
      await handle.stop();
      await rm(dir, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]: () => handle.close(),
  };
  try {
    await launch();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return handle;
}
