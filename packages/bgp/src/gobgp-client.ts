/** A typed, promise-based wrapper over GobgpApi; every gRPC failure becomes a BgpError here, once. */
import { type ClientReadableStream, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { canonicalAddress, isHostName, showValue } from '@l4fleet/config';
import { type ApiObject, apiFamily, fromApiPath, type HeldPath, isLocalPath, toApiPath, toApiPeer } from './codec.js';
import { BgpError, fromGrpcError } from './errors.js';
import { GLOBAL_TABLE } from './learnt-policy.js';
import { gobgpClientConstructor, type RawGobgpClient } from './proto.js';
import type { CanonicalAdvertisement, CanonicalGlobal, CanonicalPeer, IpFamily } from './validate.js';

/** Deadline of one unary call or one finished stream, ms. gobgpd answers local calls in well under 10 ms. */
export const DEFAULT_CALL_TIMEOUT_MS = 5_000;

export interface GobgpClientOptions {
  /** `127.0.0.1:50051`, `[::1]:50051` (any loopback address), `localhost:50051` or `unix:/run/gobgpd.sock`. */
  address: string;
  /** Allow a non-loopback API address (gobgpd's API has no authentication); default false. */
  allowRemoteApi?: boolean;
  callTimeoutMs?: number;
}

/** The forms an API address takes, for messages. */
const API_ADDRESS_FORM = 'HOST:PORT (port 1-65535; IPv6 as [ADDRESS]:PORT) or unix:/PATH';

/**
 * Whether `host` (of `[V6]:PORT` when `bracketed`) is this host's loopback: 127.0.0.0/8, ::1, 127.0.0.0/8 mapped into
 * IPv6 (::ffff:127.x.y.z), or localhost; any other address or DNS name is remote. Compared in canonical form
 * (@l4fleet/config canonicalAddress), so [0:0:0:0:0:0:0:1] and [::ffff:127.0.0.1] are found in any spelling.
 * Undefined when `host` is neither an address of its form nor a name (300.1.1.1, 127.1, [foo]).
 */
function hostIsLoopback(host: string, bracketed: boolean): boolean | undefined {
  let a: { family: 4 | 6; address: string } | undefined;
  try {
    a = canonicalAddress(host);
  } catch {
    if (bracketed || !isHostName(host)) return undefined;
    return host === 'localhost';
  }
  if (a.family !== (bracketed ? 6 : 4)) return undefined;
  if (a.family === 4) return a.address.startsWith('127.');
  return a.address === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(a.address);
}

/** `unix:/PATH` or `unix:///PATH` (gRPC's forms of an absolute path; `unix://x/y` would name a host x). */
function unixProblem(address: string): string | undefined {
  const path = address.startsWith('unix://') ? address.slice('unix://'.length) : address.slice('unix:'.length);
  if (path.length > 1 && path.startsWith('/') && !path.includes('\0')) return undefined;
  return `${showValue(address)} is not unix:/ABSOLUTE/PATH (or unix:///ABSOLUTE/PATH)`;
}

/**
 * Why `address` cannot be gobgpd's API address, or undefined when it can: `"VALUE" is not ...`, to go after the
 * field that held it (the agent's bgp.gobgpdAddress) or the option (`address`). Off the host only with
 * `allowRemoteApi`: anyone who reaches gobgpd's API can announce any route. The advice to set that option is left
 * to the caller who has it (GobgpClient): agent.yaml has none.
 */
export function apiAddressProblem(address: unknown, allowRemoteApi = false): string | undefined {
  if (typeof address !== 'string') return `${showValue(address)} is not a gRPC address: ${API_ADDRESS_FORM}`;
  if (address.startsWith('unix:')) return unixProblem(address);
  const m = /^(?:\[([^\]]*)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : 0;
  const loopback = m ? hostIsLoopback((m[1] ?? m[2]) as string, m[1] !== undefined) : undefined;
  if (loopback === undefined || port < 1 || port > 65_535) {
    return `${showValue(address)} is not ${API_ADDRESS_FORM}`;
  }
  if (loopback || allowRemoteApi) return undefined;
  return `${showValue(address)} is not on this host (loopback: 127.0.0.0/8, ::1 or localhost; or unix:/PATH): gobgpd's API is unauthenticated, and whoever reaches it can announce any route`;
}

/** apiAddressProblem as a BgpError API_ADDRESS_INVALID; the address unchanged when it is usable. */
export function validateApiAddress(address: unknown, allowRemoteApi = false): string {
  const why = apiAddressProblem(address, allowRemoteApi);
  if (why !== undefined) throw new BgpError('API_ADDRESS_INVALID', `address ${why}`);
  return address as string;
}

/** validateApiAddress, naming the option that lets a remote address through (the option's caller can set it). */
function clientApiAddress(address: unknown, allowRemoteApi = false): string {
  validateApiAddress(address, true);
  try {
    return validateApiAddress(address, allowRemoteApi);
  } catch (err) {
    throw new BgpError('API_ADDRESS_INVALID', `${(err as Error).message}; allowRemoteApi: true takes it anyway`, {
      cause: err,
    });
  }
}

export interface GobgpGlobal {
  asn: number;
  routerId: string;
  listenPort: number;
}

export interface WatchHandle {
  /** Settles when the stream ends, with the reason as a BgpError. */
  readonly ended: Promise<BgpError>;
  cancel(): void;
}

export class GobgpClient {
  readonly address: string;
  private readonly raw: RawGobgpClient;
  private readonly callTimeoutMs: number;

  constructor(opts: GobgpClientOptions) {
    this.address = clientApiAddress(opts.address, opts.allowRemoteApi);
    this.callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const Ctor = gobgpClientConstructor();
    // No gRPC keepalive pings: gobgpd's Go server enforces a 5 min minimum and answers faster pings with GOAWAY.
    // The speaker's liveness ping (ping(), every second) is the check instead.
    this.raw = new Ctor(this.address, credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
    });
  }

  private deadline(): Date {
    return new Date(Date.now() + this.callTimeoutMs);
  }

  private unary(method: string, request: ApiObject, what: string, timeoutMs = this.callTimeoutMs): Promise<ApiObject> {
    return new Promise((resolve, reject) => {
      this.raw[method](
        request,
        new Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (err: ServiceError | null, res: ApiObject) => (err ? reject(fromGrpcError(what, err)) : resolve(res)),
      );
    });
  }

  private collect(method: string, request: ApiObject, what: string): Promise<ApiObject[]> {
    return new Promise((resolve, reject) => {
      const out: ApiObject[] = [];
      const stream: ClientReadableStream<ApiObject> = this.raw[method](request, new Metadata(), {
        deadline: this.deadline(),
      });
      stream.on('data', (d: ApiObject) => out.push(d));
      stream.on('error', (err) => reject(fromGrpcError(what, err)));
      stream.on('end', () => resolve(out));
    });
  }

  /** Resolves once the channel is connected; rejects with UNAVAILABLE after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(Date.now() + timeoutMs, (err?: Error) =>
        err
          ? reject(
              new BgpError('UNAVAILABLE', `gobgpd at ${this.address} is not reachable: ${err.message}`, {
                cause: err,
                retryable: true,
              }),
            )
          : resolve(),
      );
    });
  }

  async getGlobal(): Promise<GobgpGlobal> {
    const res = await this.unary('GetBgp', {}, 'GetBgp');
    const g = res.global ?? {};
    return { asn: Number(g.asn ?? 0), routerId: String(g.router_id ?? ''), listenPort: Number(g.listen_port ?? 0) };
  }

  /**
   * Is gobgpd's server answering at all? One GetBgp with a short deadline of its own. A stopped or deadlocked gobgpd
   * keeps its TCP connection open (the kernel ACKs), so only an answer, not the channel state, shows it is alive;
   * gRPC keepalive cannot be used instead: gobgpd's Go server refuses pings more often than every 5 min (GOAWAY).
   */
  async ping(timeoutMs: number): Promise<void> {
    await this.unary('GetBgp', {}, 'GetBgp (liveness)', timeoutMs);
  }

  async startBgp(g: CanonicalGlobal): Promise<void> {
    const global: ApiObject = { asn: g.asn, router_id: g.routerId, listen_port: g.listenPort };
    if (g.listenAddresses.length > 0) global.listen_addresses = [...g.listenAddresses];
    await this.unary('StartBgp', { global }, `StartBgp asn ${g.asn} routerId ${g.routerId}`);
  }

  async listPeers(): Promise<ApiObject[]> {
    const rows = await this.collect('ListPeer', {}, 'ListPeer');
    return rows.map((r) => r.peer as ApiObject).filter((p) => p !== undefined);
  }

  async addPeer(peer: CanonicalPeer): Promise<void> {
    await this.unary('AddPeer', { peer: toApiPeer(peer) }, `AddPeer ${peer.address}`);
  }

  async deletePeer(address: string): Promise<void> {
    await this.unary('DeletePeer', { address }, `DeletePeer ${address}`);
  }

  /** Paths this node originates (not those learnt from neighbours) of one family. */
  async listLocalPaths(family: IpFamily): Promise<HeldPath[]> {
    const rows = await this.collect(
      'ListPath',
      { table_type: 'GLOBAL', family: apiFamily(family) },
      `ListPath IPv${family}`,
    );
    const out: HeldPath[] = [];
    for (const row of rows) {
      for (const path of (row.destination?.paths ?? []) as ApiObject[]) {
        if (!isLocalPath(path)) continue;
        const adv = fromApiPath(path);
        if (adv) out.push(adv);
      }
    }
    return out;
  }

  async addPath(adv: CanonicalAdvertisement): Promise<void> {
    await this.unary('AddPath', { table_type: 'GLOBAL', path: toApiPath(adv) }, `AddPath ${adv.prefix}`);
  }

  /** Withdraws the local path of `path.identifier` (0: ours) for its prefix; gobgpd ignores the attributes. */
  async deletePath(path: HeldPath): Promise<void> {
    const request = {
      table_type: 'GLOBAL',
      family: apiFamily(path.family),
      path: toApiPath(path, true, path.identifier),
    };
    await this.unary('DeletePath', request, `DeletePath ${path.prefix} identifier ${path.identifier}`);
  }

  /** gobgpd's global import policy assignment (ListPolicyAssignment), undefined if it lists none. */
  async globalImportAssignment(): Promise<ApiObject | undefined> {
    const rows = await this.collect(
      'ListPolicyAssignment',
      { name: GLOBAL_TABLE, direction: 'IMPORT' },
      'ListPolicyAssignment global import',
    );
    return rows.map((r) => r.assignment as ApiObject | undefined).find((a) => a !== undefined);
  }

  /** The policy called `name` (ListPolicy), undefined if gobgpd has none. */
  async getPolicy(name: string): Promise<ApiObject | undefined> {
    const rows = await this.collect('ListPolicy', { name }, `ListPolicy ${name}`);
    return rows.map((r) => r.policy as ApiObject | undefined).find((p) => p?.name === name);
  }

  async addPolicy(policy: ApiObject): Promise<void> {
    await this.unary('AddPolicy', { policy }, `AddPolicy ${policy.name}`);
  }

  /** Deletes the policy and the statements no other policy uses. */
  async deletePolicy(name: string): Promise<void> {
    await this.unary('DeletePolicy', { policy: { name }, all: true }, `DeletePolicy ${name}`);
  }

  /** Is there a statement called `name` (ListStatement), in a policy or left over from one? */
  async hasStatement(name: string): Promise<boolean> {
    const rows = await this.collect('ListStatement', { name }, `ListStatement ${name}`);
    return rows.some((r) => r.statement?.name === name);
  }

  /**
   * Deletes the statement called `name` (`all`: the whole statement, not some of its conditions). gobgpd refuses
   * while a policy holds it ("statement ... is in use").
   */
  async deleteStatement(name: string): Promise<void> {
    await this.unary('DeleteStatement', { statement: { name }, all: true }, `DeleteStatement ${name}`);
  }

  /** Makes the global import assignment exactly `policies`, in order, with `defaultAction`. */
  async setGlobalImportPolicy(policies: readonly string[], defaultAction: 'ACCEPT' | 'REJECT'): Promise<void> {
    const assignment = {
      name: GLOBAL_TABLE,
      direction: 'IMPORT',
      policies: policies.map((name) => ({ name })),
      default_action: defaultAction,
    };
    await this.unary('SetPolicyAssignment', { assignment }, `SetPolicyAssignment global import [${policies}]`);
  }

  /**
   * Runs every peer's Adj-RIB-In through the import policy again (soft reset in, no session reset, no message to
   * the peer): gobgpd applies a changed policy only to paths that arrive after it.
   */
  async softResetIn(): Promise<void> {
    await this.unary('ResetPeer', { address: 'all', soft: true, direction: 'IN' }, 'ResetPeer all soft in');
  }

  /** Streams peer state changes into `onPeer` until the stream breaks or `cancel()`; never rejects. */
  watchPeers(onPeer: (peer: ApiObject) => void): WatchHandle {
    const stream: ClientReadableStream<ApiObject> = this.raw.WatchEvent({ peer: {} });
    const ended = new Promise<BgpError>((resolve) => {
      stream.on('data', (ev: ApiObject) => {
        if (ev.peer?.peer) onPeer(ev.peer.peer as ApiObject);
      });
      stream.on('error', (err) => resolve(fromGrpcError('WatchEvent', err)));
      stream.on('end', () =>
        resolve(new BgpError('UNAVAILABLE', 'gobgpd ended the WatchEvent stream', { retryable: true })),
      );
    });
    return { ended, cancel: () => stream.cancel() };
  }

  close(): void {
    this.raw.close();
  }
}
