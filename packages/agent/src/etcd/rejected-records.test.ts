import { StoreError } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import type { EventPublisher } from '../events/publisher.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createRejectedRecords, MAX_REJECTED_KEY_CHARS } from './rejected-records.js';

/** DEL and the C1 controls (U+007F-U+009F): JSON (pino's, the events') escapes C0 only, so these went out raw. */
const rawC1 = (text: string): string[] =>
  [...text].filter((c) => (c.codePointAt(0) ?? 0) >= 0x7f && (c.codePointAt(0) ?? 0) <= 0x9f);

/** A rejected record's error, `key` as it is; the message holds it raw too (no StoreError's text is trusted here). */
const refused = (key: string): StoreError => new StoreError('INVALID_RECORD', `${key}: not JSON`, { key });

function setup() {
  const lines: string[] = [];
  const events: { kind: string; data: unknown }[] = [];
  const rejected = createRejectedRecords({
    clock: { now: () => Date.UTC(2026, 11, 7) } as never,
    logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }),
    events: { emit: (kind: string, data: unknown) => void events.push({ kind, data }) } as unknown as EventPublisher,
    metrics: createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false }),
    onChange: () => undefined,
  });
  return { lines, events, rejected };
}

describe('agent rejected records', () => {
  test("a hand-written key's C1 controls (CSI) reach the log, the record.rejected event and the status escaped", () => {
    const t = setup();
    const key = '/l4fleet/v1/desired/pools/\u009b2J\u009b31mweb\u007f';
    t.rejected.report('desired', refused(key));
    expect(t.lines).toHaveLength(1);
    expect(rawC1(t.lines[0] ?? '')).toEqual([]);
    const escaped = '/l4fleet/v1/desired/pools/\\u009b2J\\u009b31mweb\\u007f';
    expect(JSON.parse(t.lines[0] ?? '{}')).toMatchObject({ event: 'recordRejected', family: 'desired', key: escaped });
    expect(t.events).toHaveLength(1);
    expect(t.events[0]).toMatchObject({ kind: 'record.rejected', data: { family: 'desired', key: escaped } });
    expect(rawC1(JSON.stringify(t.events[0]?.data))).toEqual([]);
    expect(t.rejected.summary?.last).toMatchObject({ family: 'desired', key: escaped });
    expect(rawC1(JSON.stringify(t.rejected.summary))).toEqual([]);
  });

  test('an escaped key is still cut to MAX_REJECTED_KEY_CHARS', () => {
    const t = setup();
    t.rejected.report('nodes', refused(`/l4fleet/v1/nodes/${'\u009b'.repeat(100_000)}`));
    const key = (t.events[0]?.data as { key?: string } | undefined)?.key ?? '';
    expect(key.startsWith('/l4fleet/v1/nodes/\\u009b')).toBe(true);
    expect(key).toMatch(/\.\.\. \(cut: [\d,]+ chars\)$/);
    expect(key.length).toBeLessThan(MAX_REJECTED_KEY_CHARS + 40);
    expect(rawC1(key)).toEqual([]);
  });
});
