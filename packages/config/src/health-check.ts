/**
 * A pool's health check: parsed from the fleet file (every field checked, the type's defaults filled) and the rules
 * that keep a check from being one that can never pass. Types: `tcp` connects; `http` and `https` GET `path` and
 * expect `expectStatus` (https over TLS, RFC 8446, with the certificate checked only when `verifyCertificate`, as
 * F5's https monitor and keepalived's SSL_GET do by default: the check asks "does it serve", not "is its
 * certificate right"); `udp` sends `payload` and expects any reply; `none` takes the member as up. `tcp` may send a
 * `payload` once connected, and `expect` (tcp, udp, http, https) names text the reply or the body must contain.
 * `dns` asks a name over UDP (RFC 1035) and expects an RCODE. `grpc` calls the gRPC Health Checking Protocol
 * (grpc.health.v1.Health/Check, over HTTP/2, with `tls` over TLS) for a `service` and expects SERVING.
 */
import {
  DEFAULT_HEALTH_FALL,
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_HEALTH_RISE,
  DEFAULT_HEALTH_TIMEOUT_MS,
  DEFAULT_HTTP_EXPECT_STATUS,
  DEFAULT_HTTP_PATH,
  defaultHealthCheck,
} from './defaults.js';
import type { ConfigProblem } from './errors.js';
import {
  addressField,
  boolField,
  checkKeys,
  intField as int,
  isRawObject as isObj,
  oneOfField as oneOf,
  type Problems,
  showValue as show,
} from './fields.js';
import {
  MAX_EXPECT_BYTES,
  MAX_HTTP_PATH_CHARS,
  MAX_TCP_PAYLOAD_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  utf8Bytes,
} from './limits.js';
import type { DnsQueryType, DnsRcode, HealthCheck, HealthCheckType, HttpCheckMethod, StatusRange } from './types.js';

export const HEALTH_CHECK_TYPES: readonly HealthCheckType[] = [
  'tcp',
  'http',
  'https',
  'udp',
  'dns',
  'agent',
  'grpc',
  'none',
];
export const DNS_QUERY_TYPES: readonly DnsQueryType[] = ['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT'];
export const DNS_RCODES: readonly DnsRcode[] = ['NOERROR', 'NXDOMAIN'];
export const HTTP_CHECK_METHODS: readonly HttpCheckMethod[] = ['GET', 'HEAD'];
export const DEFAULT_DNS_QUERY_TYPE: DnsQueryType = 'A';
export const DEFAULT_DNS_RCODE: DnsRcode = 'NOERROR';
/** The types that send an HTTP request (RFC 9110): path, expectStatus and host apply to them. */
export const HTTP_CHECK_TYPES: readonly HealthCheckType[] = ['http', 'https'];

export const isHttpCheck = (type: HealthCheckType): boolean => HTTP_CHECK_TYPES.includes(type);
/** Whether the check speaks TLS: https, or tcp or grpc with `tls: true`. */
export const usesTls = (hc: Pick<HealthCheck, 'type' | 'tls'>): boolean =>
  hc.type === 'https' || ((hc.type === 'tcp' || hc.type === 'grpc') && hc.tls === true);
/** The checks that speak TCP to the member (a UDP VIP's member port is no place for them without `port`). */
export const probesTcp = (type: HealthCheckType): boolean => isHttpCheck(type) || type === 'grpc';

/** A gRPC fully-qualified service name (package and service, dot-separated identifiers: `myapp.v1.Orders`). */
const GRPC_SERVICE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const MAX_GRPC_SERVICE_CHARS = 255;

/** RFC 3986 §3.3 path and §3.4 query characters (with %-escapes): no spaces or controls in a request line. */
const HTTP_PATH = /^\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;
/** RFC 1123 §2.1 host name label: letters, digits, inner hyphens, at most 63 characters. */
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_HOST_NAME_CHARS = 253;

