import { NO_BACKEND } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { ConfigError } from './errors.js';
import { parseFleet } from './parse.js';
import { DEFAULT_SECOND_CHANCE_RETAIN_S, secondChanceOf } from './second-chance.js';
import { buildVipTable, type DecidedStatus, tableInputsOf } from './table.js';
import { type PoolHistory, recordPoolTable, type TableHistory } from './table-history.js';
import type { Fleet } from './types.js';

const SIZE = 251;
const member = (i: number) => ({ address: `198.18.0.${i}`, port: 80 });
const fleetOf = (members: object[], pool: object = {}): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', forwarding: 'gue', members, ...pool }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: SIZE }],
  });
const up: DecidedStatus = new Map();
const T0 = 1_000_000;

/** What the aggregator would write: the history after each fleet in turn, `stepMs` apart. */
function writerHistory(steps: readonly { fleet: Fleet; decided?: DecidedStatus }[], stepMs = 1_000): PoolHistory {
  let h: PoolHistory | undefined;
  steps.forEach(({ fleet, decided }, i) => {
    const pool = fleet.pools[0]!;
    h = recordPoolTable(h, pool.name, tableInputsOf(pool, decided ?? up), secondChanceOf(pool), T0 + i * stepMs);
  });
  return h as PoolHistory;
}
/** The history as another node reads it back: through JSON, as from etcd. */
const viaJson = (h: PoolHistory): TableHistory => new Map([[h.pool, JSON.parse(JSON.stringify(h)) as PoolHistory]]);
const name = (t: ReturnType<typeof buildVipTable>, i: number) => (i === NO_BACKEND ? '-' : t.backends[i]!.name);

