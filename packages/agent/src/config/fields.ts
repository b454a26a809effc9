/**
 * Field readers of agent.yaml that several sections share: addresses, ADDRESS:PORT listeners, the interface
 * name, URL lists and TLS file sets. Each adds a problem naming the path and the value, and returns a placeholder so
 * parsing goes on and every problem is reported at once.
 */
import {
  addressField,
  type ConfigError,
  listField as list,
  maskUserinfo as maskUrlUserinfo,
  maskUserinfoInText,
  type Problems,
  parseListenAddress,
  sectionField as section,
  showValue as show,
  stringField as str,
  valueText,
} from '@l4fleet/config';
import { ETCD_ENDPOINT_FORM, etcdEndpointProblems } from '@l4fleet/store';
import { ipv4In6Problem } from './bfd.js';
import type { TlsFiles } from './types.js';

/**
 * Linux IFNAMSIZ - 1 (15 bytes, checked apart in UTF-8); no `/` or space, no `:` (an alias label such as eth0:1 is
 * no interface), and not `.` or `..` (directories under /sys/class/net, which --check would take for interfaces).
 */
const IFNAME = /^(?!\.\.?$)[^\s/:]{1,15}$/;
const IFNAME_MAX_BYTES = 15;

/** The fields whose value is a secret (a BGP MD5 key, etcd's or NATS's password, a NATS token). */
const SECRET_PATH = /\.(password|token)$/;

export function optStr(p: Problems, path: string, v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (SECRET_PATH.test(path)) return secretStr(p, path, v);
  return str(p, path, v, undefined, what);
}

/**
 * A secret: any non-empty string. A wrong one is described by its kind alone, never shown: the message reaches the
 * error log, stderr and --check, and on a reload the config.reload event (NATS subscribers, the dashboard timeline).
 * An unquoted all-digit password is a YAML number: the hint says to quote it.
 */
function secretStr(p: Problems, path: string, v: unknown): string {
  if (typeof v === 'string' && v.length > 0) return v;
  p.add(path, secretKind(v));
  return '';
}

function secretKind(v: unknown): string {
  if (v === null || v === '') return 'is empty';
  if (typeof v === 'number' || typeof v === 'bigint') return 'is a number, not a string: quote it';
  if (typeof v === 'boolean') return 'is true or false, not a string: quote it';
  if (Array.isArray(v)) return 'is a list, not a string';
  if (typeof v === 'object') return 'is a map, not a string';
  return `is a ${typeof v}, not a string`;
}

export function addr(p: Problems, path: string, v: unknown, family?: 4 | 6): string {
  return addressField(p, path, v, family)?.address ?? valueText(v);
}

/**
 * A listener's `ADDRESS:PORT` (`[V6]:PORT`, `localhost:PORT`; port 0: a free one, the tests' agents bind one and log
 * it), as @l4fleet/config parseListenAddress reads every listener's (`backend agent --listen`, the dashboard's
 * --listen): the forms a bind takes as written (`*:9469`, `[foo]:9469` or `300.1.1.1:9469` failed only at the bind),
 * kept canonical.
 */
export function listenAddress(p: Problems, path: string, v: unknown, dflt: string): string {
  if (v === undefined) return dflt;
  try {
    return parseListenAddress(v, path).text;
  } catch (err) {
    for (const problem of (err as ConfigError).problems) p.add(problem.path, problem.message);
    return valueText(v);
  }
}

export function ifname(p: Problems, v: unknown): string {
  const name = str(p, 'node.interface', v, IFNAME, 'an interface name (1-15 bytes, no / : or space, not . or ..)');
  if (IFNAME.test(name) && Buffer.byteLength(name, 'utf8') > IFNAME_MAX_BYTES) {
    const bytes = Buffer.byteLength(name, 'utf8');
    p.add('node.interface', `${show(v)} is ${bytes} bytes; Linux interface names are at most 15 (IFNAMSIZ)`);
  }
  return name;
}

