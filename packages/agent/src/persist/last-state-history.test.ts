import { createHash } from 'node:crypto';
import { type Fleet, type PoolHistory, parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { decodeLastState, encodeLastState, type LastState } from './last-state.js';

const identity = { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' };
const NOW = Date.parse('2026-01-10T12:00:00Z');
const fleet: Fleet = parseFleet({
  hashSeed: 0x5eed,
  pools: [{ name: 'web', forwarding: 'gue', members: [{ name: 'a', address: '198.18.0.1', port: 80 }] }],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
});
const history: PoolHistory = {
  pool: 'web',
  current: [{ name: 'a', address: '198.18.0.1', port: 80, weight: 1 }],
  earlier: [{ untilMs: NOW - 5_000, members: [{ name: 'b', address: '198.18.0.2', port: 80, weight: 1 }] }],
};
const state = (extra: Partial<LastState> = {}): LastState => ({
  fleet,
  revision: 7,
  generation: 'g',
  decided: new Map(),
  drained: false,
  savedAt: NOW - 1_000,
  ...extra,
});
const decode = (data: Buffer) => decodeLastState('x.json', data, identity, { nowMs: NOW, maxAgeMs: 86_400_000 });

/** The file with its body rewritten by `edit` (header length and sha256 recomputed, as a careful forger would). */
function forged(edit: (body: Record<string, unknown>) => void): Buffer {
  const data = encodeLastState(state({ history: new Map([['web', history]]) }), identity);
  const nl = data.indexOf(0x0a);
  const header = JSON.parse(data.subarray(0, nl).toString()) as Record<string, unknown>;
  const body = JSON.parse(data.subarray(nl + 1).toString()) as Record<string, unknown>;
  edit(body);
  const b = Buffer.from(JSON.stringify(body));
  header.bytes = b.length;
  header.sha256 = createHash('sha256').update(b).digest('hex');
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), b]);
}

describe('last state - table history (second chance)', () => {
  test('the history round-trips, so a node restored from the file derives the previous owners etcd gave it', () => {
    const back = decode(encodeLastState(state({ history: new Map([['web', history]]) }), identity));
    expect(back.history).toEqual(new Map([['web', history]]));
  });

  test('a file of an earlier version (no history) restores with none', () => {
    expect(decode(forged((b) => delete b.history)).history).toBeUndefined();
  });

  test('a history record the store would refuse is refused in the file too, naming file, key, field and value', () => {
    const bad = forged((b) => {
      b.history = { web: JSON.stringify({ pool: 'web', current: [['a', '198.18.0.1', 80, -3]], earlier: [] }) };
    });
    let err: unknown;
    try {
      decode(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('STATE_INVALID');
    expect((err as Error).message).toContain('x.json: history/web: current[0].weight: -3 is not a weight');
  });
});
