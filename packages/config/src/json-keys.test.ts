import { describe, expect, test } from 'vitest';
import { duplicateJsonKey } from './json-keys.js';

describe('config json keys - duplicates', () => {
  test.each([
    ['{"a":1,"b":2}', undefined],
    ['{"a":{"x":1},"b":{"x":1}}', undefined],
    ['[{"a":1},{"a":1}]', undefined],
    ['{"a":"a","b":["a","a"]}', undefined],
    ['{"a\\"":1,"a":2}', undefined],
    ['{"a":"\\\\","a\\\\":2,"b":"\\"a\\":"}', undefined],
    ['{"a":1,"a":2}', { path: 'a', key: 'a' }],
    ['{"a":"\\\\","a\\\\":2,"a\\\\":3}', { path: '["a\\\\"]', key: 'a\\' }],
    ['{"p":[{"x":1},{"q":{"x":1,"y":"}","x":2}}]}', { path: 'p[1].q.x', key: 'x' }],
    ['{"p":[[],[{}],[{"k":1,"\\u006b":2}]]}', { path: 'p[2][0].k', key: 'k' }],
    ['"unterminated', undefined],
  ])('%s', (text, expected) => {
    expect(duplicateJsonKey(text)).toEqual(expected);
  });
});