/** RFC 1035 §2.3.4 / RFC 2181 §11 query name label: any of letters, digits, hyphens and underscores (SRV's `_sip`). */
const QUERY_LABEL = /^[A-Za-z0-9_-]{1,63}$/;

/** A name a `dns` check may ask for: `.` (the root), or labels of at most 63 and 253 characters in all. */
export function isQueryName(v: string): boolean {
  if (v === '.') return true;
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  return name.length > 0 && name.length <= MAX_HOST_NAME_CHARS && name.split('.').every((l) => QUERY_LABEL.test(l));
}

/**
 * A DNS host name: the Host header, and for https the TLS server name, which RFC 6066 §3 says must not be an IP
 * literal (an all-numeric last label is one, RFC 3696 §2).
 */
export function isHostName(v: string): boolean {
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  if (name.length === 0 || name.length > MAX_HOST_NAME_CHARS) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1] ?? '');
}

function port(p: Problems, path: string, v: unknown): number {
  return int(p, path, v, 1, 65_535, 'a port');
}

/** The fleet file's `pools[i].healthCheck`, defaulted; every problem goes to `p` with its path. */
export function healthCheckField(p: Problems, path: string, v: unknown): HealthCheck {
  if (v === undefined) return defaultHealthCheck();
  if (!isObj(v)) {
    p.add(path, `${show(v)} is not an object`);
    return defaultHealthCheck();
  }
  checkKeys(p, path, v, [
    'type',
    'port',
    'address',
    'path',
    'method',
    'expectStatus',
    'host',
    'verifyCertificate',
    'tls',
    'payload',
    'expect',
    'expectNot',
    'query',
    'queryType',
    'expectRcode',
    'service',
    'intervalMs',
    'timeoutMs',
    'rise',
    'fall',
  ]);
  const type = oneOf<HealthCheckType>(p, `${path}.type`, v.type, HEALTH_CHECK_TYPES);
  const intervalMs = int(
    p,
    `${path}.intervalMs`,
    v.intervalMs,
    100,
    3_600_000,
    'an interval in ms',
    DEFAULT_HEALTH_INTERVAL_MS,
  );
  const timeoutMs = int(
    p,
    `${path}.timeoutMs`,
    v.timeoutMs,
    10,
    3_600_000,
    'a timeout in ms',
    DEFAULT_HEALTH_TIMEOUT_MS,
  );
  if (timeoutMs > intervalMs) p.add(`${path}.timeoutMs`, `${timeoutMs} is longer than intervalMs (${intervalMs})`);
  const hc: { -readonly [K in keyof HealthCheck]: HealthCheck[K] } = {
    type,
    intervalMs,
    timeoutMs,
    rise: int(p, `${path}.rise`, v.rise, 1, 100, 'a count', DEFAULT_HEALTH_RISE),
    fall: int(p, `${path}.fall`, v.fall, 1, 100, 'a count', DEFAULT_HEALTH_FALL),
  };
  if (v.port !== undefined) hc.port = port(p, `${path}.port`, v.port);
  if (v.address !== undefined && type !== 'none') {
    const address = addressField(p, `${path}.address`, v.address);
    if (address !== undefined) hc.address = address.address;
    if (v.port === undefined)
      p.add(
        `${path}.port`,
        `is required with address (the port to probe at ${show(v.address)}; the member's port is the member's)`,
      );
  }
  const onlyFor = (field: string, types: readonly HealthCheckType[]) => {
    if (v[field] !== undefined && !types.includes(type))
      p.add(`${path}.${field}`, `applies only to type ${types.join(' | ')}, not ${type}`);
  };
  onlyFor('path', HTTP_CHECK_TYPES);
  onlyFor('method', HTTP_CHECK_TYPES);
  onlyFor('expectStatus', HTTP_CHECK_TYPES);
  onlyFor('tls', ['tcp', 'grpc']);
  if ((type === 'tcp' || type === 'grpc') && v.tls !== undefined && boolField(p, `${path}.tls`, v.tls, false))
    hc.tls = true;
  const tls = usesTls(hc);
  const onlyWith = (field: string, ok: boolean, where: string) => {
    if (v[field] !== undefined && !ok)
      p.add(
        `${path}.${field}`,
        `applies only to ${where}, not ${type}${type === 'tcp' || type === 'grpc' ? ' without tls' : ''}`,
      );
  };
  onlyWith('host', isHttpCheck(type) || tls || type === 'grpc', 'type http | https | grpc, or tcp with tls: true');
  onlyWith('verifyCertificate', tls, 'type https, or tcp or grpc with tls: true');
  onlyFor('service', ['grpc']);
  onlyFor('payload', ['tcp', 'udp', 'agent']);
  onlyFor('expect', ['tcp', 'http', 'https', 'udp']);
  // A TCP stream has no end to read to: the probe could only give up at its timeout, never pass.
  onlyFor('expectNot', ['http', 'https', 'udp']);
  onlyFor('port', ['tcp', 'http', 'https', 'udp', 'dns', 'agent', 'grpc']);
  onlyFor('address', ['tcp', 'http', 'https', 'udp', 'dns', 'agent', 'grpc']);
  // An agent listens on a port of its own: on the member's service port it would be the service, not its agent.
  if (type === 'agent' && v.port === undefined)
    p.add(`${path}.port`, "is required for type agent (the port the member's agent answers on, HAProxy's agent-port)");
  onlyFor('query', ['dns']);
  onlyFor('queryType', ['dns']);
  onlyFor('expectRcode', ['dns']);
  if (isHttpCheck(type)) {
    if (v.path !== undefined && (typeof v.path !== 'string' || !v.path.startsWith('/'))) {
      p.add(`${path}.path`, `${show(v.path)} is not an absolute path (starting with /)`);
    }
    hc.path = typeof v.path === 'string' ? v.path : DEFAULT_HTTP_PATH;
    // GET is the default and not written back, so fleets without HEAD stay readable by nodes that predate the field.
    const method = oneOf<HttpCheckMethod>(p, `${path}.method`, v.method, HTTP_CHECK_METHODS, 'GET');
    if (method === 'HEAD') {
      hc.method = method;
      if (v.expect !== undefined) p.add(`${path}.expect`, 'a HEAD request gets no body: use method GET with expect');
      if (v.expectNot !== undefined)
        p.add(`${path}.expectNot`, 'a HEAD request gets no body: use method GET with expectNot');
    }
    hc.expectStatus =
      typeof v.expectStatus === 'string'
        ? statusRangeField(p, `${path}.expectStatus`, v.expectStatus)
        : int(p, `${path}.expectStatus`, v.expectStatus, 100, 599, 'an HTTP status', DEFAULT_HTTP_EXPECT_STATUS);
  }
  if (v.host !== undefined && (isHttpCheck(type) || tls || type === 'grpc')) {
    if (typeof v.host === 'string' && isHostName(v.host)) hc.host = v.host;
    else
      p.add(
        `${path}.host`,
        `${show(v.host)} is not a host name (RFC 1123: dot-separated labels of letters, digits and inner hyphens, at most 63 characters each and ${MAX_HOST_NAME_CHARS} in all; not an IP address)`,
      );
  }
  if (tls) hc.verifyCertificate = boolField(p, `${path}.verifyCertificate`, v.verifyCertificate, false);
  if (type === 'udp' || type === 'tcp' || type === 'agent') {
    if (v.payload !== undefined && typeof v.payload !== 'string')
      p.add(`${path}.payload`, `${show(v.payload)} is not a string`);
    // udp always sends a datagram (empty by default); tcp and agent send only what they are given.
    if (typeof v.payload === 'string' && (type === 'udp' || v.payload !== '')) hc.payload = v.payload;
    else if (type === 'udp') hc.payload = '';
  }
  if (type === 'grpc' && v.service !== undefined) {
    if (typeof v.service === 'string' && v.service.length <= MAX_GRPC_SERVICE_CHARS && GRPC_SERVICE.test(v.service))
      hc.service = v.service;
    else if (v.service !== '')
      p.add(
        `${path}.service`,
        `${show(v.service)} is not a gRPC service name (dot-separated identifiers such as myapp.v1.Orders, at most ${MAX_GRPC_SERVICE_CHARS} characters; "" or absent: the server as a whole)`,
      );
  }
  if (type === 'dns') {
    if (typeof v.query === 'string' && isQueryName(v.query)) hc.query = v.query;
    else
      p.add(
        `${path}.query`,
        v.query === undefined
          ? 'is required for type dns (the name to ask for, e.g. www.example.com, or . for the root)'
          : `${show(v.query)} is not a DNS name (labels of letters, digits, - and _, at most 63 characters each and ${MAX_HOST_NAME_CHARS} in all; . is the root)`,
      );
    hc.queryType = oneOf<DnsQueryType>(p, `${path}.queryType`, v.queryType, DNS_QUERY_TYPES, DEFAULT_DNS_QUERY_TYPE);
    hc.expectRcode = oneOf<DnsRcode>(p, `${path}.expectRcode`, v.expectRcode, DNS_RCODES, DEFAULT_DNS_RCODE);
  }
  if (v.expect !== undefined && ['tcp', 'http', 'https', 'udp'].includes(type)) {
    if (typeof v.expect === 'string' && v.expect !== '') hc.expect = v.expect;
    else p.add(`${path}.expect`, `${show(v.expect)} is not a non-empty string`);
  }
  if (v.expectNot !== undefined && ['http', 'https', 'udp'].includes(type)) {
    if (typeof v.expectNot === 'string' && v.expectNot !== '') hc.expectNot = v.expectNot;
    else p.add(`${path}.expectNot`, `${show(v.expectNot)} is not a non-empty string`);
  }
  return hc;
}

