import type { PoolHistory } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { decodeDecided } from './decided.js';
import { StoreError } from './errors.js';
import { decodeHistory } from './history.js';
import { encodePoolHistory } from './history-record.js';

const decided = Buffer.from(JSON.stringify({ pool: 'web', members: { '198.18.0.1:80': 'down' } }));
const history: PoolHistory = {
  pool: 'web',
  current: [{ name: 'a', address: '198.18.0.1', port: 80, weight: 1 }],
  earlier: [],
};

function refusal(f: () => unknown): StoreError {
  try {
    f();
  } catch (err) {
    return err as StoreError;
  }
  throw new Error('not refused');
}

// A hand-written `decided/a/web` taken as pool `web` by its last segment would make running nodes (watch puts) and
// restarted nodes (sorted reads: which of decided/web and decided/a/web comes last) disagree about a member.
describe('store pool keys', () => {
  test.each([
    ['decided', (k: string) => decodeDecided(k, decided), 'decided/'],
    ['history', (k: string) => decodeHistory(k, Buffer.from(encodePoolHistory(history))), 'history/'],
  ])(
    'store pool keys - a %s key is exactly <family><pool>, more segments are an invalid record',
    (_w, decode, family) => {
      expect(decode(`${family}web`).pool).toBe('web');
      for (const key of [`${family}a/web`, `${family}web/`, `${family}/web`]) {
        const err = refusal(() => decode(key));
        expect(err).toBeInstanceOf(StoreError);
        expect(err.code).toBe('INVALID_RECORD');
        expect(err.message).toContain(key);
        expect(err.message).toMatch(/key: ".*" is not a pool name/);
      }
    },
  );
});
