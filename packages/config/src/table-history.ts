/**
 * A pool's table history (second chance, docs/design/0011-second-chance.md): the inputs of its current Maglev table
 * and of up to MAX_PREVIOUS_TABLES earlier ones, each with the time it stopped being current. Maglev tables depend
 * only on the set of (name, weight) pairs and the size (§3.4), so the inputs rebuild the earlier tables exactly on
 * every node: the history is written once (by the elected aggregator, to etcd) and every node, a restarted one
 * included, derives the same previous owners from it.
 */
import { MAX_PREVIOUS_TABLES, type SecondChance } from './second-chance.js';

/** One table member as the table saw it: its endpoint and its effective weight (0: in the index space, no slots). */
export interface HistoryMember {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
}

export interface EarlierPoolTable {
  /** The table's members in index-space order (tableMembers: sorted by name). */
  readonly members: readonly HistoryMember[];
  /** When it stopped being current (the writer's clock), ms since the epoch. */
  readonly untilMs: number;
}

export interface PoolHistory {
  readonly pool: string;
  /** The inputs of the pool's table as the writer last recorded them. */
  readonly current: readonly HistoryMember[];
  /** Earlier tables, newest first; none older than the pool's retainS when written. */
  readonly earlier: readonly EarlierPoolTable[];
}

/** Pool name -> its history. */
export type TableHistory = ReadonlyMap<string, PoolHistory>;

export function sameTableInputs(a: readonly HistoryMember[], b: readonly HistoryMember[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as HistoryMember;
    const y = b[i] as HistoryMember;
    if (x.name !== y.name || x.address !== y.address || x.port !== y.port || x.weight !== y.weight) return false;
  }
  return true;
}

/**
 * The earlier tables, newest first, of a table built from `current`. Nodes can be ahead of the record: a change
 * (an apply, a decision) reaches them before the writer has recorded it. Then the record's `current` is the table
 * just replaced and comes first. Both cases are a function of (inputs, record) only, so every node with the same
 * inputs and record derives the same list, and the list does not change when the writer catches up.
 */
export function earlierTables(history: PoolHistory, current: readonly HistoryMember[]): (readonly HistoryMember[])[] {
  const earlier = history.earlier.map((t) => t.members);
  if (sameTableInputs(history.current, current)) return earlier;
  return [history.current, ...earlier].slice(0, MAX_PREVIOUS_TABLES);
}

/**
 * The writer's step for one pool: records `current` (the pool's table inputs now) and drops earlier tables older
 * than `setting.retainS` or beyond MAX_PREVIOUS_TABLES. Returns `history` itself when nothing changed (no write).
 * `replaceCurrent`: the record's current is an intermediate slow-start step (slow-start.ts) and is replaced, not
 * kept as an earlier table, so a member's return takes one place in the history, as without slow start: the table
 * from before the ramp stays, and a slot that moved at any step names its owner from before the ramp.
 */
export function recordPoolTable(
  history: PoolHistory | undefined,
  pool: string,
  current: readonly HistoryMember[],
  setting: SecondChance,
  nowMs: number,
  replaceCurrent = false,
): PoolHistory {
  if (!history || history.pool !== pool) return { pool, current, earlier: [] };
  const moved = !sameTableInputs(history.current, current);
  const kept = moved && !replaceCurrent;
  const candidates = kept ? [{ members: history.current, untilMs: nowMs }, ...history.earlier] : history.earlier;
  const oldestKeptMs = nowMs - setting.retainS * 1_000;
  const earlier = candidates.filter((t) => t.untilMs > oldestKeptMs).slice(0, MAX_PREVIOUS_TABLES);
  if (!moved && earlier.length === history.earlier.length) return history;
  return { pool, current: moved ? current : history.current, earlier };
}

/** When the next earlier table of `history` expires under `setting`, ms since the epoch; undefined: none. */
export function nextExpiryMs(history: PoolHistory, setting: SecondChance): number | undefined {
  let next: number | undefined;
  for (const t of history.earlier) {
    const at = t.untilMs + setting.retainS * 1_000;
    if (next === undefined || at < next) next = at;
  }
  return next;
}
