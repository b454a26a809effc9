/**
 * One health probe of one member: tcp (connect, optionally send and expect), http and https (GET, expected status,
 * optionally a body that contains `expect`), udp (payload, a reply, optionally containing `expect`), dns (a query, the
 * answer's RCODE), agent (probe-agent.ts: the member's own word, HAProxy's agent-check), grpc (probe-grpc.ts: the gRPC
 * Health Checking Protocol). A probe never throws: it answers ok or not, with the reason, within the check's timeout.
 */
import { createSocket } from 'node:dgram';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { DEFAULT_HTTP_EXPECT_STATUS, type HealthCheck, statusExpected } from '@l4fleet/config';
import { dnsAnswerRcode, dnsQuery } from './dns-message.js';
import { probeAgent } from './probe-agent.js';
import type { ProbeOptions, ProbeResult, ProbeTarget } from './probe-common.js';
import { errCode, guarded, optionsFor, timedFinisher } from './probe-common.js';
import { probeGrpc } from './probe-grpc.js';
import { createReplyMatcher, MAX_PROBE_REPLY_BYTES } from './reply-match.js';

export type { ProbeOptions, ProbeResult, ProbeTarget };
export type Probe = (target: ProbeTarget, check: HealthCheck, opts?: ProbeOptions) => Promise<ProbeResult>;

/**
 * The TLS client side of https and tcp-with-tls checks: the certificate checked only with `verifyCertificate`
 * (against `ca`, else Node's roots), and the server name (SNI) only from `host`: never an address (RFC 6066 §3).
 */
function tlsClientOptions(check: HealthCheck, opts?: ProbeOptions) {
  return {
    rejectUnauthorized: check.verifyCertificate === true,
    ...(check.host === undefined ? {} : { servername: check.host }),
    ...(opts?.ca === undefined ? {} : { ca: opts.ca }),
  };
}

/**
 * Connect (with `tls`, then a TLS handshake as for https: SNI from `host`, the certificate checked only with
 * `verifyCertificate`); then send `payload` if there is one, and with `expect` read until the member has sent that
 * text (a banner such as SMTP's `220`, or the answer to the payload, such as Redis's `+PONG`), it closes, or the
 * timeout.
 */
function probeTcp(target: ProbeTarget, port: number, check: HealthCheck, opts?: ProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const where = {
      host: target.address,
      port,
      ...(opts?.sourceAddress ? { localAddress: opts.sourceAddress } : {}),
    };
    const sock = check.tls ? tlsConnect({ ...where, ...tlsClientOptions(check, opts) }) : connect(where);
    const finish = timedFinisher(started, check.timeoutMs, resolve, () => sock.destroy(), { signal: opts?.signal });
    const reply = check.expect === undefined ? undefined : createReplyMatcher(check.expect);
    sock.once(check.tls ? 'secureConnect' : 'connect', () => {
      if (check.payload !== undefined) sock.write(check.payload, 'utf8');
      if (reply === undefined) finish(true);
    });
    if (reply !== undefined) {
      sock.on(
        'data',
        guarded(finish, (chunk: Buffer) => {
          if (reply.push(chunk)) finish(true);
          else if (reply.full) finish(false, reply.lacks('reply'));
        }),
      );
      sock.once(
        'end',
        guarded(finish, () => finish(false, reply.lacks('reply'))),
      );
    }
    sock.once('error', (err) => finish(false, errCode(err)));
  });
}

/** RFC 9110 §7.2: the Host header carries the port unless it is the scheme's default. */
const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * GET (or HEAD, with `method`) `path`, expecting `expectStatus`. For https: TLS with Node's defaults (TLS 1.2 or later); the server name
 * (SNI) is `host` when set and none for an address (RFC 6066 §3); the certificate is checked only with
 * `verifyCertificate`, against `host` or else the member's address, and a failed check names Node's code
 * (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, `CERT_HAS_EXPIRED`, ...).
 */
