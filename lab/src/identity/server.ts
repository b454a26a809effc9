/**
 * The backends' identity server, a contract the tests and users rely on:
 * - TCP: on each new connection it first sends `backend=<name>\n`, then echoes everything it receives.
 * - UDP: each datagram is answered with `backend=<name> ` followed by the payload.
 * UDP sockets are bound to each VIP address (not the wildcard) so the answer leaves with the VIP as source: with DSR
 * the client talks to the VIP and drops answers from any other address.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { LabError } from '../errors.js';

export interface ListenSpec {
  readonly protocol: 'tcp' | 'udp';
  readonly address: string;
  readonly port: number;
}

export interface IdentityServerOptions {
  readonly name: string;
  readonly listen: readonly ListenSpec[];
}

export interface IdentityServer {
  /** Bound addresses, with the real ports (port 0 in a spec picks a free one). */
  readonly bound: readonly ListenSpec[];
  close(): Promise<void>;
}

export function greeting(name: string): string {
  return `backend=${name}\n`;
}

/** Parses `tcp:198.51.100.10:80`, `udp:[2001:db8::1]:7000`. */
export function parseListenSpec(text: string): ListenSpec {
  const m = /^(tcp|udp):(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const address = m?.[2] ?? m?.[3];
  if (!m || !address) throw new LabError('OPTION_INVALID', `listen "${text}" is not PROTO:ADDRESS:PORT`);
  const port = Number(m[4]);
  if (port > 65535) throw new LabError('OPTION_INVALID', `listen "${text}": port ${port} is out of range`);
  return { protocol: m[1] as 'tcp' | 'udp', address, port };
}

/** The usage line of identity/main (the backend image's entrypoint hands it its own arguments). */
export const IDENTITY_USAGE = 'usage: identity --name NAME --listen PROTO:ADDRESS:PORT [--listen ...]';

/**
 * identity/main's arguments (`--name NAME`, `--listen SPEC` one or more): anything else is refused (LabError
 * OPTION_INVALID), so a misspelt `--lsiten` is not a server silently listening on fewer sockets than asked.
 * `--name` given again replaces the first: the image's entrypoint sets it from L4FLEET_BACKEND_NAME before "$@".
 */
export function parseIdentityArgs(args: readonly string[]): IdentityServerOptions {
  let name = '';
  const listen: ListenSpec[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg !== '--name' && arg !== '--listen') {
      throw new LabError('OPTION_INVALID', `unknown argument ${JSON.stringify(arg)}`);
    }
    const value = args[++i];
    if (value === undefined) throw new LabError('OPTION_INVALID', `${arg} needs a value`);
    if (arg === '--name') name = value;
    else listen.push(parseListenSpec(value));
  }
  if (!name) throw new LabError('OPTION_INVALID', '--name is required');
  if (listen.length === 0) throw new LabError('OPTION_INVALID', 'at least one --listen is required');
  return { name, listen };
}

export async function startIdentityServer(options: IdentityServerOptions): Promise<IdentityServer> {
  const hello = greeting(options.name);
  const prefix = Buffer.from(`backend=${options.name} `);
  const closers: (() => Promise<void>)[] = [];
  const bound: ListenSpec[] = [];
  try {
    for (const spec of options.listen) {
      if (spec.protocol === 'tcp') {
        const server = createServer((socket) => {
          socket.setNoDelay(true);
          // A reset from a client (a flow test ending abruptly) is normal here, not a crash.
          socket.on('error', () => socket.destroy());
          socket.write(hello);
          socket.pipe(socket);
        });
        await listenTcp(server, spec);
        const addr = server.address();
        bound.push({ ...spec, port: typeof addr === 'object' && addr ? addr.port : spec.port });
        closers.push(() => new Promise((resolve) => server.close(() => resolve())));
        const sockets = new Set<import('node:net').Socket>();
        server.on('connection', (s) => {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
        });
        closers.push(async () => {
          for (const s of sockets) s.destroy();
        });
      } else {
        const socket = createSocket({ type: spec.address.includes(':') ? 'udp6' : 'udp4' });
        socket.on('message', (msg, rinfo) => {
          socket.send(Buffer.concat([prefix, msg]), rinfo.port, rinfo.address);
        });
        socket.on('error', () => {});
        await bindUdp(socket, spec);
        bound.push({ ...spec, port: socket.address().port });
        closers.push(() => new Promise((resolve) => socket.close(() => resolve())));
      }
    }
  } catch (err) {
    await Promise.all(closers.map((c) => c()));
    throw err;
  }
  return {
    bound,
    close: async () => {
      await Promise.all(closers.reverse().map((c) => c()));
    },
  };
}

function listenTcp(server: Server, spec: ListenSpec): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(new LabError('COMMAND_FAILED', `identity server: tcp ${spec.address}:${spec.port}: ${err.message}`)),
    );
    server.listen({ host: spec.address, port: spec.port, ipv6Only: false }, () => resolve());
  });
}

function bindUdp(socket: UdpSocket, spec: ListenSpec): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', (err) =>
      reject(new LabError('COMMAND_FAILED', `identity server: udp ${spec.address}:${spec.port}: ${err.message}`)),
    );
    socket.bind({ address: spec.address, port: spec.port }, () => resolve());
  });
}
