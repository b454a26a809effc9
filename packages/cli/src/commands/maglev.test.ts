/** `l4fleet maglev slot` and the endpoint parser shared with `explain flow` and `member`. */
import { describe, expect, test } from 'vitest';
import { CliError, EXIT_USAGE } from '../io.js';
import { parseEndpoint } from './maglev.js';

describe('cli - endpoints', () => {
  test.each([
    ['198.18.0.1:99999', 'src: port 99999 of "198.18.0.1:99999" is not a port (0-65535)'],
    ['[2001:db8::1]:65536', 'src: port 65536 of "[2001:db8::1]:65536" is not a port (0-65535)'],
    [
      '198.18.0.1:1' + '0'.repeat(400),
      `src: port 1${'0'.repeat(400)} of "198.18.0.1:1${'0'.repeat(400)}" is not a port (0-65535)`,
    ],
  ])('%s is a usage error naming the field', (text, message) => {
    expect(() => parseEndpoint(text, 'src')).toThrow(message);
    expect(() => parseEndpoint(text, 'src')).toThrow(expect.objectContaining({ exitCode: EXIT_USAGE }));
    expect(() => parseEndpoint(text, 'src')).toThrow(CliError);
  });

  test.each([
    ['198.18.0.1:0', { address: '198.18.0.1', port: 0 }],
    ['[2001:db8::1]:65535', { address: '2001:db8::1', port: 65535 }],
  ])('%s is taken', (text, want) => {
    expect(parseEndpoint(text, 'src')).toEqual(want);
  });
});