function probeHttp(target: ProbeTarget, port: number, check: HealthCheck, opts?: ProbeOptions): Promise<ProbeResult> {
  const scheme = check.type === 'https' ? 'https' : 'http';
  return new Promise((resolve) => {
    const started = performance.now();
    const host =
      check.host === undefined ? {} : { host: port === DEFAULT_PORT[scheme] ? check.host : `${check.host}:${port}` };
    const options = {
      host: target.address,
      port,
      path: check.path ?? '/',
      method: check.method ?? 'GET',
      agent: false,
      headers: { 'user-agent': 'l4fleet-agent', connection: 'close', ...host },
      ...(opts?.sourceAddress ? { localAddress: opts.sourceAddress } : {}),
    } as const;
    const req =
      scheme === 'https' ? httpsRequest({ ...options, ...tlsClientOptions(check, opts) }) : httpRequest(options);
    const finish = timedFinisher(started, check.timeoutMs, resolve, () => req.destroy(), { signal: opts?.signal });
    req.once(
      'response',
      guarded(finish, (res: IncomingMessage) => {
        if (!statusExpected(check, res.statusCode ?? 0)) {
          res.resume();
          finish(false, `status ${res.statusCode} (expected ${check.expectStatus ?? DEFAULT_HTTP_EXPECT_STATUS})`);
          return;
        }
        if (check.expect === undefined && check.expectNot === undefined) {
          res.resume();
          finish(true);
          return;
        }
        const judge = createBodyJudge(check);
        res.on(
          'data',
          guarded(finish, (chunk: Buffer) => {
            const verdict = judge.push(chunk);
            if (verdict) finish(verdict.ok, verdict.reason);
          }),
        );
        res.once(
          'end',
          guarded(finish, () => {
            const verdict = judge.end();
            finish(verdict.ok, verdict.reason);
          }),
        );
        // A body cut short (Content-Length not reached, no last chunk: the member closed mid-answer) never ends: down
        // at once, like a tcp check's early close (0006 §Health), not a timeout.
        res.once(
          'close',
          guarded(finish, () => {
            if (res.complete) return;
            const verdict = judge.end();
            const cut = 'the member closed before the body ended';
            finish(false, verdict.ok ? cut : `${verdict.reason}; ${cut}`);
          }),
        );
      }),
    );
    // 101 Switching Protocols (never asked for: a WebSocket-only endpoint, a proxy) comes as 'upgrade', never as
    // 'response': without this listener Node drops the socket and the probe waited out its whole timeoutMs. It is
    // down whatever expectStatus says: a 1xx is never a final answer (config's healthCheckProblems), and a
    // 1xx-inclusive range ("100-399") taking it would pass the member without reading a body for expect/expectNot.
    req.once(
      'upgrade',
      guarded(finish, (res: IncomingMessage, socket: { destroy(): void }) => {
        socket.destroy();
        finish(false, `status ${res.statusCode ?? 0} (expected ${check.expectStatus ?? DEFAULT_HTTP_EXPECT_STATUS})`);
      }),
    );
    req.once('error', (err) => finish(false, errCode(err)));
    req.end();
  });
}

/**
 * An http body against `expect` and `expectNot`: decided at the first sight of `expectNot` (down), else once `expect`
 * is seen when there is no `expectNot` to rule out (as before it existed), else at the end of the body or after
 * MAX_PROBE_REPLY_BYTES (F5 likewise judges only what it read).
 */
function createBodyJudge(check: HealthCheck) {
  const wanted = check.expect === undefined ? undefined : createReplyMatcher(check.expect);
  const refused = check.expectNot === undefined ? undefined : createReplyMatcher(check.expectNot);
  let found = false;
  let read = 0;
  const end = (): { ok: boolean; reason?: string } =>
    wanted && !found ? { ok: false, reason: wanted.lacks('body') } : { ok: true };
  return {
    push(chunk: Buffer): { ok: boolean; reason?: string } | undefined {
      read += chunk.length;
      if (refused?.push(chunk)) return { ok: false, reason: refused.contains('body', 'expectNot') };
      if (wanted && !found) found = wanted.push(chunk);
      if (found && !refused) return { ok: true };
      return read >= MAX_PROBE_REPLY_BYTES ? end() : undefined;
    },
    end,
  };
}

/** What a reply datagram says: up, or down with a reason, or `ignore` (why it is no answer to the probe: wait on). */
type Verdict = { readonly ok: boolean; readonly reason?: string } | { readonly ignore: string };

/**
 * Send one datagram from a connected socket and judge the replies until one decides or the timeout. A connected
 * UDP socket surfaces ICMP port unreachable as ECONNREFUSED: a fast, certain "down".
 */
