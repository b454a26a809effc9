import { describe, expect, test } from 'vitest';
import { ConfigError } from './errors.js';
import { logLevelFromEnv } from './log-level.js';

describe('config log level - L4FLEET_LOG_LEVEL', () => {
  test.each([
    [{}, undefined],
    [{ L4FLEET_LOG_LEVEL: '' }, undefined],
    [{ L4FLEET_LOG_LEVEL: 'debug' }, 'debug'],
    [{ L4FLEET_LOG_LEVEL: 'silent' }, 'silent'],
  ])('%j: %s', (env, level) => {
    expect(logLevelFromEnv(env)).toBe(level);
  });

  test('an unknown level is refused naming the variable, the value and the levels', () => {
    expect(() => logLevelFromEnv({ L4FLEET_LOG_LEVEL: 'verbose' })).toThrow(
      new ConfigError('INVALID', [
        {
          path: 'L4FLEET_LOG_LEVEL',
          message: '"verbose" is not one of fatal, error, warn, info, debug, trace, silent',
        },
      ]),
    );
  });
});
