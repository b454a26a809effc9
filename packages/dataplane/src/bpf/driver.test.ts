import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTable } from '@l4fleet/maglev';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  ADDR_KEY_BYTES,
  addressText,
  BACKEND_BYTES,
  CONFIG_BYTES,
  decodeDump,
  encodeVipKey,
  MapId,
  VIP_BYTES,
  VIP_KEY_BYTES,
} from './codec.js';
import { type BpfDataPlane, createBpfDataPlane } from './driver.js';
import { Op } from './loader.js';

// No bpffs in a unit test: the driver's mount check is replaced; the loader is a script speaking its protocol.
vi.mock('./bpffs.js', () => ({ ensureBpffs: async () => false, isBpffs: () => true }));

/** An OP_DUMP reply of empty maps (maps.c dump()): no VIPs, addresses, backends, config or tables. */
const EMPTY_DUMP = Buffer.alloc(4 + 4 + 4 + 4 + 24 + 4);

/**
 * A stand-in for l4fleet-bpf: answers the start and every request with status 0, but op 9 (remove) with
 * FAKE_REMOVE_STATUS (19, ENODEV: what the real loader answered for an interface deleted under it), and op 6 (dump)
 * with FAKE_DUMP until a remove succeeded or the file FAKE_DUMP_PIN (a pin the driver removes to make that map
 * anew) is gone, then with empty maps, op 7 (stats) with all counters zero
 * and op 10 (prog-info) with zeros. Appends its pid to FAKE_DIR/pids, each op to FAKE_DIR/ops, and each request it
 * ran (op and payload in hex) to FAKE_DIR/done. It refuses op FAKE_FAIL_ON_OP (status 5, EIO) and, as the loader
 * does (OP_CHAINED), runs no request of the same send after a refused one.
 */
const FAKE_LOADER = `#!/usr/bin/env node
const fs = require('node:fs');
const dir = process.env.FAKE_DIR;
fs.appendFileSync(dir + '/pids', process.pid + '\\n');
const reply = (status, body) => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(status, 0);
  h.writeUInt32LE(body.length, 4);
  process.stdout.write(Buffer.concat([h, body]));
};
const starts = (process.env.FAKE_STARTS || 'attached 7 object chain').split('|');
const nth = fs.readFileSync(dir + '/pids', 'utf8').trim().split('\\n').length - 1;
reply(0, Buffer.from(starts[Math.min(nth, starts.length - 1)]));
let buf = Buffer.alloc(0);
let chainFailed = false;
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32LE(4)) {
    const chained = (buf.readUInt32LE(0) & 0x80000000) !== 0;
    const op = buf.readUInt32LE(0) & 0x7fffffff;
    const payload = buf.subarray(8, 8 + buf.readUInt32LE(4));
    buf = buf.subarray(8 + buf.readUInt32LE(4));
    fs.appendFileSync(dir + '/ops', op + '\\n');
    if (!chained) chainFailed = false;
    else if (chainFailed) {
      reply(125, Buffer.from('not run: an earlier request of this apply failed'));
      continue;
    }
    if (op === Number(process.env.FAKE_FAIL_ON_OP)) {
      chainFailed = true;
      reply(5, Buffer.from('Input/output error'));
      continue;
    }
    fs.appendFileSync(dir + '/done', op + ' ' + payload.toString('hex') + '\\n');
    const removeStatus = Number(process.env.FAKE_REMOVE_STATUS ?? 0);
    if (op === 9 && removeStatus !== 0) reply(removeStatus, Buffer.from('detaching from ifindex 5: No such device'));
    else if (op === 9) {
      fs.writeFileSync(dir + '/removed', '');
      reply(0, Buffer.alloc(0));
    } else if (op === 6) {
      const pin = process.env.FAKE_DUMP_PIN;
      const wiped = fs.existsSync(dir + '/removed') || !process.env.FAKE_DUMP || (!!pin && !fs.existsSync(pin));
      reply(0, Buffer.from(wiped ? '${EMPTY_DUMP.toString('hex')}' : process.env.FAKE_DUMP, 'hex'));
    } else if (op === 7) reply(0, Buffer.alloc(20)); // stats: no VIP, backend or stat counters, no flows
    else if (op === 10) reply(0, Buffer.alloc(20)); // prog-info: program 0, no run figures
    else reply(0, Buffer.alloc(0));
  }
});
process.stdin.on('end', () => process.exit(0));
`;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let dir: string | undefined;

