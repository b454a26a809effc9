import { describe, expect, test } from 'vitest';
import type { NatsLink } from './nats-link.js';
import { followPeerHealth, peerObservation } from './peer-health.js';

const msg = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const event = (data: Record<string, unknown>, node: unknown = 'n2') => ({ kind: 'member.health', node, data });

describe('peer health - NATS member.health messages', () => {
  test('a well-formed change is an observation', () => {
    expect(peerObservation(msg(event({ member: 'web/a', observed: 'down', changed: true })))).toEqual({
      node: 'n2',
      member: 'web/a',
      status: 'down',
    });
  });

  test.each([
    ['not JSON', '{"kind":'],
    ['JSON null', 'null'],
    ['no data', { kind: 'member.health', node: 'n2' }],
    ['not a change', event({ member: 'web/a', observed: 'down', changed: false })],
    ['member not text', event({ member: 7, observed: 'down', changed: true })],
    ['member too long', event({ member: 'x'.repeat(200), observed: 'down', changed: true })],
    ['status not a status', event({ member: 'web/a', observed: 'sideways', changed: true })],
    ['node not text', event({ member: 'web/a', observed: 'up', changed: true }, ['n2'])],
  ])('%s: ignored', (_name, body) => {
    expect(peerObservation(msg(body))).toBeUndefined();
  });
});

describe('peer health - subscription', () => {
  // NODE_NAME allows dots: `lb1.dc1` publishes member.health on six tokens; `...member.health.*` never saw it.
  test('follows every node of the fleet, a dotted node name too', () => {
    const subjects: string[] = [];
    const link = { subscribe: (s: string) => subjects.push(s) } as unknown as NatsLink;
    followPeerHealth(link, { prefix: 'l4fleet', fleet: 'default', node: 'n1', onObservation: () => undefined });
    expect(subjects).toEqual(['l4fleet.default.member.health.>']);
  });
});
