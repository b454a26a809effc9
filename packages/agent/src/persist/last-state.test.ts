import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, type MemberStatus, parseFleet } from '@l4fleet/config';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { AgentError } from '../errors.js';
import {
  createLastStateFile,
  decodeLastState,
  encodeLastState,
  isStateNotSavable,
  type LastState,
} from './last-state.js';

// The store's decoders as they are, but for a history check a test makes throw what no check should (a bug in it):
// no state file reaches that otherwise, and the file must still be STATE_INVALID, not the bare error.
const storeFaults = vi.hoisted(() => ({ historyThrows: undefined as Error | undefined }));
vi.mock('@l4fleet/store', async (importOriginal) => {
  const real = await importOriginal<typeof import('@l4fleet/store')>();
  return {
    ...real,
    decodePoolHistory: (...args: Parameters<typeof real.decodePoolHistory>) => {
      if (storeFaults.historyThrows) throw storeFaults.historyThrows;
      return real.decodePoolHistory(...args);
    },
  };
});

const identity = { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' };
const NOW = Date.parse('2026-01-10T12:00:00Z');
const DAY_S = 86_400;

function fleetOf(members: number): Fleet {
  return parseFleet({
    hashSeed: 0x5eed,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'none' },
        members: Array.from({ length: members }, (_, i) => ({
          name: `m${i}`,
          address: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`,
          port: 80,
        })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 65_537 }],
  });
}

function stateOf(fleet: Fleet, extra: Partial<LastState> = {}): LastState {
  return {
    fleet,
    revision: 42,
    generation: 'abc-123',
    decided: new Map<string, MemberStatus>([
      ['web/m1', 'down'],
      ['web/m0', 'up'],
    ]),
    drained: false,
    savedAt: NOW - 60_000,
    ...extra,
  };
}

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = (maxAgeS = DAY_S, maxBytes = 1 << 24) =>
  createLastStateFile({ dir: join(dir, 'sub'), identity, maxBytes, maxAgeS, now: () => NOW });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return `${(err as AgentError).code}: ${(err as Error).message}`;
  }
  return 'no error';
}

describe('last state - round trip', () => {
  test.each([
    ['small fleet (inline document)', 3],
    ['large fleet (gzip chunks)', 3_000],
  ])('%s: saved and loaded equal, validated like etcd state', async (_, members) => {
    const f = file();
    const s = stateOf(fleetOf(members), { drained: true });
    const bytes = await f.save(s);
    expect((await stat(f.path)).size).toBe(bytes);
    const back = await f.load();
    expect(back).toEqual(s);
    expect(await readdir(join(dir, 'sub'))).toEqual(['default.n1.state.json']);
  });

  test('no file: undefined (not an error)', async () => {
    expect(await file().load()).toBeUndefined();
  });

  test('a save replaces the file atomically and leaves no temp file', async () => {
    const f = file();
    await f.save(stateOf(fleetOf(3)));
    await f.save(stateOf(fleetOf(4), { revision: 43 }));
    expect((await f.load())?.revision).toBe(43);
    expect(await readdir(join(dir, 'sub'))).toEqual(['default.n1.state.json']);
  });

  test("the first save removes this node's temp files a crash left, and no other file", async () => {
    const sub = join(dir, 'sub');
    await mkdir(sub);
    const left = ['default.n1.state.json.4242.0a1b2c3d.tmp', 'default.n1.state.json.1.ffffffff.tmp'];
    const others = [
      'default.n2.state.json.4242.0a1b2c3d.tmp', // another node's
      'default.n1.state.json.bak', // the operator's
      'other.tmp',
    ];
    for (const n of [...left, ...others]) await writeFile(join(sub, n), 'x');
    await file().save(stateOf(fleetOf(3)));
    expect((await readdir(sub)).sort()).toEqual(['default.n1.state.json', ...others].sort());
  });
});

describe('last state - rejected files', () => {
  test('a changed byte in the body fails the sha256', async () => {
    const f = file();
    await f.save(stateOf(fleetOf(3)));
    const data = await readFile(f.path);
    const i = data.indexOf('"revision":42');
    data.write('"revision":41', i);
    await writeFile(f.path, data);
    expect(await codeOf(f.load())).toMatch(/^STATE_INVALID: .*body sha256 [0-9a-f]+ is not/);
  });

  test('a truncated file is invalid', async () => {
    const f = file();
    await f.save(stateOf(fleetOf(3)));
    const data = await readFile(f.path);
    await writeFile(f.path, data.subarray(0, data.length - 10));
    expect(await codeOf(f.load())).toMatch(/^STATE_INVALID: .*body is \d+ bytes, header says \d+/);
  });

  test('a fleet the parser refuses is invalid with the parser message', async () => {
    const bad = { ...fleetOf(3), vips: [{ ...fleetOf(3).vips[0], pool: 'nope' }] } as Fleet;
    const data = encodeLastState(stateOf(bad), identity);
    expect(() => decodeLastState('x.json', data, identity, { nowMs: NOW, maxAgeMs: 0 })).toThrow(
      /vips\[0\]\.pool: "nope" does not exist/,
    );
  });

  test('a decided value other than up | down is invalid', () => {
    const s = stateOf(fleetOf(3), { decided: new Map([['web/m0', 'maybe' as MemberStatus]]) });
    expect(() =>
      decodeLastState('x.json', encodeLastState(s, identity), identity, { nowMs: NOW, maxAgeMs: 0 }),
    ).toThrow('x.json: decided.web/m0: "maybe" is not up | down');
  });

  test('slow-start ramps come back as saved; a ramp of a member decided down is invalid, naming it', () => {
    const ramps = new Map([['web/m0', { percent: 40, sinceMs: NOW - 5_000 }]]);
    const back = decodeLastState('x.json', encodeLastState(stateOf(fleetOf(3), { ramps }), identity), identity, {
      nowMs: NOW,
      maxAgeMs: 0,
    });
    expect(back.ramps).toEqual(ramps);
    const none = decodeLastState('x.json', encodeLastState(stateOf(fleetOf(3)), identity), identity, {
      nowMs: NOW,
      maxAgeMs: 0,
    });
    expect(none.ramps).toBeUndefined();
    const bad = stateOf(fleetOf(3), { ramps: new Map([['web/m1', { percent: 40, sinceMs: 1 }]]) });
    expect(() =>
      decodeLastState('x.json', encodeLastState(bad, identity), identity, { nowMs: NOW, maxAgeMs: 0 }),
    ).toThrow('x.json: ramps.web/m1: the member is decided "down": it cannot ramp');
  });

  test.each([
    ['node', { ...identity, node: 'n2' }, /node "n1" is not this agent's "n2"/],
    ['fleet', { ...identity, fleet: 'other' }, /fleet "default" is not this agent's "other"/],
    ['etcd prefix', { ...identity, etcdPrefix: '/x' }, /etcdPrefix "\/l4fleet" is not this agent's "\/x"/],
  ])('another %s: stale', (_, other, message) => {
    const data = encodeLastState(stateOf(fleetOf(3)), identity);
    let err: unknown;
    try {
      decodeLastState('x.json', data, other, { nowMs: NOW, maxAgeMs: 0 });
    } catch (e) {
      err = e;
    }
    expect((err as AgentError).code).toBe('STATE_STALE');
    expect((err as Error).message).toMatch(message);
  });

  test('older than maxAgeS: stale; maxAgeS 0: never', async () => {
    await file().save(stateOf(fleetOf(3), { savedAt: NOW - 2 * DAY_S * 1000 }));
    expect(await codeOf(file(DAY_S).load())).toMatch(
      /^STATE_STALE: .*saved 172800 s ago .*older than state.maxAgeS 86400/,
    );
    expect((await file(0).load())?.revision).toBe(42);
  });

  test('saved in the future (past a few minutes of clock skew): stale, whatever maxAgeS', async () => {
    await file().save(stateOf(fleetOf(3), { savedAt: NOW + 60 * 60_000 }));
    const message = /^STATE_STALE: .*saved in the future: 2026-01-10T13:00:00.000Z is 3600 s after now/;
    expect(await codeOf(file(DAY_S).load())).toMatch(message);
    expect(await codeOf(file(0).load())).toMatch(message);
    // Within the tolerance (clocks of a node moving a little): still served.
    await file().save(stateOf(fleetOf(3), { savedAt: NOW + 60_000 }));
    expect((await file(DAY_S).load())?.revision).toBe(42);
  });

  test.each([
    ['null', 'null'],
    ['a list', '[1]'],
    ['number', '7'],
  ])('a body that is %s (with a matching header) is invalid, not a TypeError', (kind, body) => {
    const data = encodeLastState(stateOf(fleetOf(3)), identity);
    const header = JSON.parse(data.subarray(0, data.indexOf(0x0a)).toString('utf8'));
    const b = Buffer.from(body);
    header.bytes = b.length;
    header.sha256 = createHash('sha256').update(b).digest('hex');
    const forged = Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), b]);
    let err: unknown;
    try {
      decodeLastState('x.json', forged, identity, { nowMs: NOW, maxAgeMs: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('STATE_INVALID');
    expect((err as Error).message).toBe(`x.json: body is ${kind}, not an object`);
  });

  // show() stringified the whole value: a field nested thousands deep threw RangeError ("Maximum call stack size
  // exceeded", no code, no field) and lastStateIgnored logged code undefined.
  test.each([
    ['revision', '"revision":42', 'revision [[['],
    ['drained', '"drained":false', 'drained [[['],
    ['a decided value', '"web/m0":"up"', 'decided.web/m0: [[['],
    ['a ramp', '"decided":{', 'ramps.web/m0: [[['],
    ['a history record', '"decided":{', 'history.web: [[['],
  ])('%s nested 20,000 deep: STATE_INVALID naming the field', (what, from, message) => {
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const data = encodeLastState(stateOf(fleetOf(3)), identity);
    const header = JSON.parse(data.subarray(0, data.indexOf(0x0a)).toString('utf8'));
    const body = data.subarray(data.indexOf(0x0a) + 1).toString('utf8');
    expect(body).toContain(from);
    const to =
      what === 'a ramp'
        ? `"ramps":{"web/m0":${deep}},${from}`
        : what === 'a history record'
          ? `"history":{"web":${deep}},${from}`
          : `${from.slice(0, from.lastIndexOf(':') + 1)}${deep}`;
    const b = Buffer.from(body.replace(from, to));
    header.bytes = b.length;
    header.sha256 = createHash('sha256').update(b).digest('hex');
    const forged = Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), b]);
    let err: unknown;
    try {
      decodeLastState('x.json', forged, identity, { nowMs: NOW, maxAgeMs: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('STATE_INVALID');
    expect((err as Error).message).toContain(`x.json: ${message}`);
    expect((err as Error).message.length).toBeLessThan(300);
  });

  // The catch-all after the typed errors: anything else a check throws is still a file that does not read, reported
  // as such (lastStateIgnored logs its code and the file), its first line kept and bounded, the error its cause.
  test('a check throwing an untyped error (RangeError) is STATE_INVALID naming the file, the error as its cause', () => {
    const data = encodeLastState(stateOf(fleetOf(3)), identity);
    const header = JSON.parse(data.subarray(0, data.indexOf(0x0a)).toString('utf8'));
    const body = data.subarray(data.indexOf(0x0a) + 1).toString('utf8');
    expect(body).toContain('"decided":{');
    const b = Buffer.from(body.replace('"decided":{', '"history":{"web":"{}"},"decided":{'));
    header.bytes = b.length;
    header.sha256 = createHash('sha256').update(b).digest('hex');
    const forged = Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), b]);
    const thrown = new RangeError(`Maximum call stack size exceeded\n${'x'.repeat(500)}`);
    storeFaults.historyThrows = thrown;
    let err: unknown;
    try {
      decodeLastState('x.json', forged, identity, { nowMs: NOW, maxAgeMs: 0 });
    } catch (e) {
      err = e;
    } finally {
      storeFaults.historyThrows = undefined;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('STATE_INVALID');
    expect((err as Error).message).toBe(
      'x.json: body cannot be checked (RangeError: Maximum call stack size exceeded)',
    );
    expect((err as Error).cause).toBe(thrown);
  });

  test('bounded size: a file over maxBytes is neither written nor read', async () => {
    const big = stateOf(fleetOf(3_000));
    const size = encodeLastState(big, identity).length;
    await file().save(stateOf(fleetOf(3)));
    expect(await codeOf(file(DAY_S, size - 1).save(big))).toMatch(
      /^STATE_SAVE_FAILED: .* bytes is over state.maxBytes/,
    );
    // The same inputs would fail again: the keeper waits for new ones instead of retrying.
    expect(
      isStateNotSavable(
        await file(DAY_S, size - 1)
          .save(big)
          .catch((e: unknown) => e),
      ),
    ).toBe(true);
    expect((await file().load())?.fleet.pools[0]?.members.length).toBe(3); // the old file stays
    await file().save(big);
    expect(await codeOf(file(DAY_S, size - 1).load())).toMatch(/^STATE_INVALID: .* bytes is over state.maxBytes/);
  });

  test('a directory that cannot be created: STATE_SAVE_FAILED naming the path', async () => {
    await writeFile(join(dir, 'sub'), 'not a directory');
    expect(await codeOf(file().save(stateOf(fleetOf(3))))).toMatch(
      /^STATE_SAVE_FAILED: .*sub\/default\.n1\.state\.json/,
    );
  });
});