/**
 * A probe source: a socket bound to the unspecified address is what no source address gives. An IPv4-mapped or
 * IPv4-compatible one is no IPv6 source either, and no interface lists it (--check said it was on none, a false
 * reason): refused in node.address6's words (bfd.ts ipv4In6Problem), which say to write the IPv4 address.
 */
export function sourceAddress(p: Problems, v: unknown): string {
  const path = 'health.sourceAddress';
  const a = addressField(p, path, v)?.address;
  if (a === undefined) return valueText(v);
  const why = ipv4In6Problem(a);
  if (a === '0.0.0.0' || a === '::') {
    p.add(path, `${show(v)} is the unspecified address: leave the field out for the kernel's choice`);
  } else if (why) {
    p.add(path, `${show(v)} is ${why}`);
  }
  return a;
}

/**
 * `text` (a server list, an error message) with each URL's userinfo (`user:password@`, or the `token@` NATS URLs may
 * carry) as `***@`, with or without a scheme: @l4fleet/config's rule, shared with the store. For the agent's NATS
 * modules, which mask their server lists and nats.js's messages alike.
 */
export function maskUserinfo(text: string): string {
  return maskUserinfoInText(text);
}

/**
 * nats.servers and the like. A URL with userinfo is refused, masked: nats.js 2.29 ignores it (it connects without
 * login, and dials an all-digit password as the port), while the URL went into --check's output and the logs.
 */
export function urls(p: Problems, path: string, v: unknown, schemes: readonly string[]): string[] {
  return list(p, path, v).map((u, i) => {
    let url: URL | undefined;
    try {
      url = typeof u === 'string' ? new URL(u) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || !schemes.includes(url.protocol.replace(/:$/, ''))) {
      const shown = typeof u === 'string' ? JSON.stringify(maskUrlUserinfo(u)) : show(u);
      p.add(`${path}[${i}]`, `${shown} is not a URL (${schemes.map((s) => `${s}://`).join(' or ')}HOST:PORT)`);
      return valueText(u);
    }
    if (url.username !== '' || url.password !== '' || (u as string).includes('@')) {
      p.add(
        `${path}[${i}]`,
        `${JSON.stringify(maskUrlUserinfo(u as string))}: a user, password or token in the URL is not used by the NATS client: give them as nats.user and nats.password, or nats.token`,
      );
    }
    return u as string;
  });
}

/**
 * etcd.endpoints: the store's own check (http(s)://HOST:PORT, one scheme for all): etcd3 takes the URL apart itself,
 * so a URL that new URL() accepts (no port, a path, a user, http:// beside https://) failed only when dialled.
 */
export function etcdUrls(p: Problems, path: string, v: unknown): string[] {
  const endpoints = list(p, path, v).map((u, i) => {
    if (typeof u === 'string') return u;
    p.add(`${path}[${i}]`, `${show(u)} is not ${ETCD_ENDPOINT_FORM}`);
    return undefined;
  });
  const given = endpoints.filter((u): u is string => u !== undefined);
  const indexes = endpoints.flatMap((u, i) => (u === undefined ? [] : [i]));
  for (const problem of etcdEndpointProblems(given)) p.add(`${path}[${indexes[problem.index]}]`, problem.message);
  return endpoints.map((u) => u ?? '');
}

export function tls(p: Problems, path: string, v: unknown): TlsFiles | undefined {
  if (v === undefined) return undefined;
  const o = section(p, path, v, ['ca', 'cert', 'key']);
  const t = {
    ...(o.ca !== undefined ? { ca: str(p, `${path}.ca`, o.ca, undefined, 'a file path') } : {}),
    ...(o.cert !== undefined ? { cert: str(p, `${path}.cert`, o.cert, undefined, 'a file path') } : {}),
    ...(o.key !== undefined ? { key: str(p, `${path}.key`, o.key, undefined, 'a file path') } : {}),
  };
  if ((t.cert === undefined) !== (t.key === undefined)) p.add(path, 'cert and key go together (client certificate)');
  return t;
}