/** A driver over the fake loader in a fresh directory; `env`: the fake's FAKE_* settings. */
function fakeDriver(env: Record<string, string> = {}): BpfDataPlane {
  dir = mkdtempSync(join(tmpdir(), 'l4f-driver-'));
  const loaderPath = join(dir, 'l4fleet-bpf');
  const objectPath = join(dir, 'node.bpf.o');
  writeFileSync(loaderPath, FAKE_LOADER);
  chmodSync(loaderPath, 0o755);
  writeFileSync(objectPath, '');
  vi.stubEnv('FAKE_DIR', dir);
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  return createBpfDataPlane({
    interface: 'gone0',
    bpffsPath: join(dir, 'bpffs'),
    loaderPath,
    objectPath,
    logger: pino({ level: 'silent' }),
  });
}

/** The lines the fake wrote to `name`; none when it never did (no loader started). */
const lines = (name: string): string[] =>
  existsSync(join(dir as string, name))
    ? readFileSync(join(dir as string, name), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];
const pids = (): number[] => lines('pids').map(Number);

/** Key and value bytes of each map an OP_UPDATE / OP_DELETE names (codec.ts MapId; source ranges not modelled). */
const ELEMENT_BYTES: Record<number, [key: number, value: number]> = {
  [MapId.vips]: [VIP_KEY_BYTES, VIP_BYTES],
  [MapId.vipAddrs]: [ADDR_KEY_BYTES, 4],
  [MapId.backends]: [4, BACKEND_BYTES],
  [MapId.config]: [4, CONFIG_BYTES],
};

/**
 * What the pinned maps hold after the requests the fakes ran (FAKE_DIR/done), in the loader's OP_DUMP layout (maps.c
 * dump()): given as FAKE_DUMP to the next loader, it reads back what the last one wrote, as the real pins would.
 */
function pinnedDump(): Buffer {
  const maps = new Map<number, Map<string, Buffer>>(Object.keys(ELEMENT_BYTES).map((m) => [Number(m), new Map()]));
  const tables = new Map<number, Uint32Array>();
  for (const line of lines('done')) {
    const [opText, hex] = line.split(' ') as [string, string];
    const op = Number(opText);
    const p = Buffer.from(hex, 'hex');
    if (op === Op.update || op === Op.delete) {
      const map = p.readUInt32LE(0);
      const [k, v] = ELEMENT_BYTES[map] ?? [];
      if (k === undefined || v === undefined) throw new Error(`map ${map} is not modelled by pinnedDump`);
      const size = op === Op.update ? k + v : k;
      for (let i = 0, at = 8; i < p.readUInt32LE(4); i++, at += size) {
        const key = p.toString('hex', at, at + k);
        if (op === Op.update) maps.get(map)?.set(key, p.subarray(at, at + size));
        else maps.get(map)?.delete(key);
      }
    } else if (op === Op.tableCreate) {
      tables.set(
        p.readUInt32LE(0),
        new Uint32Array(p.readUInt32LE(4)).map((_, s) => p.readUInt32LE(8 + 4 * s)),
      );
    } else if (op === Op.tableWrite) {
      const table = tables.get(p.readUInt32LE(0)) as Uint32Array;
      const n = p.readUInt32LE(4);
      for (let i = 0; i < n; i++) table[p.readUInt32LE(8 + 4 * i)] = p.readUInt32LE(8 + 4 * (n + i));
    } else if (op === Op.tableDelete) tables.delete(p.readUInt32LE(0));
    else if (op === Op.remove) {
      for (const m of maps.values()) m.clear();
      tables.clear();
    } else if (op === Op.tablePrev) throw new Error('previous owners are not modelled by pinnedDump');
  }
  const u32 = (...v: number[]): Buffer => Buffer.from(Uint32Array.from(v).buffer);
  const entries = (map: number): Buffer[] => {
    const m = maps.get(map) as Map<string, Buffer>;
    return [u32(m.size), ...m.values()];
  };
  const config = maps.get(MapId.config)?.values().next().value?.subarray(4);
  return Buffer.concat([
    ...entries(MapId.vips),
    ...entries(MapId.vipAddrs),
    ...entries(MapId.backends),
    u32(config ? 1 : 0),
    config ?? Buffer.alloc(CONFIG_BYTES),
    u32(tables.size),
    ...[...tables].flatMap(([idx, t]) => [u32(idx, t.length), Buffer.from(t.buffer)]),
  ]);
}

