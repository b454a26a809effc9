/**
 * Size bounds of a fleet: what `l4fleet apply` accepts and what a record read back from etcd may claim. Checked
 * before any work is done (a bounded read of the file, then counts before per-item parsing), so a hostile or
 * mistaken input is refused in milliseconds with the field and the value instead of exhausting memory later in
 * every node. The bench scale (100 VIPs x 1,000 members; one pool of 100,000) sits well inside them, but not inside
 * what the bpf data plane holds (BPF_MAX_VIP_MEMBERS: VIPs x members of their pools <= 65,536; a note, not a bound).
 *
 * A fleet within them is not always one whose per-pool etcd records fit: a pool's health or decided status record
 * must fit one etcd request (@l4fleet/store's MAX_TXN_BYTES, 1 MiB, below etcd's default 1.5 MiB), ~38,000 members
 * with default names. A larger pool is applied and served, but its status records are refused by name (TOO_LARGE).
 */
import { MAX_TABLE_SIZE } from '@l4fleet/maglev';
import { DEFAULT_VIP_TABLE_SIZE } from './defaults.js';
import type { ConfigProblem } from './errors.js';
import { isRawObject } from './fields.js';

const n = (v: number): string => v.toLocaleString('en-US');

/** Fleet file text, in bytes (UTF-8): 16 MiB holds ~250,000 members in flow-style YAML with room to spare. */
export const MAX_FLEET_BYTES = 16 * 1024 * 1024;
/** VIPs in one fleet: 1,000 default-size tables are 65.5 M slots (see MAX_TOTAL_TABLE_SLOTS). */
export const MAX_VIPS = 1_000;
export const MAX_POOLS = 1_000;
/**
 * Members of one pool; its VIPs' tables must be larger still (Maglev §3.4 wants M >> N). Beyond ~38,000 (default
 * member names) the pool's health and decided records no longer fit one etcd request and are refused (see above).
 */
export const MAX_MEMBERS_PER_POOL = 100_000;
/** Members over all pools: every node keeps them in memory and every health checker probes them. */
export const MAX_TOTAL_MEMBERS = 250_000;
/**
 * VIP x member pairs the bpf data plane holds: it gives a backend id per (served VIP, member address), and its maps
 * have 65,536 (@l4fleet/dataplane's MAX_BACKENDS is this constant). Not a bound of the fleet (nftables and proxy nodes
 * have none): `apply` notes a fleet beyond it (ineffective.ts), and bpf nodes refuse its whole state (TOO_LARGE)
 * while they keep serving the last one. 100 VIPs x 1,000 members is 100,000: beyond it.
 */
export const BPF_MAX_VIP_MEMBERS = 65_536;
/**
 * Health checks of members over all pools (each member once per check: `healthCheck` and `additionalHealthChecks`):
 * every node runs a timer and a probe per check, so 500,000 at the default 2 s interval is 250,000 probes a second
 * from each node. Twice MAX_TOTAL_MEMBERS: every member may have two checks, a few pools more.
 */
export const MAX_TOTAL_MEMBER_CHECKS = 500_000;
/** Slots of one VIP's table (a prime); the Maglev package's own ceiling. */
export const MAX_VIP_TABLE_SIZE = MAX_TABLE_SIZE;
/** Slots over all VIPs: 2^26 = 256 MiB of Int32 slots per node; room for 1,000 default-size (65,537) tables. */
export const MAX_TOTAL_TABLE_SLOTS = 67_108_864;
/**
 * Nodes of a YAML fleet file, counted before parsing as lines + commas + opening brackets (an upper bound on what
 * the parser must build). The `yaml` library costs ~10-30 µs and ~200 bytes per node, so 16 MiB of `- 1` lines (4 M
 * nodes) held it for minutes and gigabytes; 1.5 M covers 250,000 members in flow style. JSON has no such limit
 * (JSON.parse is ~100x faster): generate large fleets as JSON.
 */
