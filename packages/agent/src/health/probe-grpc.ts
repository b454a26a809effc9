/**
 * The `grpc` check: the gRPC Health Checking Protocol (grpc/grpc doc/health-checking.md, grpc.health.v1.Health/Check),
 * what Kubernetes' grpc probes, Envoy's and grpc_health_probe ask. One unary call over HTTP/2 (RFC 9113; cleartext h2c
 * with prior knowledge, or TLS with ALPN h2 when `tls`): HealthCheckRequest { service } and the member is up only when
 * the HealthCheckResponse says SERVING. The two messages are one field each, so they are encoded here rather than
 * through a protobuf library: request field 1 (string, tag 0x0a), response field 1 (enum, tag 0x08).
 */
import { connect as http2Connect } from 'node:http2';
import { errCode, guarded, type PortProbe, timedFinisher } from './probe-common.js';
import { MAX_PROBE_REPLY_BYTES } from './reply-match.js';

export const GRPC_HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

/** HealthCheckResponse.ServingStatus (health.proto). */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;
const SERVING = 1;

/** gRPC status codes (grpc/grpc doc/statuscodes.md), for reasons people can read. */
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
/** Why a code usually comes back from a health check: the protocol's meaning, not the code's generic one. */
const GRPC_CODE_HINTS: Readonly<Record<number, string>> = {
  5: 'the server does not know the service',
  12: 'the server has no grpc.health.v1 service',
};
const SHOWN_MESSAGE_CHARS = 120;
/** A grpc-status header as a code: decimal digits (codes are 0-16; a newer one still reads as "unknown code"). */
const GRPC_STATUS_TEXT = /^\d{1,3}$/;
/** Characters of a grpc-status that is not a code kept in the reason. */
const SHOWN_STATUS_CHARS = 20;

/** A protobuf varint (base 128, little end first). */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-prefixed message (gRPC over HTTP/2: compressed flag 0, 4-byte big-endian length) of HealthCheckRequest. */
export function healthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const message =
    name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, ...varint(name.length)]), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/**
 * The serving status in a length-prefixed HealthCheckResponse: field 1 (proto3 leaves out a 0, UNKNOWN); unknown
 * fields are skipped as protobuf says. A string when the bytes are not such a message.
 */
