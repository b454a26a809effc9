import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createEventPublisher, type EventTransport } from './publisher.js';

const logger = pino({ level: 'silent' });

function transport(): EventTransport & { connected: boolean; sent: { subject: string; body: unknown }[] } {
  const t = {
    connected: true,
    sent: [] as { subject: string; body: unknown }[],
    publish(subject: string, data: Uint8Array) {
      t.sent.push({ subject, body: JSON.parse(new TextDecoder().decode(data)) });
    },
    isConnected: () => t.connected,
  };
  return t;
}

describe('events - publisher', () => {
  test('publishes with a per-node sequence', () => {
    const t = transport();
    const p = createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'n1', maxPending: 10, logger });
    p.setTransport(t);
    p.emit('node.state', { state: 'serving', previous: 'starting', failStatic: false });
    p.emit('vip.withdrawn', { vip: '198.51.100.10:80/tcp', prefix: '198.51.100.10/32', reason: 'drain' });
    expect(t.sent.map((s) => s.subject)).toEqual(['l4fleet.f.node.state.n1', 'l4fleet.f.vip.withdrawn.n1']);
    expect(t.sent.map((s) => (s.body as { seq: number }).seq)).toEqual([1, 2]);
    expect(p.published).toBe(2);
  });

  test('while disconnected, at most maxPending events wait; the oldest are dropped and counted', () => {
    const t = transport();
    t.connected = false;
    const p = createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'n1', maxPending: 3, logger });
    p.setTransport(t);
    for (let i = 0; i < 10; i++) p.emit('state.rejected', { error: `e${i}`, code: 'INVALID_STATE' });
    expect(t.sent).toEqual([]);
    expect(p.pending).toBe(3);
    expect(p.dropped).toBe(7);
    t.connected = true;
    p.flush();
    expect(t.sent.map((s) => (s.body as { data: { error: string } }).data.error)).toEqual(['e7', 'e8', 'e9']);
    expect(p.pending).toBe(0);
  });

  test('without a transport nothing grows past maxPending', () => {
    const p = createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'n1', maxPending: 0, logger });
    for (let i = 0; i < 100; i++) p.emit('state.rejected', { error: 'x', code: 'X' });
    expect(p.pending).toBe(0);
    expect(p.dropped).toBe(100);
  });

  // A publish nats.js refuses at once (MAX_PAYLOAD_EXCEEDED) was queued and retried first, so every later event
  // waited behind it until NATS reconnected (and then failed the same way).
  test('an event the transport refuses is dropped and counted; later events still go out', () => {
    const t = transport();
    const publish = t.publish;
    t.publish = (subject, data) => {
      if (data.length > 200) throw new Error('MAX_PAYLOAD_EXCEEDED');
      publish(subject, data);
    };
    const logs: Record<string, unknown>[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => logs.push(JSON.parse(l)) });
    const p = createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'n1', maxPending: 10, logger: log });
    p.setTransport(t);
    p.emit('state.rejected', { error: 'x'.repeat(500), code: 'BIG' });
    p.emit('state.rejected', { error: 'small', code: 'OK' });
    p.emit('state.rejected', { error: 'x'.repeat(500), code: 'BIG' });
    p.emit('state.rejected', { error: 'small2', code: 'OK' });
    expect(t.sent.map((s) => (s.body as { data: { error: string } }).data.error)).toEqual(['small', 'small2']);
    expect(p).toMatchObject({ pending: 0, dropped: 2, published: 2 });
    expect(logs[0]).toMatchObject({ event: 'eventDropped', reason: 'publishRefused', err: 'MAX_PAYLOAD_EXCEEDED' });
    expect(logs.some((l) => l.reason === 'natsUnreachable')).toBe(false);
  });

  test('events queued while disconnected go out, in order, with the first event after the connection is back', () => {
    const t = transport();
    t.connected = false;
    const p = createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'n1', maxPending: 10, logger });
    p.setTransport(t);
    p.emit('state.rejected', { error: 'e1', code: 'X' });
    t.connected = true; // no flush() from the transport's owner (yet)
    p.emit('state.rejected', { error: 'e2', code: 'X' });
    expect(t.sent.map((s) => (s.body as { data: { error: string } }).data.error)).toEqual(['e1', 'e2']);
    expect(p.pending).toBe(0);
  });
});
