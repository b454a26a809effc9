export { type IpFamily, type ParsedAddress, parseAddress } from './address.js';
export { type Churn, churn, diffTables, type NamedTable, type SlotChange } from './diff.js';
export { MaglevError, type MaglevErrorCode } from './errors.js';
export { type Flow, flowHash, flowKey, type HashMode, type Protocol, slotOf } from './flow.js';
export { jhash, jhashInto, reciprocalScale } from './jhash.js';
export { type EarlierTable, previousOwners } from './previous.js';
export { isPrime, nextPrime } from './prime.js';
export { type TableStats, tableStats } from './stats.js';
export {
  assertTableSize,
  type BackendSpec,
  buildNamedTable,
  buildTable,
  DEFAULT_TABLE_SIZE,
  MAX_TABLE_SIZE,
  NO_BACKEND,
} from './table.js';