afterEach(() => {
  vi.unstubAllEnvs();
  if (dir) {
    for (const pid of pids()) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  dir = undefined;
});

describe('bpf driver - close', () => {
  test('a remove the loader refuses still ends the loader, and close reports the failure', async () => {
    const dp = fakeDriver({ FAKE_REMOVE_STATUS: '19' });
    await expect(dp.close({ removeState: true })).rejects.toThrow(/remove: detaching from ifindex 5: No such device/);
    expect(pids().filter(alive)).toEqual([]);
  });
});

describe('bpf driver - unreadable state', () => {
  /** A dump whose one VIP has id 5000 (past l4f_tables): BPF_STATE_UNREADABLE naming l4f_vips. */
  function badVipDump(): string {
    const key = encodeVipKey({ family: 4, addressHex: 'c6336428', port: 80, protocol: 'tcp' });
    const value = Buffer.alloc(VIP_BYTES);
    value.writeUInt32LE(5000, 0);
    value.writeUInt32LE(10_000, 4);
    value.writeUInt32LE(251, 8);
    const one = Buffer.alloc(4);
    one.writeUInt32LE(1);
    return Buffer.concat([one, key, value, EMPTY_DUMP.subarray(4)]).toString('hex');
  }
  const backends = [0, 1, 2].map((i) => ({ name: `b${i}`, address: `198.18.90.${10 + i}`, port: 80 }));
  const table = {
    vip: { address: '198.51.100.40', port: 80, protocol: 'tcp' as const },
    hash: '5-tuple' as const,
    seed: 7,
    backends,
    slots: buildTable(backends, 251),
  };

  test('a dump holding a value this driver never writes (VIP id 5000) makes l4f_vips anew alone: its pin removed, no remove of every pin, the apply goes on over the next loader', async () => {
    const dp = fakeDriver({ FAKE_DUMP: badVipDump() });
    const pin = join(dir as string, 'bpffs', 'l4fleet', 'l4f_vips');
    mkdirSync(join(dir as string, 'bpffs', 'l4fleet'), { recursive: true });
    writeFileSync(pin, '');
    vi.stubEnv('FAKE_DUMP_PIN', pin);
    const r = await dp.apply([table]);
    expect(r.vips).toEqual([{ vip: '198.51.100.40:80/tcp', action: 'added', slotsChanged: 251, rulesReplaced: false }]);
    // Before (every pin removed): dump, remove, dump.
    expect(lines('ops').slice(0, 2).map(Number)).toEqual([Op.dump, Op.dump]);
    expect(lines('ops').map(Number)).not.toContain(Op.remove);
    expect(existsSync(pin)).toBe(false);
    expect(pids()).toHaveLength(2);
    await dp.close();
  });

  test('a map still unreadable after it was made anew is wiped (every pin removed) and the apply starts over on empty maps, instead of every apply failing', async () => {
    const dp = fakeDriver({ FAKE_DUMP: badVipDump() }); // the stand-in's dump stays bad until a remove
    const r = await dp.apply([table]);
    expect(r.vips).toEqual([{ vip: '198.51.100.40:80/tcp', action: 'added', slotsChanged: 251, rulesReplaced: false }]);
    // The first loader's dump; l4f_vips made anew: the second's dump, its remove; the third's dump (empty maps).
    expect(lines('ops').slice(0, 4).map(Number)).toEqual([Op.dump, Op.dump, Op.remove, Op.dump]);
    expect(lines('ops').map(Number)).toContain(Op.tableCreate);
    const [first, second, third] = pids();
    expect(first !== undefined && alive(first)).toBe(false);
    expect(second !== undefined && alive(second)).toBe(false);
    expect(third !== undefined && alive(third)).toBe(true);
    await dp.close();
  });
});

describe('bpf driver - counters before any apply', () => {
  // A loader whose read-back failed is dropped: kept, every later counters() would ask the same broken loader again
  // (c97823e), and /metrics would say counters_up 0 until an apply, which on a steady fleet may never come.
  test('a counters() whose read-back of the maps fails drops that loader: the next counters() starts a new one and answers', async () => {
    const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(Op.dump) });
    await expect(dp.counters()).rejects.toMatchObject({ name: 'DataPlaneError' });
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    await expect(dp.counters()).resolves.toMatchObject({ vips: [] });
    const [first, second] = pids();
    expect(first !== undefined && alive(first)).toBe(false);
    expect(second !== undefined && alive(second)).toBe(true);
    await dp.close();
  });
});

