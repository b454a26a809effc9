/**
 * parseFleet(): raw fleet file -> fully defaulted Fleet, or ConfigError listing every problem at once,
 * each with its path and value (`vips[0].port: 70000 is not a port (1-65535)`).
 */
import { assertTableSize, MaglevError } from '@l4fleet/maglev';
import { additionalHealthChecksField, healthChecksRequiredField } from './additional-health-checks.js';
import { endpointText } from './address.js';
import { minActiveMembersField } from './backup-activation.js';
import {
  DEFAULT_GUE_PORT,
  DEFAULT_MEMBER_WEIGHT,
  DEFAULT_POOL_FORWARDING,
  DEFAULT_VIP_HASH,
  DEFAULT_VIP_TABLE_SIZE,
  MAX_MEMBER_WEIGHT,
} from './defaults.js';
import { ConfigError } from './errors.js';
import {
  addressField as address,
  boolField,
  checkKeys,
  intField as int,
  isRawObject as isObj,
  oneOfField as oneOf,
  Problems,
  showValue as show,
  valueText,
} from './fields.js';
import { healthCheckField } from './health-check.js';
import { duplicateJsonKey } from './json-keys.js';
import {
  capProblems,
  fleetBytesProblem,
  fleetSizeProblems,
  fleetTextProblem,
  MAX_FLEET_BYTES,
  utf8Bytes,
} from './limits.js';
import { minUpMembersField } from './min-up-members.js';
import { POOL_NAME } from './names.js';
import { onMemberDownField } from './on-member-down.js';
import { profileField } from './profile.js';
import { secondChanceField } from './second-chance.js';
import { fleetSemanticProblems } from './semantics.js';
import { slowStartField } from './slow-start.js';
import { sourceRangeFileProblems, sourceRangesField } from './source-ranges.js';
import type { Fleet, Forwarding, Member, MemberState, Pool, Vip } from './types.js';
import { vipKey } from './vip-key.js';
import { vipStateField } from './vip-state.js';
import { readFleetYaml } from './yaml-text.js';