export const MAX_YAML_NODES = 1_500_000;
/** Bracket nesting depth of a fleet file (a fleet needs 4: `{pools: [{members: [{`). */
export const MAX_FLEET_DEPTH = 32;
/**
 * Columns of a YAML line's block indentation: its leading spaces and the `- `, `? ` and `: ` indicators before its
 * content. Each block level needs at least one column, so this bounds block nesting as MAX_FLEET_DEPTH bounds
 * brackets: `- - - ... 1` 5,000 deep overflowed the yaml library's stack, and parsed three times in one process
 * ran it out of memory. A fleet written with 8-space indents needs under 60. Only lines with content count: a blank
 * line or a comment nests nothing, however far it is indented.
 */
export const MAX_YAML_INDENT_COLUMNS = 256;
/**
 * YAML alias uses per file, weighted by the aliases inside the anchored node (the `yaml` library's maxAliasCount):
 * nested alias ("billion laughs") bombs of 6 levels and more are refused. Aliases resolve to shared objects and the
 * count bounds below are checked per reference, so a fleet can reuse one anchored health check in every pool.
 */
export const MAX_YAML_ALIASES = 10_000;
/** HTTP health check path, in characters. */
export const MAX_HTTP_PATH_CHARS = 2_048;
/**
 * UDP health check payload, in UTF-8 bytes: 1,232 = the IPv6 minimum MTU 1,280 (RFC 8200 §5) minus the IPv6 (40)
 * and UDP (8) headers, so a probe never needs fragmentation on any path.
 */
export const MAX_UDP_PAYLOAD_BYTES = 1_232;
/**
 * Client prefixes in one VIP's `sourceRanges`, and in all VIPs together (the bpf driver's LPM trie holds them all;
 * nftables builds one interval set per VIP). An allowlist this long belongs in a firewall in front of the fleet.
 */
export const MAX_SOURCE_RANGES_PER_VIP = 1_024;
export const MAX_TOTAL_SOURCE_RANGES = 16_384;
/** TCP health check payload (sent after connecting), in UTF-8 bytes: a request line or a command, not a body. */
export const MAX_TCP_PAYLOAD_BYTES = 4_096;
/**
 * Health check `expect` text, in UTF-8 bytes. Matched as a plain substring, never a pattern: a fleet-wide regular
 * expression run by every node on every reply could be made to backtrack for seconds.
 */
export const MAX_EXPECT_BYTES = 1_024;
/** Shortest profile timeout (profile.ts), in seconds: conntrack and nft timeouts count whole seconds. */
export const MIN_PROFILE_TIMEOUT_S = 1;
/** Longest idle timeout, in seconds (7 days): the nftables driver's flow-timeout ceiling too. */
export const MAX_IDLE_TIMEOUT_S = 604_800;
/** Longest TCP handshake timeout, in seconds (10 min): a longer one only lets a SYN flood hold more state. */
export const MAX_TCP_HANDSHAKE_TIMEOUT_S = 600;
/** Longest TCP close timeout, in seconds (1 h). */
export const MAX_TCP_CLOSE_TIMEOUT_S = 3_600;
/** Problems listed in one error; the rest are counted (a million bad members must not make a million lines). */
export const MAX_PROBLEMS_REPORTED = 100;

/** The first MAX_PROBLEMS_REPORTED problems, and one line counting the rest. */
export function capProblems(list: readonly ConfigProblem[]): ConfigProblem[] {
  if (list.length <= MAX_PROBLEMS_REPORTED) return [...list];
  const rest = list.length - MAX_PROBLEMS_REPORTED;
  return [...list.slice(0, MAX_PROBLEMS_REPORTED), { path: '', message: `... and ${n(rest)} more problems` }];
}

function tooMany(path: string, count: number, what: string, limit: number, name: string): ConfigProblem {
  return { path, message: `${n(count)} ${what} is more than the limit of ${n(limit)} (${name})` };
}