/**
 * `LOW-HIGH`, both HTTP statuses (100-599), LOW below HIGH; the canonical text (no spaces, no leading zeros) or, after
 * reporting a problem, the default status.
 */
function statusRangeField(p: Problems, path: string, text: string): StatusRange | number {
  const m = /^\s*([1-5]\d\d)\s*-\s*([1-5]\d\d)\s*$/.exec(text);
  const [low, high] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || low >= high) {
    p.add(path, `${show(text)} is not an HTTP status (100-599) or a range LOW-HIGH of them (e.g. "200-399")`);
    return DEFAULT_HTTP_EXPECT_STATUS;
  }
  return `${low}-${high}`;
}

/** The lowest and highest status `expect` admits. */
function statusBounds(expect: number | StatusRange): [number, number] {
  if (typeof expect === 'number') return [expect, expect];
  const [low, high] = expect.split('-').map(Number);
  return [low as number, high as number];
}

/** Whether a response's status passes an http or https check (`expectStatus`: one code, or a range). */
export function statusExpected(hc: Pick<HealthCheck, 'expectStatus'>, status: number): boolean {
  const [low, high] = statusBounds(hc.expectStatus ?? DEFAULT_HTTP_EXPECT_STATUS);
  return status >= low && status <= high;
}

/** Problems of a check whose fields are each valid but which cannot pass (or cannot be sent). */
export function healthCheckProblems(hc: HealthCheck, path: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  // Longer-than is healthCheckField's; equal means every probe still running when the next is due.
  if (hc.timeoutMs === hc.intervalMs) {
    out.push({
      path: `${path}.timeoutMs`,
      message: `${hc.timeoutMs} equals intervalMs (${hc.intervalMs}): a probe must end before the next one starts`,
    });
  }
  if (isHttpCheck(hc.type) && hc.expectStatus !== undefined && statusBounds(hc.expectStatus)[1] < 200) {
    out.push({
      path: `${path}.expectStatus`,
      message: `${hc.expectStatus} is an informational (1xx) status, never a final answer: the check could never pass (use 200-599)`,
    });
  }
  if (isHttpCheck(hc.type) && hc.path !== undefined) {
    if (hc.path.length > MAX_HTTP_PATH_CHARS) {
      out.push({
        path: `${path}.path`,
        message: `${show(hc.path)} is ${hc.path.length} characters, more than the limit of ${MAX_HTTP_PATH_CHARS} (MAX_HTTP_PATH_CHARS)`,
      });
    } else if (!HTTP_PATH.test(hc.path)) {
      out.push({
        path: `${path}.path`,
        message: `${show(hc.path)} is not a request path (RFC 3986: no spaces or control characters; escape others as %XX)`,
      });
    }
  }
  if (hc.payload !== undefined) {
    const bytes = utf8Bytes(hc.payload);
    const [limit, name, why] =
      hc.type === 'udp'
        ? [MAX_UDP_PAYLOAD_BYTES, 'MAX_UDP_PAYLOAD_BYTES', 'one unfragmented datagram']
        : [MAX_TCP_PAYLOAD_BYTES, 'MAX_TCP_PAYLOAD_BYTES', 'a request or a command'];
    if (bytes > limit) {
      out.push({
        path: `${path}.payload`,
        message: `${bytes} bytes is more than the limit of ${limit} (${name}: ${why})`,
      });
    }
  }
  for (const field of ['expect', 'expectNot'] as const) {
    const text = hc[field];
    if (text === undefined) continue;
    const bytes = utf8Bytes(text);
    if (bytes > MAX_EXPECT_BYTES) {
      out.push({
        path: `${path}.${field}`,
        message: `${bytes} bytes is more than the limit of ${MAX_EXPECT_BYTES} (MAX_EXPECT_BYTES)`,
      });
    }
  }
  // A reply that contains expect also contains every part of it: such an expectNot would fail every probe that passes.
  if (hc.expect !== undefined && hc.expectNot !== undefined && hc.expect.includes(hc.expectNot)) {
    out.push({
      path: `${path}.expectNot`,
      message: `${show(hc.expectNot)} is part of expect ${show(hc.expect)}: a reply that passes would always contain it, so the check could never pass`,
    });
  }
  return out;
}

