/**
 * Second chance (docs/design/0011-second-chance.md): the size of a pool's table history record, `history/<pool>`,
 * as the aggregator stores it (encodePoolHistory: `[name, address, port, weight]` rows), with 4 earlier tables (one
 * member added each time), and the largest pool whose record with all 4 still fits MAX_TXN_BYTES (the writer
 * drops the oldest earlier tables past it, fittedHistoryValue). No etcd: the record is what apply would write.
 * Members are named by config's default (address:port); longer names make every row longer.
 */
import {
  type Fleet,
  MAX_MEMBERS_PER_POOL,
  MAX_PREVIOUS_TABLES,
  type PoolHistory,
  parseFleet,
  recordPoolTable,
  secondChanceOf,
  tableInputsOf,
} from '@l4fleet/config';
import { encodePoolHistory } from '../src/history-record.js';
import { MAX_TXN_BYTES } from '../src/layout.js';

/** The table size does not enter the record; 1,000,003 admits every pool size up to MAX_MEMBERS_PER_POOL. */
const poolOf = (members: number): Fleet['pools'][number] =>
  parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'web',
        forwarding: 'gue',
        members: Array.from({ length: members }, (_, i) => ({
          address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
          port: 80,
        })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 1_000_003 }],
  }).pools[0] as Fleet['pools'][number];

/** The history after `members` grew by one member MAX_PREVIOUS_TABLES times: the current table and 4 earlier. */
function historyOf(members: number): PoolHistory {
  let h: PoolHistory | undefined;
  for (let k = 0; k <= MAX_PREVIOUS_TABLES; k++) {
    const pool = poolOf(members - MAX_PREVIOUS_TABLES + k);
    h = recordPoolTable(h, 'web', tableInputsOf(pool, new Map()), secondChanceOf(pool), 1_000 + k);
  }
  return h as PoolHistory;
}

const storedBytes = (members: number): number => Buffer.byteLength(encodePoolHistory(historyOf(members)));

const rows = [100, 1_000, 10_000].map((members) => {
  const h = historyOf(members);
  const bytes = Buffer.byteLength(encodePoolHistory(h));
  const rowsStored = h.current.length + h.earlier.reduce((s, t) => s + t.members.length, 0);
  return {
    members,
    earlierTables: h.earlier.length,
    storedKiB: Number((bytes / 1024).toFixed(1)),
    bytesPerMemberPerTable: Number((bytes / rowsStored).toFixed(1)),
  };
});

// The largest pool whose record keeps all 4 earlier tables: the size grows with the members, so a binary search.
let lo = MAX_PREVIOUS_TABLES + 1;
let hi = MAX_MEMBERS_PER_POOL;
if (storedBytes(hi) <= MAX_TXN_BYTES) lo = hi;
while (lo < hi) {
  const mid = Math.ceil((lo + hi) / 2);
  if (storedBytes(mid) <= MAX_TXN_BYTES) lo = mid;
  else hi = mid - 1;
}

console.log(`table history record as stored (encodePoolHistory), ${MAX_PREVIOUS_TABLES} earlier tables`);
console.log('members  earlier  stored KiB  bytes per member per table');
for (const r of rows) {
  console.log(
    `${String(r.members).padEnd(8)} ${String(r.earlierTables).padStart(7)} ${String(r.storedKiB).padStart(11)} ${String(r.bytesPerMemberPerTable).padStart(27)}`,
  );
}
console.log(
  `largest pool whose record keeps ${MAX_PREVIOUS_TABLES} earlier tables within MAX_TXN_BYTES ` +
    `(${MAX_TXN_BYTES / 2 ** 20} MiB): ${lo} members (default names)`,
);
console.log(
  JSON.stringify({ bench: 'history-size', rows, maxRecordBytes: MAX_TXN_BYTES, membersFittingAllEarlier: lo }),
);
