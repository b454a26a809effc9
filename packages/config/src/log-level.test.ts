import { describe, expect, test } from 'vitest';
import { ConfigError } from './errors.js';
import { logLevelFromEnv, logLevelNamed } from './log-level.js';

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

describe('config log level - a flag', () => {
  test('a level is returned as is', () => {
    expect(logLevelNamed('trace', '--log-level')).toBe('trace');
  });

  test.each(['', 'INFO', 'bogus'])('%j is refused naming the flag, the value and the levels', (value) => {
    expect(() => logLevelNamed(value, '--log-level')).toThrow(
      new ConfigError('INVALID', [
        {
          path: '--log-level',
          message: `${JSON.stringify(value)} is not one of fatal, error, warn, info, debug, trace, silent`,
        },
      ]),
    );
  });
});
