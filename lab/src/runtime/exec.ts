/**
 * The lab runs programs through @l4fleet/process (the one runner of the lab, the tests and the data plane). This
 * module only forwards its names until the last lab modules import the package directly.
 */
export {
  type DaemonOptions,
  DEFAULT_COMMAND_TIMEOUT_MS,
  inNamespace,
  isAlive,
  type RunOptions,
  type RunResult,
  run,
  runScript,
  sleep,
  startDaemon,
  waitFor,
} from '@l4fleet/process';
