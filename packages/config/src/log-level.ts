/**
 * A pino level from the environment (L4FLEET_LOG_LEVEL), read the same way by every l4fleet process that takes one:
 * pino handed a level it does not know fails with its own words ("default level:verbose must be included in custom
 * levels"), never naming the variable, so an unknown one is refused here naming the variable, the value and the
 * levels. Empty is unset (`export L4FLEET_LOG_LEVEL=`). A flag's value (`--log-level`) is checked by the same list
 * (logLevelNamed), where empty is not unset but a value that is not a level.
 */
import { ConfigError } from './errors.js';

/** pino's levels, the most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The level `env[name]` asks for, undefined when unset or empty; a ConfigError (code INVALID) when unknown. */
export function logLevelFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  name = 'L4FLEET_LOG_LEVEL',
): LogLevelName | undefined {
  const asked = env[name];
  if (asked === undefined || asked === '') return undefined;
  return logLevelNamed(asked, name);
}

/** `value` as a level; a ConfigError (code INVALID) naming `name` (a variable or a flag), the value and the levels. */
export function logLevelNamed(value: string, name: string): LogLevelName {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ConfigError('INVALID', [
      { path: name, message: `${JSON.stringify(value)} is not one of ${LOG_LEVELS.join(', ')}` },
    ]);
  }
  return value as LogLevelName;
}