describe('second chance - previous owners', () => {
  const four = fleetOf([1, 2, 3, 4].map(member));
  const five = fleetOf([1, 2, 3, 4, 5].map(member));

  test('a backend added: every moved slot names its earlier owner, the others none; two nodes agree', () => {
    const h = writerHistory([{ fleet: four }, { fleet: five }]);
    const before = buildVipTable(four, four.vips[0]!, up);
    const a = buildVipTable(five, five.vips[0]!, up, viaJson(h));
    const b = buildVipTable(five, five.vips[0]!, up, viaJson(h));
    expect(a.previousSlots).toBeDefined();
    expect([...b.previousSlots!]).toEqual([...a.previousSlots!]);
    expect(b.checksum).toBe(a.checksum);
    let moved = 0;
    for (let s = 0; s < SIZE; s++) {
      const now = name(a, a.slots[s]!);
      const then = name(before, before.slots[s]!);
      expect(name(a, a.previousSlots![s]!)).toBe(now === then ? '-' : then);
      if (now !== then) moved += 1;
    }
    expect(moved).toBeGreaterThan(SIZE / 10);
    // The checksum covers the previous owners: the same table without history differs.
    expect(a.checksum).not.toBe(buildVipTable(five, five.vips[0]!, up).checksum);
  });

  test('a node ahead of the writer (the change not recorded yet) derives what it derives after the write', () => {
    const recordedBefore = writerHistory([{ fleet: four }]);
    const recordedAfter = writerHistory([{ fleet: four }, { fleet: five }]);
    const ahead = buildVipTable(five, five.vips[0]!, up, viaJson(recordedBefore));
    const caughtUp = buildVipTable(five, five.vips[0]!, up, viaJson(recordedAfter));
    expect([...ahead.previousSlots!]).toEqual([...caughtUp.previousSlots!]);
    expect(ahead.checksum).toBe(caughtUp.checksum);
  });

  test('a removed backend as previous owner is carried after the current index space, with its endpoint', () => {
    const three = fleetOf([1, 2, 3].map(member));
    const t = buildVipTable(three, three.vips[0]!, up, viaJson(writerHistory([{ fleet: four }, { fleet: three }])));
    expect(t.backends.map((m) => m.name)).toEqual(['198.18.0.1:80', '198.18.0.2:80', '198.18.0.3:80', '198.18.0.4:80']);
    expect(t.backends[3]).toMatchObject({ address: '198.18.0.4', port: 80, weight: 0, state: 'disabled' });
    const before = buildVipTable(four, four.vips[0]!, up);
    for (let s = 0; s < SIZE; s++) {
      if (name(before, before.slots[s]!) === '198.18.0.4:80') expect(t.previousSlots![s]).toBe(3);
      expect(t.slots[s]).not.toBe(3);
    }
  });

  test('a failed backend (decided down) as previous owner stays in the index space with weight 0', () => {
    const down: DecidedStatus = new Map([['web/198.18.0.2:80', 'down']]);
    const h = writerHistory([{ fleet: four }, { fleet: four, decided: down }]);
    const t = buildVipTable(four, four.vips[0]!, down, viaJson(h));
    expect(t.backends).toHaveLength(4);
    const owned = [...t.previousSlots!].filter((i) => i === 1).length;
    expect(owned).toBe([...buildVipTable(four, four.vips[0]!, up).slots].filter((i) => i === 1).length);
    expect([...t.slots].includes(1)).toBe(false);
  });

  test('two changes: a slot keeps the owner before its own last move, not only the last change', () => {
    const six = fleetOf([1, 2, 3, 4, 5, 6].map(member));
    const h = writerHistory([{ fleet: four }, { fleet: five }, { fleet: six }]);
    const t = buildVipTable(six, six.vips[0]!, up, viaJson(h));
    const t4 = buildVipTable(four, four.vips[0]!, up);
    const t5 = buildVipTable(five, five.vips[0]!, up);
    for (let s = 0; s < SIZE; s++) {
      const now = name(t, t.slots[s]!);
      const want = name(t5, t5.slots[s]!) !== now ? name(t5, t5.slots[s]!) : name(t4, t4.slots[s]!);
      expect(name(t, t.previousSlots![s]!)).toBe(want === now ? '-' : want);
    }
  });

  test('expiry: an earlier table older than retainS is dropped and the table is the one without history', () => {
    const retain = fleetOf([1, 2, 3, 4, 5].map(member), { secondChance: { retainS: 10 } });
    const pool = retain.pools[0]!;
    let h = writerHistory([{ fleet: four }, { fleet: retain }]);
    h = recordPoolTable(h, 'web', tableInputsOf(pool, up), secondChanceOf(pool), T0 + 1_000 + 9_999);
    expect(h.earlier).toHaveLength(1);
    h = recordPoolTable(h, 'web', tableInputsOf(pool, up), secondChanceOf(pool), T0 + 1_000 + 10_000);
    expect(h.earlier).toHaveLength(0);
    const t = buildVipTable(retain, retain.vips[0]!, up, viaJson(h));
    expect(t.previousSlots).toBeUndefined();
    expect(t.checksum).toBe(buildVipTable(retain, retain.vips[0]!, up).checksum);
  });

  test('the writer records nothing new for unchanged inputs (same object: no etcd write)', () => {
    const h = writerHistory([{ fleet: four }, { fleet: five }]);
    const pool = five.pools[0]!;
    expect(recordPoolTable(h, 'web', tableInputsOf(pool, up), secondChanceOf(pool), T0 + 5_000)).toBe(h);
  });

  test('a table too small to also hold the carried members gets no previous owners (backends stay below size)', () => {
    const tiny = (ids: number[]) =>
      parseFleet({
        hashSeed: 7,
        pools: [{ name: 'web', forwarding: 'gue', members: ids.map(member) }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 7 }],
      });
    const [before, after] = [tiny([1, 2, 3, 4, 5, 6]), tiny([2, 3, 4, 5, 6, 7])];
    const t = buildVipTable(after, after.vips[0]!, up, viaJson(writerHistory([{ fleet: before }, { fleet: after }])));
    expect(t.backends).toHaveLength(6);
    expect(t.previousSlots).toBeUndefined();
  });

  test.each([
    ['l2 forwarding', { forwarding: 'l2' }],
    ['second chance disabled', { secondChance: { enabled: false } }],
  ])('%s: no previous owners', (_why, poolFields) => {
    const f = fleetOf([1, 2, 3, 4, 5].map(member), poolFields);
    const t = buildVipTable(f, f.vips[0]!, up, viaJson(writerHistory([{ fleet: four }, { fleet: five }])));
    expect(t.previousSlots).toBeUndefined();
  });
});