export function servingStatus(body: Buffer): number | string {
  if (body.length < 5) return 'a reply without a message';
  if (body[0] !== 0) return 'a compressed reply (none was offered)';
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return 'a truncated reply';
  let at = 5;
  const end = 5 + length;
  let status = 0;
  // Up to 10 bytes, 64 bits (protobuf encoding, "Base 128 Varints"): a uint64 field the server's newer proto has,
  // or a negative enum value (sign-extended to 64 bits), is still a well-formed reply. A bigint keeps every bit.
  const readVarint = (): bigint | undefined => {
    let v = 0n;
    for (let shift = 0n; shift < 70n && at < end; shift += 7n) {
      const b = body[at++] as number;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    return undefined;
  };
  while (at < end) {
    const tag = readVarint();
    if (tag === undefined) return 'a malformed reply';
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const v = readVarint();
      if (v === undefined) return 'a malformed reply';
      // An enum is an int32: its low 32 bits, as protobuf's own parsers read it.
      if (tag >> 3n === 1n) status = Number(BigInt.asIntN(32, v));
    } else if (wire === 2) {
      const n = readVarint();
      if (n === undefined) return 'a malformed reply';
      at += Number(n);
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else return 'a malformed reply';
  }
  return at === end ? status : 'a malformed reply';
}

/** Node's error code; HTTP/2's bare protocol error says what usually causes it at a health check. */
function reasonOf(err: unknown): string {
  const code = errCode(err);
  return code === 'ERR_HTTP2_ERROR'
    ? `${code} (not an HTTP/2 server: an HTTP/1 port, or TLS without tls: true?)`
    : code;
}

/**
 * grpc-message as text: percent-decoded (gRPC over HTTP/2, "Responses"), but a server that sends a raw `%`
 * (`load 100%`) gets its message shown as sent: the spec says a decoder must not fail on an invalid encoding, and
 * decodeURIComponent throws URIError there.
 */
function grpcMessageText(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const codeText = (code: number): string =>
  `grpc-status ${code} (${GRPC_CODES[code] ?? 'unknown code'}${GRPC_CODE_HINTS[code] ? `: ${GRPC_CODE_HINTS[code]}` : ''})`;

/**
 * Calls Check for `service` (default "", the server as a whole) on `target:port`; up on SERVING. Down, named: a
 * connection refused or reset, the timeout, an HTTP status other than 200, a gRPC status other than OK (with its
 * meaning: `grpc-status 12 (UNIMPLEMENTED: the server has no grpc.health.v1 service)`), and any serving status but
 * SERVING (`serving status NOT_SERVING`). With `tls`: SNI and the certificate's name from `host`, the certificate
 * checked only with `verifyCertificate` (against health.caFile, else Node's roots), as for https.
 */
/** For tests: the sizes of the body chunks a probe kept, reported when its reply ends (the cap's bookkeeping). */
export const probeGrpcTestHooks: { onBodyKept?: (chunkBytes: readonly number[]) => void } = {};

export const probeGrpc: PortProbe = (target, port, check, opts) =>
  new Promise((resolve) => {
    const started = performance.now();
    const literal = target.address.includes(':') ? `[${target.address}]` : target.address;
    const session = http2Connect(`${check.tls ? 'https' : 'http'}://${literal}:${port}`, {
      ...(opts?.sourceAddress ? { localAddress: opts.sourceAddress } : {}),
      ...(check.tls
        ? {
            rejectUnauthorized: check.verifyCertificate === true,
            ...(check.host === undefined ? {} : { servername: check.host }),
            ...(opts?.ca === undefined ? {} : { ca: opts.ca }),
          }
        : {}),
    });
    const finish = timedFinisher(started, check.timeoutMs, resolve, () => session.destroy(), {
      signal: opts?.signal,
    });
    session.once('error', (err) => finish(false, reasonOf(err)));
    if (session.destroyed) return; // stopped before it started (an aborted signal): request() would throw
    const req = session.request({
      ':method': 'POST',
      ':path': GRPC_HEALTH_CHECK_PATH,
      ':authority': check.host === undefined ? `${literal}:${port}` : `${check.host}:${port}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'l4fleet-agent',
      'grpc-timeout': `${check.timeoutMs}m`,
    });
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    // The chunks kept (at most MAX_PROBE_REPLY_BYTES in all), joined once at the end: joining at every chunk copied
    // everything read again each time, quadratic for a server that drips its reply.
    const chunks: Buffer[] = [];
    let bodyBytes = 0;
    const fromHeaders = (h: Record<string, unknown>) => {
      if (typeof h['grpc-status'] === 'string') grpcStatus = h['grpc-status'];
      if (typeof h['grpc-message'] === 'string') grpcMessage = h['grpc-message'];
    };
    req.once('response', (headers) => {
      httpStatus = Number(headers[':status'] ?? 0);
      fromHeaders(headers); // a trailers-only reply (an error) carries the status here
    });
    req.once('trailers', (trailers) => fromHeaders(trailers));
    req.on('data', (chunk: Buffer) => {
      const kept = chunk.subarray(0, MAX_PROBE_REPLY_BYTES - bodyBytes);
      if (kept.length === 0) return;
      chunks.push(kept);
      bodyBytes += kept.length;
    });
    req.once(
      'end',
      guarded(finish, () => {
        probeGrpcTestHooks.onBodyKept?.(chunks.map((c) => c.length));
        if (httpStatus !== 200) return finish(false, `HTTP status ${httpStatus} (expected 200: is it a gRPC server?)`);
        if (grpcStatus === undefined) return finish(false, 'no grpc-status in the reply');
        // Decimal digits only (gRPC over HTTP/2: Status → 1*DIGIT): Number() read "", "0x0", "+0" and "0.0" as 0,
        // OK, and took such a member up.
        if (!GRPC_STATUS_TEXT.test(grpcStatus)) {
          const cut = grpcStatus.length > SHOWN_STATUS_CHARS ? '...' : '';
          return finish(
            false,
            `grpc-status ${JSON.stringify(grpcStatus.slice(0, SHOWN_STATUS_CHARS) + cut)} is not a status code`,
          );
        }
        const code = Number(grpcStatus);
        if (code !== 0) {
          const message = grpcMessage ? `: ${grpcMessageText(grpcMessage).slice(0, SHOWN_MESSAGE_CHARS)}` : '';
          return finish(false, `${codeText(code)}${message}`);
        }
        const status = servingStatus(Buffer.concat(chunks, bodyBytes));
        if (typeof status === 'string') return finish(false, status);
        finish(
          status === SERVING,
          status === SERVING ? undefined : `serving status ${SERVING_STATUS[status] ?? status}`,
        );
      }),
    );
    // A stream ended by its session (a refused connection, a TLS failure) names the session's error as its cause.
    req.once('error', (err) => finish(false, reasonOf((err as { cause?: unknown }).cause ?? err)));
    req.end(healthCheckRequest(check.service ?? ''));
  });