function probeUdp(
  target: ProbeTarget,
  port: number,
  timeoutMs: number,
  datagram: Buffer,
  judge: (reply: Buffer) => Verdict,
  opts?: ProbeOptions,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = createSocket(target.address.includes(':') ? 'udp6' : 'udp4');
    let ignored: string | undefined;
    let closed = false;
    const finish = timedFinisher(
      started,
      timeoutMs,
      resolve,
      () => {
        closed = true;
        try {
          sock.close();
        } catch {
          // already closed
        }
      },
      {
        signal: opts?.signal,
        timeoutReason: () => (ignored ? `timeout (ignored a reply: ${ignored})` : 'timeout'),
      },
    );
    sock.once('error', (err) => finish(false, errCode(err)));
    sock.on(
      'message',
      guarded(finish, (msg: Buffer) => {
        const verdict = judge(msg);
        if ('ignore' in verdict) ignored = verdict.ignore;
        else finish(verdict.ok, verdict.reason);
      }),
    );
    // A failed connect() (ENETUNREACH, a blackhole or prohibit route, EACCES for a broadcast address) comes to this
    // callback, not to 'error': sending on the unconnected socket would throw ERR_SOCKET_BAD_PORT a tick later, an
    // uncaught exception that ends the agent.
    // A probe stopped before it starts (or while binding) has a closed socket: connect() there would throw.
    const send = () => {
      if (closed) return;
      sock.connect(port, target.address, (connectErr?: Error) => {
        if (connectErr) {
          finish(false, errCode(connectErr));
          return;
        }
        if (closed) return;
        sock.send(datagram, (err) => {
          if (err) finish(false, errCode(err));
        });
      });
    };
    if (closed) return;
    if (opts?.sourceAddress) sock.bind({ address: opts.sourceAddress, port: 0 }, send);
    else send();
  });
}

/** `udp`: the payload; any reply is up, or with `expect` a reply that contains it. */
function probeUdpPayload(target: ProbeTarget, port: number, check: HealthCheck, opts?: ProbeOptions) {
  const datagram = Buffer.from(check.payload ?? '', 'utf8');
  return probeUdp(
    target,
    port,
    check.timeoutMs,
    datagram,
    (msg) => {
      if (check.expectNot !== undefined) {
        const refused = createReplyMatcher(check.expectNot);
        if (refused.push(msg)) return { ok: false, reason: refused.contains('reply', 'expectNot') };
      }
      if (check.expect === undefined) return { ok: true };
      const reply = createReplyMatcher(check.expect);
      return reply.push(msg) ? { ok: true } : { ok: false, reason: reply.lacks('reply') };
    },
    opts,
  );
}

/** `dns`: one query (dns-message.ts); its answer's RCODE must be `expectRcode`. */
function probeDns(target: ProbeTarget, port: number, check: HealthCheck, opts?: ProbeOptions) {
  const query = dnsQuery(check.query ?? '.', check.queryType ?? 'A');
  const expected = check.expectRcode ?? 'NOERROR';
  return probeUdp(
    target,
    port,
    check.timeoutMs,
    query.bytes,
    (msg) => {
      const answer = dnsAnswerRcode(query, msg);
      if ('notAnswer' in answer) return { ignore: answer.notAnswer };
      return answer.rcode === expected
        ? { ok: true }
        : { ok: false, reason: `rcode ${answer.rcode} (expected ${expected})` };
    },
    opts,
  );
}

/** The real probe. A check of type `none` is always ok (the member is taken as up). */
export const probeMember: Probe = async (member, check, opts) => {
  const port = check.port ?? member.port;
  // A check with an address of its own (F5's alias address) probes it for every member of the pool.
  const target = check.address === undefined ? member : { address: check.address, port };
  // health.sourceAddress is of one family: a target of the other is probed from the kernel's choice.
  const own = optionsFor(target.address, opts);
  switch (check.type) {
    case 'none':
      return { ok: true, latencyMs: 0 };
    case 'tcp':
      return probeTcp(target, port, check, own);
    case 'http':
    case 'https':
      return probeHttp(target, port, check, own);
    case 'udp':
      return probeUdpPayload(target, port, check, own);
    case 'dns':
      return probeDns(target, port, check, own);
    case 'agent':
      return probeAgent(target, port, check, own);
    case 'grpc':
      return probeGrpc(target, port, check, own);
  }
};