/** UTF-8 length of `text`, without encoding it (the text may be large). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair is one 4-byte code point
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/** The byte bound of fleet text; checked before parsing (a parser holds many times the text in memory). */
export function fleetBytesProblem(bytes: number, source = 'fleet file'): ConfigProblem | undefined {
  if (bytes <= MAX_FLEET_BYTES) return undefined;
  return {
    path: '',
    message: `the ${source} is ${n(bytes)} bytes, more than the limit of ${n(MAX_FLEET_BYTES)} bytes (MAX_FLEET_BYTES)`,
  };
}

/** Whether `c` is a YAML block indicator (`-`, `?`, `:`) when followed by a space or tab. */
const isIndicator = (c: number): boolean => c === 0x2d || c === 0x3f || c === 0x3a;

/** Whether `c` ends the indentation of a line without content: a tab or a carriage return (`\r\n` line ends). */
const isBlank = (c: number): boolean => c === 0x09 || c === 0x0d;

/**
 * Cheap shape checks of YAML or JSON text before a parser sees it: no NUL byte (not text), bracket depth, and for
 * YAML the block indentation and the node estimate above. One pass, no allocation. `source` names the text in the
 * messages (`fleet file`, `config file "/etc/l4fleet/agent.yaml"`): agent.yaml is checked with the same bounds,
 * since the yaml library left with its stack run out by a deep nesting aborted a later parse of the same process
 * (a reload's) out of memory, uncatchable.
 */
export function textShapeProblem(text: string, yaml: boolean, source: string): ConfigProblem | undefined {
  let marks = 0;
  let depth = 0;
  let maxDepth = 0;
  let deepLine = 0;
  let line = 1;
  // Columns of block indentation of the current line; -1 once its content began.
  let indent = 0;
  // Whether the current line nests: a `- ? :` indicator or content (not a comment) after its indentation. A line
  // of spaces alone, or of spaces and a comment, nests nothing however far it is indented.
  let nests = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return { path: '', message: `the ${source} has a NUL byte at offset ${n(i)}: not text` };
    if (yaml && indent >= 0 && c !== 0x0a) {
      const next = text.charCodeAt(i + 1);
      const indicator = isIndicator(c) && (next === 0x20 || next === 0x09);
      if (c === 0x20) indent += 1;
      else if (indicator) {
        indent += 2;
        nests = true;
        i += 1; // the space after it, counted above
      } else if (!isBlank(c)) nests ||= c !== 0x23; // content, or a comment (#)
      if (nests && indent > MAX_YAML_INDENT_COLUMNS) {
        return {
          path: '',
          message: `the ${source} indents line ${n(line)} more than ${MAX_YAML_INDENT_COLUMNS} columns (spaces and - ? : indicators), the limit of block nesting (MAX_YAML_INDENT_COLUMNS)`,
        };
      }
      if (c !== 0x20 && !indicator && !isBlank(c)) indent = -1;
    }
    if (c === 0x5b || c === 0x7b) {
      marks += 1;
      depth += 1;
      if (depth > maxDepth) maxDepth = depth;
      if (depth === MAX_FLEET_DEPTH + 1 && deepLine === 0) deepLine = line;
    } else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
    else if (c === 0x0a || c === 0x2c) marks += 1;
    if (c === 0x0a) {
      line += 1;
      indent = 0;
      nests = false;
    }
  }
  // Brackets inside quoted strings count too: an upper bound, never an underestimate.
  if (maxDepth > MAX_FLEET_DEPTH) {
    return {
      path: '',
      message: `the ${source} nests brackets ${n(maxDepth)} deep, more than the limit of ${MAX_FLEET_DEPTH} (MAX_FLEET_DEPTH), from line ${n(deepLine)}`,
    };
  }
  if (yaml && marks > MAX_YAML_NODES) {
    return {
      path: '',
      message: `the ${source} has about ${n(marks)} YAML nodes (lines, commas, brackets), more than the limit of ${n(MAX_YAML_NODES)} (MAX_YAML_NODES); use JSON for fleets this large`,
    };
  }
  return undefined;
}

