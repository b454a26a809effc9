/**
 * Test helper: runs Debian's gobgpd (/usr/bin/gobgpd) in a temp dir with its gRPC API on 127.0.0.1:<free port>
 * and pprof off. `restart()` keeps the API port, so a client reconnects to the same address.
 *
 *   await using gobgpd = await startGobgpd({ config: routerToml });   // or: try { ... } finally { await gobgpd.stop() }
 *   spawnSync('gobgp', gobgpd.cliArgs('global', 'rib', '-a', 'ipv4', '-j'))
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const GOBGPD_BIN = '/usr/bin/gobgpd';
export const GOBGP_CLI_BIN = '/usr/bin/gobgp';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export interface GobgpdOptions {
  /** API port on 127.0.0.1; default a free port. */
  apiPort?: number;
  /** TOML config (`-f FILE -t toml`); default none: gobgpd waits for StartBgp over gRPC. */
  config?: string;
  /** Serve the API on a unix socket in the temp dir instead of TCP (`apiAddress` is then `unix:/...`). */
  apiUnixSocket?: boolean;
  /** Name used in the temp dir and log, for debugging. */
  name?: string;
}

export interface GobgpdHandle extends AsyncDisposable {
  /** `127.0.0.1:<port>` (or `unix:/path` with apiUnixSocket) for the gRPC client. */
  readonly apiAddress: string;
  /** TCP API port; 0 with apiUnixSocket. */
  readonly apiPort: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Arguments for /usr/bin/gobgp against this daemon, followed by `args`. */
  cliArgs(...args: string[]): string[];
  /** Runs `gobgp <args>` against this daemon and returns stdout. */
  cli(...args: string[]): Promise<string>;
  /** Runs `gobgp <args> -j` and parses the JSON. */
  cliJson<T = unknown>(...args: string[]): Promise<T>;
  /** SIGTERM, then SIGKILL after 5 s; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash: sessions drop without NOTIFICATION). */
  kill(): Promise<void>;
  /** Starts again on the same API port with the same config (after stop or kill). */
  restart(): Promise<void>;
  /** stdout+stderr so far. */
  logs(): Promise<string>;
}

const run = promisify(execFile);

/** A TCP port free on `host` right now (listen on port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function canConnect(target: number | string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    if (typeof target === 'string') socket.connect(target);
    else socket.connect(target, '127.0.0.1');
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startGobgpd(opts: GobgpdOptions = {}): Promise<GobgpdHandle> {
  const name = opts.name ?? 'gobgpd';
  const dir = await mkdtemp(join(tmpdir(), `l4fleet-${name}-`));
  const socketPath = join(dir, 'api.sock');
  const apiPort = opts.apiUnixSocket ? 0 : (opts.apiPort ?? (await freePort()));
  const apiTarget: number | string = opts.apiUnixSocket ? socketPath : apiPort;
  const apiHost = opts.apiUnixSocket ? `unix://${socketPath}` : `127.0.0.1:${apiPort}`;
  const logPath = join(dir, 'gobgpd.log');
  const args = ['--api-hosts', apiHost, '--pprof-disable', '--log-level', 'debug'];
  if (opts.config !== undefined) {
    const configPath = join(dir, 'gobgpd.toml');
    await writeFile(configPath, opts.config);
    args.push('-f', configPath, '-t', 'toml');
  }
  let child: ChildProcess | undefined;
  let log = '';

  async function launch(): Promise<void> {
    // A killed gobgpd leaves its socket file behind, and Go's Listen refuses an existing path.
    if (opts.apiUnixSocket) await rm(socketPath, { force: true });
    const proc = spawn(GOBGPD_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const append = (b: Buffer) => {
      log += b.toString();
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`gobgpd exited with ${proc.exitCode}: ${log.slice(-2000)}`);
      if (await canConnect(apiTarget)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`gobgpd API ${apiHost} not up after ${READY_TIMEOUT_MS} ms: ${log.slice(-2000)}`);
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(sig);
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited(proc);
    clearTimeout(timer);
  }

  const handle: GobgpdHandle = {
    apiAddress: opts.apiUnixSocket ? `unix:${socketPath}` : `127.0.0.1:${apiPort}`,
    apiPort,
    dir,
    get pid() {
      return child?.pid;
    },
    // The gobgp CLI speaks TCP only; with apiUnixSocket use the Speaker (or grpc) instead.
    cliArgs: (...rest) => ['-u', '127.0.0.1', '-p', String(apiPort), ...rest],
    async cli(...rest) {
      const { stdout } = await run(GOBGP_CLI_BIN, handle.cliArgs(...rest), { timeout: 10_000 });
      return stdout;
    },
    async cliJson<T>(...rest: string[]) {
      const out = await handle.cli(...rest, '-j');
      return JSON.parse(out === '' ? 'null' : out) as T;
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    async restart() {
      await signal('SIGTERM');
      await launch();
    },
    async logs() {
      await writeFile(logPath, log);
      return readFile(logPath, 'utf8');
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await launch();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return handle;
}