const NAME = /^[A-Za-z0-9[][A-Za-z0-9._:@[\]-]{0,127}$/;
const MAX_U32 = 0xffff_ffff;

function port(p: Problems, path: string, v: unknown): number {
  return int(p, path, v, 1, 65_535, 'a port');
}

function hashSeed(p: Problems, v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^(0x[0-9a-fA-F]+|\d+)$/.test(v) ? Number(v) : v;
  // A numeric string out of range is reported as written, not as the number it became (Infinity).
  if (n !== v && (n as number) > MAX_U32) {
    p.add('hashSeed', `${show(v)} is not an unsigned 32-bit hash seed (0-${MAX_U32})`);
    return undefined;
  }
  return int(p, 'hashSeed', n, 0, MAX_U32, 'an unsigned 32-bit hash seed');
}

interface ParsedMember extends Member {
  readonly family: 4 | 6 | undefined;
}

function member(p: Problems, path: string, v: unknown): ParsedMember | undefined {
  if (!isObj(v)) {
    p.add(path, `${show(v)} is not an object`);
    return undefined;
  }
  checkKeys(p, path, v, ['name', 'address', 'port', 'weight', 'state', 'backup']);
  const backup = boolField(p, `${path}.backup`, v.backup, false);
  const addr = address(p, `${path}.address`, v.address);
  const prt = port(p, `${path}.port`, v.port);
  let name = addr ? endpointText(addr.address, prt) : valueText(v.address);
  if (v.name !== undefined) {
    if (typeof v.name !== 'string' || !NAME.test(v.name)) {
      p.add(
        `${path}.name`,
        `${show(v.name)} is not a name (1-128 of A-Z a-z 0-9 . _ - : @ [ ], starting alphanumeric)`,
      );
    } else {
      name = v.name;
    }
  }
  return {
    name,
    address: addr?.address ?? valueText(v.address),
    port: prt,
    weight: int(p, `${path}.weight`, v.weight, 0, MAX_MEMBER_WEIGHT, 'a weight', DEFAULT_MEMBER_WEIGHT),
    state: oneOf<MemberState>(p, `${path}.state`, v.state, ['active', 'draining', 'disabled'], 'active'),
    ...(backup ? { backup } : {}),
    family: addr?.family,
  };
}

interface ParsedPool extends Pool {
  readonly families: ReadonlySet<4 | 6>;
}

function pool(p: Problems, path: string, v: unknown): ParsedPool | undefined {
  if (!isObj(v)) {
    p.add(path, `${show(v)} is not an object`);
    return undefined;
  }
  checkKeys(p, path, v, [
    'name',
    'healthCheck',
    'additionalHealthChecks',
    'healthChecksRequired',
    'members',
    'forwarding',
    'guePort',
    'secondChance',
    'onMemberDown',
    'slowStartS',
    'minActiveMembers',
    'minUpMembers',
  ]);
  const forwarding = oneOf<Forwarding>(
    p,
    `${path}.forwarding`,
    v.forwarding,
    ['l2', 'ipip', 'gre', 'gue', 'nat'],
    DEFAULT_POOL_FORWARDING,
  );
  // Accepted with any forwarding (a parsed fleet carries the default and must parse again); used by gue only.
  const guePort = port(p, `${path}.guePort`, v.guePort ?? DEFAULT_GUE_PORT);
  if (typeof v.name !== 'string' || !POOL_NAME.test(v.name)) {
    p.add(`${path}.name`, `${show(v.name)} is not a pool name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)`);
  }
  const hc = healthCheckField(p, `${path}.healthCheck`, v.healthCheck);
  const more = additionalHealthChecksField(p, `${path}.additionalHealthChecks`, v.additionalHealthChecks, hc);
  const members: ParsedMember[] = [];
  if (!Array.isArray(v.members)) {
    p.add(`${path}.members`, `${show(v.members)} is not a list of members`);
  } else if (v.members.length === 0) {
    p.add(`${path}.members`, 'the pool has no members');
  } else {
    const byName = new Map<string, number>();
    const byEndpoint = new Map<string, number>();
    v.members.forEach((raw, i) => {
      const before = p.list.length;
      const m = member(p, `${path}.members[${i}]`, raw);
      if (!m) return;
      members.push(m);
      if (p.list.length > before) return;
      const endpoint = endpointText(m.address, m.port);
      const sameName = byName.get(m.name);
      const sameEndpoint = byEndpoint.get(endpoint);
      if (sameName !== undefined) p.add(`${path}.members[${i}].name`, `"${m.name}" duplicates members[${sameName}]`);
      else byName.set(m.name, i);
      if (sameEndpoint !== undefined) p.add(`${path}.members[${i}]`, `${endpoint} duplicates members[${sameEndpoint}]`);
      else byEndpoint.set(endpoint, i);
    });
  }
  const families = new Set<4 | 6>();
  for (const m of members) if (m.family) families.add(m.family);
  return {
    name: typeof v.name === 'string' ? v.name : '',
    healthCheck: hc,
    ...more,
    ...healthChecksRequiredField(
      p,
      `${path}.healthChecksRequired`,
      v.healthChecksRequired,
      // A refused additionalHealthChecks is reported once, not again as "one check" here.
      more.additionalHealthChecks || !Array.isArray(v.additionalHealthChecks) || v.additionalHealthChecks.length === 0
        ? 1 + (more.additionalHealthChecks?.length ?? 0)
        : undefined,
    ),
    members: members.map(({ family: _family, ...m }) => m),
    forwarding,
    guePort,
    secondChance: secondChanceField(p, `${path}.secondChance`, v.secondChance),
    ...onMemberDownField(p, `${path}.onMemberDown`, v.onMemberDown, forwarding),
    ...slowStartField(p, `${path}.slowStartS`, v.slowStartS),
    ...minActiveMembersField(p, `${path}.minActiveMembers`, v.minActiveMembers),
    ...minUpMembersField(p, `${path}.minUpMembers`, v.minUpMembers, members.length),
    families,
  };
}

function vip(p: Problems, path: string, v: unknown, pools: ReadonlyMap<string, ParsedPool>): Vip | undefined {
  if (!isObj(v)) {
    p.add(path, `${show(v)} is not an object`);
    return undefined;
  }
  checkKeys(p, path, v, [
    'address',
    'port',
    'protocol',
    'pool',
    'tableSize',
    'hash',
    'profile',
    'sourceRanges',
    'state',
  ]);
  const addr = address(p, `${path}.address`, v.address);
  const prt = port(p, `${path}.port`, v.port);
  const protocol = oneOf(p, `${path}.protocol`, v.protocol, ['tcp', 'udp'] as const);
  const target = typeof v.pool === 'string' ? pools.get(v.pool) : undefined;
  if (typeof v.pool !== 'string') p.add(`${path}.pool`, `${show(v.pool)} is not a pool name`);
  else if (!target) p.add(`${path}.pool`, `"${v.pool}" does not exist`);
  let tableSize = DEFAULT_VIP_TABLE_SIZE;
  if (v.tableSize !== undefined) {
    if (typeof v.tableSize !== 'number' || !Number.isInteger(v.tableSize)) {
      p.add(`${path}.tableSize`, `${show(v.tableSize)} is not an integer`);
    } else {
      // assertTableSize checks the range (safe integer, 2 to MAX_TABLE_SIZE) before primality, so the
      // "next prime" hint is only ever searched for from a size in range (1e300 has none to find).
      try {
        assertTableSize(v.tableSize, target?.members.length ?? 0);
        tableSize = v.tableSize;
      } catch (err) {
        p.add(`${path}.tableSize`, err instanceof MaglevError ? err.message.replace(/^size: /, '') : String(err));
      }
    }
  } else if (target && target.members.length >= tableSize) {
    p.add(
      `${path}.tableSize`,
      `${tableSize} (default) must be larger than the pool's ${target.members.length} members`,
    );
  }
  if (addr && target) {
    const other = addr.family === 4 ? 6 : 4;
    if (target.families.has(other)) {
      p.add(
        `${path}.pool`,
        `"${target.name}" has IPv${other} members but the VIP ${addr.address} is IPv${addr.family}`,
      );
    }
  }
  const sourceRanges = sourceRangesField(p, `${path}.sourceRanges`, v.sourceRanges, addr?.family);
  return {
    address: addr?.address ?? valueText(v.address),
    port: prt,
    protocol,
    pool: typeof v.pool === 'string' ? v.pool : '',
    tableSize,
    hash: oneOf(p, `${path}.hash`, v.hash, ['5-tuple', 'source-ip'] as const, DEFAULT_VIP_HASH),
    profile: profileField(p, `${path}.profile`, v.profile, protocol),
    ...(sourceRanges ? { sourceRanges } : {}),
    ...vipStateField(p, `${path}.state`, v.state),
  };
}

/** Validates a decoded fleet file (YAML or JSON) into a new, fully defaulted Fleet; throws ConfigError. */
export function parseFleet(raw: unknown): Fleet {
  const p = new Problems();
  if (!isObj(raw))
    throw new ConfigError('INVALID', [{ path: '', message: `the fleet file is ${show(raw)}, not an object` }]);
  // Sizes first: an oversized fleet is refused before any per-member work (limits.ts).
  const oversized = fleetSizeProblems(raw);
  if (oversized.length > 0) throw new ConfigError('TOO_LARGE', oversized);
  checkKeys(p, '', raw, ['hashSeed', 'pools', 'vips']);
  const seed = hashSeed(p, raw.hashSeed);
  const pools = new Map<string, ParsedPool>();
  const rawPools = raw.pools ?? [];
  if (!Array.isArray(rawPools)) p.add('pools', `${show(rawPools)} is not a list of pools`);
  else
    rawPools.forEach((rp, i) => {
      const pl = pool(p, `pools[${i}]`, rp);
      if (!pl?.name) return;
      if (pools.has(pl.name)) p.add(`pools[${i}].name`, `"${pl.name}" is defined more than once`);
      else pools.set(pl.name, pl);
    });
  const vips: Vip[] = [];
  const rawVips = raw.vips ?? [];
  if (!Array.isArray(rawVips)) p.add('vips', `${show(rawVips)} is not a list of VIPs`);
  else {
    const seen = new Map<string, number>();
    rawVips.forEach((rv, i) => {
      const before = p.list.length;
      const v = vip(p, `vips[${i}]`, rv, pools);
      if (!v) return;
      vips.push(v);
      if (p.list.length > before) return; // a broken address or port makes the duplicate check meaningless
      const key = vipKey(v);
      const first = seen.get(key);
      if (first !== undefined) p.add(`vips[${i}]`, `${key} duplicates vips[${first}]`);
      else seen.set(key, i);
    });
  }
  if (p.list.length > 0) throw new ConfigError('INVALID', capProblems(p.list));
  const fleet: { hashSeed?: number; pools: Pool[]; vips: Vip[] } = {
    pools: [...pools.values()].map(({ families: _f, ...pl }) => pl),
    vips,
  };
  // Values valid in form that cannot work (addresses, ports under direct server return, health checks).
  const semantic = fleetSemanticProblems(fleet);
  if (semantic.length > 0) throw new ConfigError('INVALID', capProblems(semantic));
  if (seed !== undefined) return { hashSeed: seed, ...fleet };
  return fleet;
}

/** Parses fleet text: JSON if `format` says so or the text starts with `{`, else YAML (1.2 core schema, yaml-text.ts). */
export function parseFleetText(text: string, format?: 'yaml' | 'json'): Fleet {
  // A UTF-8 byte order mark (some Windows editors write one) is not part of the text: JSON.parse refused it with an
  // invisible character, while the YAML reader skipped it.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  // The character count bounds the byte count from below: a huge text is refused without a pass over it.
  const big = fleetBytesProblem(text.length > MAX_FLEET_BYTES ? text.length : utf8Bytes(text));
  if (big) throw new ConfigError('TOO_LARGE', [big]);
  const asJson = format === 'json' || (format === undefined && /^\s*\{/.test(text.slice(0, 4096)));
  const shape = fleetTextProblem(text, !asJson);
  if (shape) throw new ConfigError('TOO_LARGE', [shape]);
  let raw: unknown;
  if (asJson) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new ConfigError('SYNTAX', [{ path: '', message: `not valid JSON: ${msg}` }], { cause: err });
    }
  } else raw = readFleetYaml(text);
  const duplicate = asJson ? duplicateJsonKey(text) : undefined;
  if (duplicate) {
    const message = `not valid JSON: the key "${duplicate.key}" is given more than once (JSON.parse would keep the last)`;
    throw new ConfigError('SYNTAX', [{ path: duplicate.path, message }]);
  }
  const fleet = parseFleet(raw);
  // Refused in a file only: parseFleet, the nodes' decode of the stored fleet, keeps taking them (source-ranges.ts).
  const unreachable = sourceRangeFileProblems(fleet);
  if (unreachable.length > 0) throw new ConfigError('INVALID', capProblems(unreachable));
  return fleet;
}