describe('bpf driver - forwarding', () => {
  test('a nat VIP is refused before the loader starts, naming the bpf data plane (in a mixed fleet, which nodes refuse)', async () => {
    const dp = fakeDriver();
    const backends = [{ name: 'b0', address: '198.18.90.10', port: 8080 }];
    const nat = {
      vip: { address: '198.51.100.41', port: 80, protocol: 'tcp' as const },
      hash: '5-tuple' as const,
      seed: 7,
      forwarding: 'nat' as const,
      backends,
      slots: buildTable(backends, 251),
    };
    await expect(dp.apply([nat])).rejects.toMatchObject({
      code: 'FORWARDING_UNSUPPORTED',
      message: expect.stringContaining('forwarding "nat" is not supported by the bpf data plane'),
    });
    expect(pids()).toEqual([]);
    await dp.close();
  });
});

describe('bpf driver - a loader that died', () => {
  const backends = [0, 1, 2].map((i) => ({ name: `b${i}`, address: `198.18.90.${10 + i}`, port: 80 }));
  const desired = [
    {
      vip: { address: '198.51.100.42', port: 80, protocol: 'tcp' as const },
      hash: '5-tuple' as const,
      seed: 7,
      backends,
      slots: buildTable(backends, 251),
    },
  ];
  /** Kills the driver's only loader (as the OOM killer would) and waits until it is reaped. */
  async function killLoader(): Promise<void> {
    const [pid] = pids();
    process.kill(pid as number, 'SIGKILL');
    await vi.waitFor(() => expect(alive(pid as number)).toBe(false), { timeout: 5_000, interval: 10 });
  }

  test('an apply with nothing to send starts a new loader, instead of reporting success over a dead one', async () => {
    const dp = fakeDriver();
    await dp.apply(desired);
    await killLoader();
    await dp.apply(desired);
    expect(pids()).toHaveLength(2);
    expect(alive(pids()[1] as number)).toBe(true);
    // The new loader read the maps again (its own dump) and the apply wrote what they lacked.
    expect(
      lines('ops')
        .map(Number)
        .filter((op) => op === Op.dump),
    ).toHaveLength(2);
    await dp.close();
  });

  test('counters after the loader died start a new loader, instead of failing at every scrape', async () => {
    const dp = fakeDriver();
    await dp.apply(desired);
    await killLoader();
    await expect(dp.counters()).resolves.toMatchObject({ flowTable: { entries: 0 } });
    expect(pids()).toHaveLength(2);
    await dp.close();
  });

  test.each([
    ['counters', Op.stats, (dp: BpfDataPlane) => dp.counters()],
    ['clearFlows', Op.flowsClear, (dp: BpfDataPlane) => dp.clearFlows()],
    ['programStats', Op.progInfo, (dp: BpfDataPlane) => dp.programStats()],
  ])('%s refused by the loader: the next call starts a new loader (its state is unknown)', async (_, op, call) => {
    const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(op) });
    await dp.apply(desired);
    await expect(call(dp)).rejects.toMatchObject({ code: 'BPF_FAILED' });
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    await call(dp);
    expect(pids()).toHaveLength(2);
    await dp.close();
  });
});

