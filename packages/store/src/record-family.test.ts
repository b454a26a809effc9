import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { invalidRecord } from './errors.js';
import { warnInvalidRecord } from './record-family.js';
import type { StoreContext } from './store-context.js';

/** DEL and the C1 controls (U+007F-U+009F): pino's JSON escapes C0 only, so these reach a log raw. */
const rawC1 = (text: string): string[] =>
  [...text].filter((c) => (c.codePointAt(0) ?? 0) >= 0x7f && (c.codePointAt(0) ?? 0) <= 0x9f);

describe('store record family - warnInvalidRecord', () => {
  test("a refused record's key is logged with its control characters escaped; the error keeps it as it is", () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const key = '/l4fleet/v1/desired/pools/\u009b2Jweb\u007f\u0085';
    const err = invalidRecord(key, 'not JSON');
    warnInvalidRecord({ log } as unknown as StoreContext)(err);
    expect(lines).toHaveLength(1);
    expect(rawC1(lines[0] ?? '')).toEqual([]);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      event: 'invalidRecord',
      key: '/l4fleet/v1/desired/pools/\\u009b2Jweb\\u007f\\u0085',
      code: 'INVALID_RECORD',
    });
    expect(err.key).toBe(key);
  });
});
