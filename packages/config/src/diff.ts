/** What changes between two fleets, for `l4fleet apply` and the agent's logs. Pure; compares by key. */
import { endpointText } from './address.js';
import { minActiveMembersOf } from './backup-activation.js';
import { minUpMembersOf } from './min-up-members.js';
import { onMemberDownOf } from './on-member-down.js';
import { secondChanceOf } from './second-chance.js';
import { slowStartOf } from './slow-start.js';
import type { Fleet, Member, Pool, Vip } from './types.js';
import { vipKey } from './vip-key.js';
import { vipStateOf } from './vip-state.js';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface FleetChange {
  readonly kind: ChangeKind;
  /** `hashSeed`, `vip 198.51.100.10:80/tcp`, `pool web`, `member web/be1`. */
  readonly subject: string;
  /** What changed, e.g. `weight 1 -> 2`; empty for added/removed. */
  readonly detail: string;
}

export interface FleetDiff {
  readonly changes: readonly FleetChange[];
  /** Pools whose table inputs (members, weights, states) changed, or that were added or removed. */
  readonly poolsChanged: readonly string[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function fieldChanges<T extends object>(a: T, b: T, fields: readonly (keyof T)[]): string {
  return fields
    .filter((f) => !same(a[f], b[f]))
    .map((f) => `${String(f)} ${JSON.stringify(a[f]) ?? '-'} -> ${JSON.stringify(b[f]) ?? '-'}`)
    .join(', ');
}

const SHOWN_PREFIXES = 8;

function shownPrefixes(list: readonly string[]): string {
  const more = list.length > SHOWN_PREFIXES ? ` ... (${list.length - SHOWN_PREFIXES} more)` : '';
  return `${list.slice(0, SHOWN_PREFIXES).join(' ')}${more}`;
}

/** A VIP's `sourceRanges` change: what is admitted now, in prefixes added (+) and removed (-). */
function sourceRangesChange(a: readonly string[] | undefined, b: readonly string[] | undefined): string {
  if (same(a, b)) return '';
  if (!a) return `sourceRanges every client -> ${shownPrefixes(b ?? [])}`;
  if (!b) return `sourceRanges ${shownPrefixes(a)} -> every client`;
  const added = b.filter((r) => !a.includes(r)).map((r) => `+${r}`);
  const removed = a.filter((r) => !b.includes(r)).map((r) => `-${r}`);
  return `sourceRanges ${shownPrefixes([...added, ...removed]) || 'reordered'}`;
}

/** A VIP's `state` change, with what the nodes do about it. */
function vipStateChange(a: Vip, b: Vip): string {
  const [from, to] = [vipStateOf(a), vipStateOf(b)];
  if (from === to) return '';
  const effect =
    to === 'disabled'
      ? 'no node serves or announces it'
      : to === 'draining'
        ? 'still announced, open flows continue, every node refuses new ones'
        : from === 'draining'
          ? 'every node takes new flows again'
          : 'every node serves it again';
  return `state ${from} -> ${to} (${effect})`;
}

function keyed<T>(items: readonly T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((t) => [key(t), t]));
}

/** Changes from `before` (the stored fleet, or undefined for an empty store) to `after`, sorted by subject. */
export function diffFleets(before: Fleet | undefined, after: Fleet): FleetDiff {
  const changes: FleetChange[] = [];
  const poolsChanged = new Set<string>();
  const b = before ?? { pools: [], vips: [] };
  if (after.hashSeed !== undefined && b.hashSeed !== after.hashSeed) {
    changes.push({
      kind: 'changed',
      subject: 'hashSeed',
      detail: `${b.hashSeed ?? '-'} -> ${after.hashSeed} (every flow may move)`,
    });
  }
  const vb = keyed(b.vips, vipKey);
  const va = keyed(after.vips, vipKey);
  for (const [k, v] of va) {
    const old = vb.get(k);
    if (!old) {
      const state = vipStateOf(v);
      const disabled =
        state === 'disabled' ? ', disabled (not served)' : state === 'draining' ? ', draining (takes no new flow)' : '';
      changes.push({ kind: 'added', subject: `vip ${k}`, detail: `pool ${v.pool}${disabled}` });
    } else if (!same(old, v)) {
      changes.push({
        kind: 'changed',
        subject: `vip ${k}`,
        detail: [
          fieldChanges<Vip>(old, v, ['pool', 'tableSize', 'hash', 'profile']),
          sourceRangesChange(old.sourceRanges, v.sourceRanges),
          vipStateChange(old, v),
        ]
          .filter((d) => d !== '')
          .join(', '),
      });
    }
  }
  for (const k of vb.keys()) if (!va.has(k)) changes.push({ kind: 'removed', subject: `vip ${k}`, detail: '' });

  const pb = keyed(b.pools, (p: Pool) => p.name);
  const pa = keyed(after.pools, (p: Pool) => p.name);
  for (const [name, pool] of pa) {
    const old = pb.get(name);
    if (!old) {
      changes.push({ kind: 'added', subject: `pool ${name}`, detail: `${pool.members.length} members` });
      poolsChanged.add(name);
      continue;
    }
    if (!same(old.healthCheck, pool.healthCheck)) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `healthCheck ${JSON.stringify(old.healthCheck)} -> ${JSON.stringify(pool.healthCheck)}`,
      });
    }
    if (!same(old.additionalHealthChecks ?? [], pool.additionalHealthChecks ?? [])) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `additionalHealthChecks ${JSON.stringify(old.additionalHealthChecks ?? [])} -> ${JSON.stringify(pool.additionalHealthChecks ?? [])}`,
      });
    }
    if (old.healthChecksRequired !== pool.healthChecksRequired) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `healthChecksRequired ${old.healthChecksRequired ?? 'all'} -> ${pool.healthChecksRequired ?? 'all'}`,
      });
    }
    if (old.forwarding !== pool.forwarding || old.guePort !== pool.guePort) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `forwarding ${old.forwarding}/${old.guePort} -> ${pool.forwarding}/${pool.guePort}`,
      });
    }
    if (onMemberDownOf(old) !== onMemberDownOf(pool)) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `onMemberDown ${onMemberDownOf(old)} -> ${onMemberDownOf(pool)}`,
      });
    }
    if (slowStartOf(old) !== slowStartOf(pool)) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `slowStartS ${slowStartOf(old)} -> ${slowStartOf(pool)}`,
      });
    }
    if (minActiveMembersOf(old) !== minActiveMembersOf(pool)) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `minActiveMembers ${minActiveMembersOf(old)} -> ${minActiveMembersOf(pool)}`,
      });
      // The backups' weights follow it: a table input.
      poolsChanged.add(name);
    }
    if (minUpMembersOf(old) !== minUpMembersOf(pool)) {
      // Not a table input: it decides only whether the pool's VIPs are announced.
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `minUpMembers ${minUpMembersOf(old)} -> ${minUpMembersOf(pool)} (VIPs announced while at least that many members take new flows)`,
      });
    }
    const [scOld, scNew] = [secondChanceOf(old), secondChanceOf(pool)];
    if (scOld.enabled !== scNew.enabled || scOld.retainS !== scNew.retainS) {
      changes.push({
        kind: 'changed',
        subject: `pool ${name}`,
        detail: `secondChance ${JSON.stringify(scOld)} -> ${JSON.stringify(scNew)}`,
      });
    }
    const mb = keyed(old.members, (m: Member) => m.name);
    const ma = keyed(pool.members, (m: Member) => m.name);
    for (const [mn, m] of ma) {
      const om = mb.get(mn);
      if (!om) {
        changes.push({
          kind: 'added',
          subject: `member ${name}/${mn}`,
          detail: `${endpointText(m.address, m.port)} weight ${m.weight} ${m.state}${m.backup ? ' backup' : ''}`,
        });
        poolsChanged.add(name);
      } else if (!same(om, m)) {
        changes.push({
          kind: 'changed',
          subject: `member ${name}/${mn}`,
          detail: fieldChanges<Member>(om, m, ['address', 'port', 'weight', 'state', 'backup']),
        });
        poolsChanged.add(name);
      }
    }
    for (const mn of mb.keys()) {
      if (!ma.has(mn)) {
        changes.push({ kind: 'removed', subject: `member ${name}/${mn}`, detail: '' });
        poolsChanged.add(name);
      }
    }
  }
  for (const name of pb.keys()) {
    if (!pa.has(name)) {
      changes.push({ kind: 'removed', subject: `pool ${name}`, detail: '' });
      poolsChanged.add(name);
    }
  }
  const order = { removed: 0, changed: 1, added: 2 } as const;
  changes.sort((x, y) => (x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : order[x.kind] - order[y.kind]));
  return { changes, poolsChanged: [...poolsChanged].sort() };
}