describe('bpf driver - verify and the attach check', () => {
  const backends = [0, 1, 2].map((i) => ({ name: `b${i}`, address: `198.18.90.${10 + i}`, port: 80 }));
  const desired = [
    {
      vip: { address: '198.51.100.43', port: 80, protocol: 'tcp' as const },
      hash: '5-tuple' as const,
      seed: 7,
      backends,
      slots: buildTable(backends, 251),
    },
  ];
  const ops = (): number[] => lines('ops').map(Number);

  test('verify before any apply starts no loader and reports nothing', async () => {
    const dp = fakeDriver();
    expect((await dp.verify()).transactions).toBe(0);
    expect(pids()).toEqual([]);
    await dp.close();
  });

  test('verify checks the attachment, then reads the maps back (a dump) before it plans', async () => {
    const dp = fakeDriver();
    await dp.apply(desired);
    const before = ops().length;
    await dp.verify();
    expect(ops().slice(before, before + 2)).toEqual([Op.attachCheck, Op.dump]);
    expect(pids()).toHaveLength(1);
    await dp.close();
  });

  test('verify over a program no longer attached starts a new loader (whose start attaches it) and counts that repair', async () => {
    const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(Op.attachCheck) });
    await dp.apply(desired);
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    // The new loader reads back what the first wrote: the maps need nothing, the re-attach is the whole repair.
    vi.stubEnv('FAKE_DUMP', pinnedDump().toString('hex'));
    const r = await dp.verify();
    expect(pids()).toHaveLength(2);
    expect(alive(pids()[0] as number)).toBe(false);
    expect(r.transactions).toBe(1);
    // Each VIP named as repaired (the agent's driftRepaired warning lists the VIPs not 'unchanged').
    expect(r.vips.map((v) => v.action)).toEqual(['updated']);
    await dp.close();
  });

  // A scrape of /metrics (every 5 s) reads counters() far more often than verify() runs: the loader's attach check on
  // OP_STATS finds a removed program first, and the next loader attaches it again. The verify after that must still
  // say so, or l4fleet_table_drift_repairs_total never moves and L4fleetDataPlaneDrift never fires.
  test.each([
    ['counters', Op.stats, (dp: BpfDataPlane) => dp.counters()],
    ['an apply with nothing to write', Op.attachCheck, (dp: BpfDataPlane) => dp.apply(desired)],
  ])(
    "a program %s found detached and a new loader attached again is the next verify's repair (once)",
    async (_, op, call) => {
      const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(op) }); // the first loader's check fails: the program is gone
      await dp.apply(desired);
      await expect(call(dp)).rejects.toMatchObject({ code: 'BPF_FAILED' });
      vi.stubEnv('FAKE_FAIL_ON_OP', '');
      // The new loader reads back what the first wrote: the maps need nothing, the re-attach is the whole repair.
      vi.stubEnv('FAKE_DUMP', pinnedDump().toString('hex'));
      await call(dp); // the new loader's start attaches the program
      expect(pids()).toHaveLength(2);
      const r = await dp.verify();
      // Each VIP named as repaired, though its maps were right (the agent's driftRepaired warning lists the VIPs
      // not 'unchanged': none would be named).
      expect(r.vips.length).toBeGreaterThan(0);
      expect(r.vips.every((v) => v.action !== 'unchanged')).toBe(true);
      // What verify reports with nothing detached: nothing to write.
      const baseline = (await dp.verify()).transactions;
      expect(baseline).toBe(0);
      expect(r.transactions).toBe(baseline + 1);
      expect(pids()).toHaveLength(2);
      await dp.close();
    },
  );

  // `ip link set dev X xdp off` by hand: the attach check fails, and the new loader's start finds the tc program
  // unchanged (its reply says `unchanged`) but attaches XDP again: a new XDP program id. That is a repair too.
  test("an XDP program removed by hand and attached again by the next loader (tc unchanged) is the next verify's repair", async () => {
    const dp = fakeDriver({
      FAKE_FAIL_ON_OP: String(Op.attachCheck),
      FAKE_STARTS: 'attached 7 object xdp 9 chain|unchanged 7 object xdp 10 chain|unchanged 7 object xdp 10 chain',
    });
    await dp.apply(desired);
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    vi.stubEnv('FAKE_DUMP', pinnedDump().toString('hex')); // the pins as the first loader left them
    const r = await dp.verify(); // the check fails, a new loader starts and attaches XDP again
    expect(pids()).toHaveLength(2);
    expect(r.vips.map((v) => v.action)).toEqual(['updated']);
    const baseline = (await dp.verify()).transactions;
    expect(baseline).toBe(0);
    expect(r.transactions).toBe(baseline + 1);
    await dp.close();
  });

  test('the loader started over wiped pins (a value this driver never writes) attaches the program: no drift to report', async () => {
    const key = encodeVipKey({ family: 4, addressHex: 'c6336428', port: 80, protocol: 'tcp' });
    const value = Buffer.alloc(VIP_BYTES);
    value.writeUInt32LE(5000, 0);
    const one = Buffer.alloc(4);
    one.writeUInt32LE(1);
    const dp = fakeDriver({ FAKE_DUMP: Buffer.concat([one, key, value, EMPTY_DUMP.subarray(4)]).toString('hex') });
    // The first loader's dump is refused (l4f_vips made anew), the second's too (the stand-in's dump stays bad): its
    // pins removed, a third loader starts.
    await dp.apply(desired);
    expect(pids()).toHaveLength(3);
    const first = (await dp.verify()).transactions;
    expect(first).toBe((await dp.verify()).transactions);
    await dp.close();
  });

  test('an apply with nothing to write checks the attachment: refused, it fails and the next apply starts a new loader', async () => {
    const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(Op.attachCheck) });
    await dp.apply(desired);
    await expect(dp.apply(desired)).rejects.toMatchObject({ code: 'BPF_FAILED' });
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    await dp.apply(desired);
    expect(pids()).toHaveLength(2);
    await dp.close();
  });
});