/**
 * One line saying what a check sends and expects, for people (describe vip, the dashboard, probe):
 * `https port 8443 GET /healthz expect 200 host www.example.com, certificate verified, every 2000 ms, ...`.
 */
export function describeHealthCheck(hc: HealthCheck): string {
  const request = hc.path === undefined ? '' : ` ${hc.method ?? 'GET'} ${hc.path} expect ${hc.expectStatus}`;
  const host = hc.host ? ` host ${hc.host}` : '';
  const verified = hc.verifyCertificate ? ', certificate verified' : '';
  const send = hc.payload ? ` send ${JSON.stringify(hc.payload)}` : '';
  const ask =
    hc.query === undefined
      ? hc.type === 'grpc'
        ? ` ${hc.service ? `service ${hc.service}` : 'server'} expect SERVING`
        : ''
      : ` ${hc.queryType} ${hc.query} expect ${hc.expectRcode}`;
  const what = isHttpCheck(hc.type) ? 'body' : 'reply';
  const reply =
    (hc.expect === undefined ? '' : ` ${what} contains ${JSON.stringify(hc.expect)}`) +
    (hc.expectNot === undefined ? '' : ` ${what} without ${JSON.stringify(hc.expectNot)}`);
  return `${hc.type}${hc.tls ? ' tls' : ''}${hc.address ? ` at ${hc.address}` : ''}${hc.port ? ` port ${hc.port}` : ''}${request}${host}${ask}${send}${reply}${verified}, every ${hc.intervalMs} ms, timeout ${hc.timeoutMs} ms, rise ${hc.rise}, fall ${hc.fall}`;
}
