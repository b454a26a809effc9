export {
  type Child,
  type ChildOptions,
  type DaemonOptions,
  DEFAULT_LOG_TAIL_CHARS,
  DEFAULT_STOP_TIMEOUT_MS,
  spawnChild,
  startDaemon,
} from './daemon.js';
export { ProcessError, type ProcessErrorCode } from './errors.js';
export {
  acquirePidLock,
  DEFAULT_PID_LOCK_POLL_MS,
  type PidLock,
  type PidLockAttempt,
  type PidLockHolder,
  type PidLockOptions,
  PidLockTimeoutError,
  pidLockHolderRuns,
  readPidLockHolder,
  releasePidLock,
  tryTakePidLock,
} from './pid-lock.js';
export { pidStartTime } from './pid-start.js';
export { isAlive, killAll, namespacePids, signal } from './pids.js';
export { canConnect, ephemeralPortLow, FREE_PORT_LOWEST, freePort } from './ports.js';
export {
  DEFAULT_COMMAND_TIMEOUT_MS,
  inNamespace,
  type NetnsEntry,
  type RunOptions,
  type RunResult,
  run,
  runScript,
} from './run.js';
export { sleep, waitFor } from './wait.js';