describe('bpf driver - verify after a refused apply', () => {
  const vip = { address: '198.51.100.44', port: 80, protocol: 'tcp' as const };
  const addresses = (net: number): string[] => [0, 1, 2].map((i) => `198.18.${net}.${10 + i}`);
  const desired = (net: number) => {
    const backends = addresses(net).map((address, i) => ({ name: `n${net}-${i}`, address, port: 80 }));
    return [{ vip, hash: '5-tuple' as const, seed: 7, backends, slots: buildTable(backends, 251) }];
  };

  // The refused apply's backends were written before its table write failed; a verify restoring the state from before
  // it would mark them down again and put the old backends back in the table, undoing what that apply committed,
  // until the next apply (0a8b883: the mutation check found no test that failed without it).
  test("verify after an apply the loader refused part-way restores that apply's state, not the one before it", async () => {
    const dp = fakeDriver({ FAKE_FAIL_ON_OP: String(Op.tableWrite) }); // the first apply creates the table
    await dp.apply(desired(90));
    await expect(dp.apply(desired(91))).rejects.toMatchObject({ code: 'BPF_FAILED' });
    vi.stubEnv('FAKE_FAIL_ON_OP', '');
    const liveIn = (d: ReturnType<typeof decodeDump>): string[] =>
      [...d.backends.values()]
        .filter((b) => b.live)
        .map((b) => addressText(b.addressHex))
        .sort();
    // What the refused apply committed: the new backends, live beside the old ones, the table still the old one's.
    const before = pinnedDump();
    expect(liveIn(decodeDump(before))).toEqual([...addresses(90), ...addresses(91)]);
    vi.stubEnv('FAKE_DUMP', before.toString('hex')); // the next loader reads back the pins the first one wrote
    await dp.verify();
    const after = decodeDump(pinnedDump());
    expect(liveIn(after)).toEqual(addresses(91));
    const slots = after.tables.get(after.vips[0]?.value.table as number) as Uint32Array;
    const inTable = new Set([...slots].map((id) => addressText(after.backends.get(id)?.addressHex as string)));
    expect([...inTable].sort()).toEqual(addresses(91));
    await dp.close();
  });
});
