/**
 * Previous owners of a VIP table's slots (second chance, docs/design/0011-second-chance.md). The earlier tables are
 * rebuilt from the pool's history (table-history.ts) at the VIP's table size, and @l4fleet/maglev previousOwners()
 * takes per slot the owner before the last change that moved it. Members that own no current slot (removed,
 * disabled, re-addressed names excepted) are appended to the table's backends so the data plane can reach them;
 * members on another family or port than the VIP (the pool moved since) are not, as no data plane could reach them.
 */
import { createHash } from 'node:crypto';
import { buildTable, type EarlierTable, NO_BACKEND, previousOwners } from '@l4fleet/maglev';
import { secondChanceActive } from './second-chance.js';
import type { VipTable } from './table.js';
import { earlierTables, type HistoryMember, type PoolHistory } from './table-history.js';
import type { Member, Pool } from './types.js';

const familyOf = (address: string): 4 | 6 => (address.includes(':') ? 6 : 4);

/**
 * Whether the data plane can send a flow to `m` for `vip`: the VIP's family (a packet has one), and the VIP's port
 * unless the pool rewrites ports (nat). Direct server return does not rewrite ports, so the bpf data plane refuses
 * such a backend (validateDesired) and with it the whole desired state: a member from before the VIP moved to
 * another port or family is no previous owner.
 */
function reachable(m: HistoryMember, vip: VipTable['vip'], forwarding: Pool['forwarding']): boolean {
  if (familyOf(m.address) !== familyOf(vip.address)) return false;
  return forwarding === 'nat' || m.port === vip.port;
}

/** A member carried only as a previous owner: out of the current table (no slots, no new flows). */
function carried(m: HistoryMember): Member {
  return { name: m.name, address: m.address, port: m.port, weight: 0, state: 'disabled' };
}

/**
 * `table` with `previousSlots` (and the extra backends) when the pool has second chance and some slot has a
 * previous owner; otherwise `table` itself, unchanged (same checksum as without history).
 */
export function withPreviousOwners(
  table: VipTable,
  pool: Pick<Pool, 'secondChance' | 'forwarding'>,
  inputs: readonly HistoryMember[],
  history: PoolHistory | undefined,
): VipTable {
  if (!history || !secondChanceActive(pool)) return table;
  const size = table.slots.length;
  const backends: Member[] = [...table.backends];
  const index = new Map(backends.map((m, i) => [m.name, i]));
  const earlier: EarlierTable[] = [];
  for (const members of earlierTables(history, inputs)) {
    // An earlier table with more members than slots cannot be rebuilt at this size (a table size change): skipped.
    if (members.length >= size) continue;
    const slots = buildTable(members, size);
    const toIndex = new Int32Array(members.length).fill(NO_BACKEND);
    members.forEach((m, i) => {
      let at = index.get(m.name);
      if (at === undefined) {
        if (!reachable(m, table.vip, pool.forwarding)) return;
        at = backends.push(carried(m)) - 1;
        index.set(m.name, at);
      }
      const known = backends[at] as Member;
      // The same name at another endpoint is another backend: not carried (a flow there is not on this one).
      if (known.address === m.address && known.port === m.port) toIndex[i] = at;
    });
    earlier.push({ slots, toIndex });
  }
  const previous = previousOwners(table.slots, earlier);
  const used = new Uint8Array(backends.length);
  let any = false;
  for (const i of previous) {
    if (i === NO_BACKEND) continue;
    used[i] = 1;
    any = true;
  }
  if (!any) return table;
  // Keep only the carried members some slot names, renumbered in order (the current index space is untouched).
  const first = table.backends.length;
  const renumber = new Int32Array(backends.length).fill(NO_BACKEND);
  const kept: Member[] = backends.slice(0, first);
  for (let i = 0; i < backends.length; i++) {
    if (i < first) renumber[i] = i;
    else if (used[i] === 1) renumber[i] = kept.push(backends[i] as Member) - 1;
  }
  // A Maglev table needs more slots than backends (§3.4; the data plane checks it): a tiny table that cannot also
  // hold the carried members gets no previous owners rather than a table every node would refuse.
  if (kept.length >= size) return table;
  for (let s = 0; s < size; s++) {
    const i = previous[s] as number;
    if (i !== NO_BACKEND) previous[s] = renumber[i] as number;
  }
  return {
    ...table,
    backends: kept,
    previousSlots: previous,
    checksum: previousChecksum(table.checksum, kept.slice(first), previous),
  };
}

/** The table's checksum extended by the carried members and the previous owners: nodes that differ there differ. */
export function previousChecksum(base: string, carriedMembers: readonly Member[], previous: Int32Array): string {
  const h = createHash('sha256');
  h.update(`l4fleet-previous-v1\n${base}\n`);
  for (const m of carriedMembers) h.update(`${m.name}\t${m.address}\t${m.port}\n`);
  h.update(new Uint8Array(previous.buffer, previous.byteOffset, previous.byteLength));
  return h.digest('hex').slice(0, 16);
}
