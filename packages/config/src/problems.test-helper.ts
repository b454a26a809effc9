/** For this package's tests only (excluded from the build): the problems parseFleet reports for `raw`, one per line. */
import { expect } from 'vitest';
import { ConfigError } from './errors.js';
import { parseFleet } from './parse.js';

export function problems(raw: unknown): string[] {
  try {
    parseFleet(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.split('\n');
  }
  throw new Error('expected a ConfigError');
}