describe('second chance - fleet file setting', () => {
  test('default: enabled, retained one hour', () => {
    expect(fleetOf([member(1)]).pools[0]!.secondChance).toEqual({ enabled: true, retainS: 3_600 });
    expect(DEFAULT_SECOND_CHANCE_RETAIN_S).toBe(3_600);
  });

  test.each([
    [{ retainS: 0 }, 'pools[0].secondChance.retainS: 0 is not a retention in seconds (1-604800)'],
    [{ retainS: 1.5 }, 'pools[0].secondChance.retainS: 1.5 is not a retention in seconds (1-604800)'],
    [{ enabled: 'yes' }, 'pools[0].secondChance.enabled: "yes" is not true or false'],
    [{ retain: 5 }, 'pools[0].secondChance.retain: is not a known field (known: enabled, retainS)'],
    // A string is described by its kind: in agent.yaml the same check meets `nats: "token ..."` (fields.ts showKind).
    ['on', 'pools[0].secondChance: a string is not an object'],
  ])('%j is refused naming the field and value', (secondChance, message) => {
    let err: unknown;
    try {
      fleetOf([member(1)], { secondChance });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
  });

  test('apply sees a changed setting (diffFleets names it), not "no changes"', () => {
    const before = fleetOf([member(1)]);
    const after = fleetOf([member(1)], { secondChance: { retainS: 60 } });
    expect(diffFleets(before, after).changes).toContainEqual({
      kind: 'changed',
      subject: 'pool web',
      detail: 'secondChance {"enabled":true,"retainS":3600} -> {"enabled":true,"retainS":60}',
    });
  });

  test('a parsed fleet parses again to the same setting', () => {
    const f = fleetOf([member(1)], { secondChance: { enabled: false, retainS: 60 } });
    expect(parseFleet(JSON.parse(JSON.stringify(f))).pools[0]!.secondChance).toEqual({ enabled: false, retainS: 60 });
  });
});

describe('second chance - previous owners the data plane can reach', () => {
  const fleetAt = (vip: string, port: number, members: string[]): Fleet =>
    parseFleet({
      hashSeed: 7,
      pools: [{ name: 'web', forwarding: 'gue', members: members.map((address) => ({ address, port })) }],
      vips: [{ address: vip, port, protocol: 'tcp', pool: 'web', tableSize: SIZE }],
    });
  const v4 = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4'];

  // Direct server return does not rewrite ports and a packet has one family: the bpf data plane refuses a backend
  // on another port or family (validateDesired), so carrying one would make every node refuse every new state.
  test.each([
    ['the VIP and its members move from port 80 to 8080', fleetAt('198.51.100.10', 8080, v4)],
    [
      'the VIP and its members move from IPv4 to IPv6',
      fleetAt(
        '2001:db8::10',
        80,
        v4.map((_, i) => `2001:db8::${i + 1}`),
      ),
    ],
  ])('%s: the old members are not carried', (_why, after) => {
    const before = fleetAt('198.51.100.10', 80, v4);
    const t = buildVipTable(after, after.vips[0]!, up, viaJson(writerHistory([{ fleet: before }, { fleet: after }])));
    const vip = after.vips[0]!;
    for (const b of t.backends) {
      expect(b.port).toBe(vip.port);
      expect(b.address.includes(':')).toBe(vip.address.includes(':'));
    }
    expect(t.backends).toHaveLength(4);
    expect(t.previousSlots).toBeUndefined();
    expect(t.checksum).toBe(buildVipTable(after, vip, up).checksum);
  });

  test("a removed member on the VIP's port and family is still carried", () => {
    const before = fleetAt('198.51.100.10', 80, v4);
    const mixed = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          forwarding: 'gue',
          members: [
            { address: '198.18.0.1', port: 80 },
            { address: '198.18.0.2', port: 80 },
            { address: '198.18.0.3', port: 80 },
          ],
        },
      ],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: SIZE }],
    });
    const t = buildVipTable(mixed, mixed.vips[0]!, up, viaJson(writerHistory([{ fleet: before }, { fleet: mixed }])));
    expect(t.backends.map((b) => b.name)).toContain('198.18.0.4:80');
  });
});
