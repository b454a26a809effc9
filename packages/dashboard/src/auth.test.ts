import { describe, expect, test } from 'vitest';
import { createWriteGuard } from './auth.js';

const TOKEN = 'a-long-enough-token-1234';

describe('auth', () => {
  test('auth - without a token every write is refused as disabled', () => {
    const g = createWriteGuard(undefined);
    expect(g.enabled).toBe(false);
    expect(() => g.check(`Bearer ${TOKEN}`)).toThrow(expect.objectContaining({ code: 'WRITES_DISABLED' }));
  });

  test.each([[undefined], [''], [TOKEN], [`Bearer ${TOKEN}x`], [`Bearer ${TOKEN.slice(1)}`], [`bearer ${TOKEN}`]])(
    'auth - header %j is unauthorized',
    (header) => {
      expect(() => createWriteGuard(TOKEN).check(header)).toThrow(expect.objectContaining({ code: 'UNAUTHORIZED' }));
    },
  );

  test('auth - the right bearer token passes; a short token is refused at start', () => {
    expect(() => createWriteGuard(TOKEN).check(`Bearer ${TOKEN}`)).not.toThrow();
    expect(() => createWriteGuard('short')).toThrow(/token: 5 characters is too short \(at least 16\)/);
  });
});
