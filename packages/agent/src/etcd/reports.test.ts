/** The node's etcd reports: batched, one write in flight, bounded in size; time runs on a manual clock. */
import type { NodeRegistration, NodeStatusReport } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createReports, MAX_STATUS_BYTES, REPORT_RETRY_MS, STATUS_REPORT_DELAY_MS } from './reports.js';

const base: NodeStatusReport = { tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 };

/** A registration whose status writes wait until the test settles them. */
function registration() {
  const writes: { status: NodeStatusReport; settle: (err?: Error) => void }[] = [];
  const reg: NodeRegistration = {
    name: 'n1',
    reportHealth: async () => undefined,
    reportStatus: (status) =>
      new Promise<void>((resolve, reject) => {
        writes.push({ status, settle: (err) => (err ? reject(err) : resolve()) });
      }),
    close: async () => undefined,
  };
  return { reg, writes };
}

function setup(status: () => NodeStatusReport) {
  const clock = createManualClock(0);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const reports = createReports({ clock, logger, observed: () => new Map(), status });
  const { reg, writes } = registration();
  reports.setRegistration(reg);
  return { clock, lines, reports, writes };
}

describe('reports - status record size', () => {
  // A status record beyond what one etcd request may carry was sent anyway: refused by etcd each time, retried every
  // second forever, with a debug line that named no size.
  test('a status record beyond MAX_STATUS_BYTES is not sent, and the log names its size', async () => {
    const big = { ...base, tables: { 'x:1/tcp': 'c'.repeat(MAX_STATUS_BYTES) } };
    const s = setup(() => big);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS + 10 * REPORT_RETRY_MS);
    expect(s.writes).toEqual([]);
    const refused = s.lines.filter((l) => l.event === 'statusReportTooLarge');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: 50, maxBytes: MAX_STATUS_BYTES });
    expect(refused[0]?.bytes).toBeGreaterThan(MAX_STATUS_BYTES);
    s.reports.close();
  });
});

describe('reports - status writes', () => {
  // With etcd slower than the batching delay, a second write went out while the first was in flight; the older one
  // could commit last, leaving `l4fleet status` on an old revision until the next change.
  test('one write in flight: a change meanwhile is written after it settles, with the latest record', async () => {
    let revision = 1;
    const s = setup(() => ({ ...base, desiredRevision: revision }));
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(s.writes.map((w) => w.status.desiredRevision)).toEqual([1]);
    revision = 2;
    s.reports.status();
    await s.clock.advance(10 * STATUS_REPORT_DELAY_MS);
    revision = 3;
    s.reports.status();
    await s.clock.advance(10 * STATUS_REPORT_DELAY_MS);
    expect(s.writes.map((w) => w.status.desiredRevision)).toEqual([1]);
    s.writes[0]?.settle();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(s.writes.map((w) => w.status.desiredRevision)).toEqual([1, 3]);
    s.writes[1]?.settle();
    await s.clock.advance(10 * STATUS_REPORT_DELAY_MS);
    expect(s.writes).toHaveLength(2);
    s.reports.close();
  });

  test('a write that never settles holds the next one back (no pile of writes)', async () => {
    const s = setup(() => base);
    for (let i = 0; i < 20; i++) {
      s.reports.status();
      await s.clock.advance(STATUS_REPORT_DELAY_MS);
    }
    expect(s.writes).toHaveLength(1);
    s.reports.close();
  });

  test('a failed write is tried again after REPORT_RETRY_MS', async () => {
    const s = setup(() => base);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    s.writes[0]?.settle(new Error('etcd unavailable'));
    await s.clock.advance(REPORT_RETRY_MS + STATUS_REPORT_DELAY_MS);
    expect(s.writes).toHaveLength(2);
    expect(s.lines.some((l) => l.event === 'statusReportFailed')).toBe(true);
    s.reports.close();
  });
});

