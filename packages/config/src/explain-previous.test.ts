import { describe, expect, test } from 'vitest';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import { secondChanceOf } from './second-chance.js';
import { tableInputsOf } from './table.js';
import { type PoolHistory, recordPoolTable } from './table-history.js';
import type { Fleet } from './types.js';

const fleetOf = (names: readonly string[], forwarding = 'gue', protocol = 'tcp'): Fleet =>
  parseFleet({
    hashSeed: 0x5eed,
    pools: [
      {
        name: 'web',
        forwarding,
        members: names.map((name, i) => ({ name, address: `198.18.0.${21 + i}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol, pool: 'web', tableSize: 251 }],
  });
const to = (sport: number, protocol: 'tcp' | 'udp' = 'tcp') => ({
  src: '198.18.1.7',
  sport,
  dst: '198.51.100.10',
  dport: 80,
  protocol,
});

describe('explainFlow - second chance', () => {
  const before = fleetOf(['a', 'b', 'c']);
  const after = fleetOf(['a', 'b']);
  const record = (f: Fleet, h: PoolHistory | undefined, nowMs: number) => {
    const pool = f.pools[0]!;
    return recordPoolTable(h, 'web', tableInputsOf(pool, new Map()), secondChanceOf(pool), nowMs);
  };
  const history = new Map([['web', record(after, record(before, undefined, 1_000), 2_000)]]);

  test('a flow on a slot that moved names both owners; the removed one is said to be removed', () => {
    const flows = Array.from({ length: 2_000 }, (_v, i) => explainFlow(after, new Map(), to(1_024 + i), history));
    const moved = flows.find((r) => r.previousBackend === 'c');
    expect(moved).toBeDefined();
    expect(moved).toMatchObject({ previousAddress: '198.18.0.23:80' });
    expect(['a', 'b']).toContain(moved!.backend);
    expect(moved!.why.at(-1)).toMatch(new RegExp(`slot ${moved!.slot} belonged to c \\(removed since\\) before`));
    // The same flow without the history: no previous owner, and the same current owner.
    const plain = explainFlow(after, new Map(), to(Number(moved!.flow.split(':')[1]!.split(' ')[0])));
    expect(plain).toMatchObject({ backend: moved!.backend, previousBackend: null, previousAddress: null });
    expect(flows.some((r) => r.previousBackend === null)).toBe(true);
  });

  // The node names a previous owner only in GUE private data, and only for TCP (0011 "UDP"; node-core.h).
  test.each([
    ['an ipip pool', 'ipip', 'tcp'],
    ['a gre pool', 'gre', 'tcp'],
    ['a UDP VIP of a gue pool', 'gue', 'udp'],
  ] as const)('%s: no previous owner (the node carries none), and the why says so', (_what, forwarding, protocol) => {
    const b = fleetOf(['a', 'b', 'c'], forwarding, protocol);
    const a = fleetOf(['a', 'b'], forwarding, protocol);
    const h = new Map([['web', record(a, record(b, undefined, 1_000), 2_000)]]);
    const flows = Array.from({ length: 2_000 }, (_v, i) => explainFlow(a, new Map(), to(1_024 + i, protocol), h));
    expect(flows.every((r) => r.previousBackend === null && r.previousAddress === null)).toBe(true);
    const moved = flows.find((r) => r.why.some((w) => w.includes('belonged to c')));
    expect(moved?.why.at(-1)).toMatch(/not carried: second chance is for gue pools and TCP/);
  });
});