/** textShapeProblem() of a fleet file. */
export function fleetTextProblem(text: string, yaml: boolean): ConfigProblem | undefined {
  return textShapeProblem(text, yaml, 'fleet file');
}

/**
 * Count bounds of a decoded (not yet validated) fleet: VIPs, pools, members per pool and in total, table slots.
 * Cheap (no per-member work), so parseFleet() runs it first and refuses an oversized fleet before parsing it.
 */
export function fleetSizeProblems(raw: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  if (!isRawObject(raw)) return out;
  const vips = Array.isArray(raw.vips) ? raw.vips : [];
  const pools = Array.isArray(raw.pools) ? raw.pools : [];
  if (vips.length > MAX_VIPS) out.push(tooMany('vips', vips.length, 'VIPs', MAX_VIPS, 'MAX_VIPS'));
  if (pools.length > MAX_POOLS) out.push(tooMany('pools', pools.length, 'pools', MAX_POOLS, 'MAX_POOLS'));
  let members = 0;
  for (let i = 0; i < pools.length && i <= MAX_POOLS; i++) {
    const pool = pools[i];
    const list = isRawObject(pool) && Array.isArray(pool.members) ? pool.members : [];
    members += list.length;
    if (list.length > MAX_MEMBERS_PER_POOL) {
      out.push(tooMany(`pools[${i}].members`, list.length, 'members', MAX_MEMBERS_PER_POOL, 'MAX_MEMBERS_PER_POOL'));
    }
  }
  if (members > MAX_TOTAL_MEMBERS) {
    out.push(tooMany('pools', members, 'members in all pools', MAX_TOTAL_MEMBERS, 'MAX_TOTAL_MEMBERS'));
  }
  let checks = 0;
  for (let i = 0; i < pools.length && i <= MAX_POOLS; i++) {
    const pool = pools[i];
    if (!isRawObject(pool) || !Array.isArray(pool.members)) continue;
    // An over-long list is the pool's own problem (MAX_ADDITIONAL_HEALTH_CHECKS); count it as it stands here.
    const more = Array.isArray(pool.additionalHealthChecks) ? pool.additionalHealthChecks.length : 0;
    checks += pool.members.length * (1 + more);
  }
  if (checks > MAX_TOTAL_MEMBER_CHECKS && members <= MAX_TOTAL_MEMBERS) {
    out.push(
      tooMany('pools', checks, 'member health checks in all pools', MAX_TOTAL_MEMBER_CHECKS, 'MAX_TOTAL_MEMBER_CHECKS'),
    );
  }
  let slots = 0;
  for (let i = 0; i < vips.length && i <= MAX_VIPS; i++) {
    const v = vips[i];
    const size = isRawObject(v) && typeof v.tableSize === 'number' ? v.tableSize : DEFAULT_VIP_TABLE_SIZE;
    // Out-of-range sizes are the per-VIP check's to report; count them at the ceiling here.
    slots += Number.isFinite(size) && size > 0 ? Math.min(size, MAX_VIP_TABLE_SIZE) : 0;
  }
  let ranges = 0;
  for (let i = 0; i < vips.length && i <= MAX_VIPS; i++) {
    const v = vips[i];
    if (isRawObject(v) && Array.isArray(v.sourceRanges)) ranges += v.sourceRanges.length;
  }
  if (ranges > MAX_TOTAL_SOURCE_RANGES) {
    out.push(
      tooMany('vips', ranges, 'source prefixes in all VIPs', MAX_TOTAL_SOURCE_RANGES, 'MAX_TOTAL_SOURCE_RANGES'),
    );
  }
  if (slots > MAX_TOTAL_TABLE_SLOTS) {
    out.push(tooMany('vips', slots, 'table slots in all VIPs', MAX_TOTAL_TABLE_SLOTS, 'MAX_TOTAL_TABLE_SLOTS'));
  }
  return out;
}