describe('reports - status record unchanged', () => {
  test('the same record again (but its at) is not written; a change is; a new registration writes it again', async () => {
    let status: NodeStatusReport = { ...base, at: '2026-12-06T08:00:00Z' };
    const s = setup(() => status);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    s.writes[0]?.settle();
    await s.clock.advance(0);
    status = { ...base, at: '2026-12-06T08:00:01Z' }; // a pass each second while gobgpd is away: nothing changed
    for (let i = 0; i < 5; i++) {
      s.reports.status();
      await s.clock.advance(1_000);
    }
    expect(s.writes).toHaveLength(1);
    status = { ...base, desiredRevision: 2 };
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(s.writes.map((w) => w.status.desiredRevision)).toEqual([1, 2]);
    s.writes[1]?.settle();
    await s.clock.advance(0);
    const again = registration();
    s.reports.setRegistration(again.reg);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(again.writes.map((w) => w.status.desiredRevision)).toEqual([2]);
    s.reports.close();
  });

  // A failed write kept the last confirmed record as the last written, though the registration holds the failed one
  // (written again with a new lease) and etcd may have committed it: back to the confirmed record, nothing was written,
  // and the status showed fail-static until an unrelated change.
  test('a failed write forgets the last record: going back to it after the failure writes it again', async () => {
    let status: NodeStatusReport = base;
    const s = setup(() => status);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    s.writes[0]?.settle();
    await s.clock.advance(0);
    status = { ...base, failStatic: true }; // etcd away
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    s.writes[1]?.settle(new Error('etcd: unavailable'));
    await s.clock.advance(0);
    status = base; // etcd back before the retry
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(s.writes.map((w) => w.status.failStatic)).toEqual([false, true, false]);
    s.reports.close();
  });

  test('a re-registration (a new lease on the same registration) writes the record again', async () => {
    const s = setup(() => base);
    s.reports.status();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    s.writes[0]?.settle();
    await s.clock.advance(0);
    s.reports.reregistered();
    await s.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(s.writes).toHaveLength(2);
    s.reports.close();
  });
});

describe('reports - retries while etcd is away', () => {
  /** Reports whose writes always fail, counting the writes of each kind. */
  function failing() {
    const clock = createManualClock(0);
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    let status = base;
    const reports = createReports({
      clock,
      logger,
      observed: () => new Map([['web/10.0.0.1:80', 'up']]),
      status: () => status,
    });
    const writes = { health: 0, status: 0 };
    let fail = true;
    reports.setRegistration({
      name: 'n1',
      reportHealth: async () => {
        writes.health += 1;
        if (fail) throw new Error('etcd unavailable');
      },
      reportStatus: async () => {
        writes.status += 1;
        if (fail) throw new Error('etcd unavailable');
      },
      close: async () => undefined,
    });
    const change = (revision: number) => {
      status = { ...base, desiredRevision: revision };
      reports.health();
      reports.status();
    };
    const failWrites = (f: boolean) => {
      fail = f;
    };
    return { clock, lines, reports, writes, change, failWrites };
  }

  // Each failed write set a retry timer of its own, kept by no one: every change during an etcd outage started one
  // more endless retry loop (200 changes: 450 writes and 450 warnings in 10 quiet seconds, 46 timers pending).
  test('many changes during an outage leave one retry per report: a write a second each, one warning', async () => {
    const s = failing();
    for (let i = 0; i < 200; i++) {
      s.change(i + 2);
      await s.clock.advance(333);
    }
    const before = { ...s.writes };
    const linesBefore = s.lines.length;
    await s.clock.advance(10_000);
    expect(s.writes.health - before.health).toBeLessThanOrEqual(10);
    expect(s.writes.status - before.status).toBeLessThanOrEqual(10);
    expect(s.writes.health - before.health).toBeGreaterThanOrEqual(9);
    expect(s.lines.slice(linesBefore).filter((l) => l.level === 40)).toEqual([]);
    expect(s.lines.filter((l) => l.event === 'healthReportFailed' && l.level === 40)).toHaveLength(1);
    expect(s.clock.pending).toBeLessThanOrEqual(2);
    s.reports.close();
    expect(s.clock.pending).toBe(0);
  });

  test('once a write goes through the retries stop, and the next failure warns again', async () => {
    const s = failing();
    s.change(2);
    await s.clock.advance(5 * REPORT_RETRY_MS);
    s.failWrites(false);
    await s.clock.advance(2 * REPORT_RETRY_MS);
    const after = { ...s.writes };
    await s.clock.advance(10 * REPORT_RETRY_MS);
    expect(s.writes).toEqual(after);
    expect(s.clock.pending).toBe(0);
    const warned = () => s.lines.filter((l) => l.event === 'healthReportFailed' && l.level === 40);
    expect(warned()).toHaveLength(1);
    expect(s.lines.filter((l) => l.event === 'healthReportResumed')).toHaveLength(1);
    s.failWrites(true);
    s.change(3);
    await s.clock.advance(3 * REPORT_RETRY_MS);
    expect(warned()).toHaveLength(2);
    s.reports.close();
  });
});
