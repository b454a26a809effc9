import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import { parseCounterDump, totalDecapsulated } from './counters.js';
import { type BackendRecord, parseRecord, RECORD_VERSION, readRecord, recordPath, writeRecord } from './record.js';

const record: BackendRecord = {
  version: RECORD_VERSION,
  netns: 'net:[4026531840]',
  interface: 'eth0',
  bpffs: '/sys/fs/bpf',
  pinDir: '/sys/fs/bpf/l4fleet-backend/0123456789abcdef',
  objectSha256: '0123456789abcdef'.repeat(4),
  forwarding: ['gue'],
  guePort: 6080,
  vips: ['198.51.100.7'],
  nodes: ['198.18.0.2'],
  addedVips: ['198.51.100.7/32'],
  clsactCreated: true,
  stateDirCreated: false,
  sysctls: [{ key: 'net/ipv4/conf/all/arp_ignore', before: '0', set: '1' }],
};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('backend record', () => {
  test('backend record - one file per network namespace, named by its inode', () => {
    expect(recordPath('/run/l4fleet', 'net:[4026531840]')).toBe('/run/l4fleet/backend-net4026531840.json');
    expect(() => recordPath('/run/l4fleet', 'mnt:[1]')).toThrow(/network namespace "mnt:\[1\]"/);
  });

  test('backend record - written and read back unchanged; a missing file is no record', async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4fb-rec-`);
    dirs.push(dir);
    const path = `${dir}/sub/backend-net1.json`;
    expect(await readRecord(path)).toBeUndefined();
    await writeRecord(path, record);
    expect(await readRecord(path)).toEqual(record);
  });

  test.each([
    [{ ...record, version: 2 }, 'version 2'],
    [{ ...record, forwarding: ['vxlan'] }, 'forwarding ["vxlan"]'],
    [{ ...record, guePort: 0 }, 'guePort 0'],
    [{ ...record, addedVips: [1] }, 'addedVips [1]'],
    [{ ...record, clsactCreated: 'yes' }, 'clsactCreated "yes"'],
    [{ ...record, sysctls: [{ key: 'k' }] }, 'sysctls[] {"key":"k"}'],
    // Teardown deletes what addedVips lists and writes what sysctls lists: only what setup could have changed.
    [{ ...record, addedVips: ['127.0.0.1/8'] }, 'addedVips[] "127.0.0.1/8"'],
    [{ ...record, addedVips: ['198.51.100.7/24'] }, 'addedVips[] "198.51.100.7/24"'],
    [{ ...record, addedVips: ['198.51.100.8/32'] }, 'addedVips[] "198.51.100.8/32"'],
    [{ ...record, addedVips: ['198.51.100.7'] }, 'addedVips[] "198.51.100.7"'],
    [{ ...record, sysctls: [{ key: 'kernel/panic', before: '0', set: '1' }] }, 'sysctls[].key "kernel/panic"'],
    [
      { ...record, sysctls: [{ key: 'net/ipv4/conf/eth1/rp_filter', before: '1', set: '2' }] },
      'sysctls[].key "net/ipv4/conf/eth1/rp_filter"',
    ],
    [{ ...record, vips: ['web'] }, 'vips[] "web"'],
    [{ ...record, nodes: ['198.18.0.300'] }, 'nodes[] "198.18.0.300"'],
    [{ ...record, peers: ['peer-1'] }, 'peers[] "peer-1"'],
    [{ ...record, bpffs: 'sys/fs/bpf' }, 'bpffs "sys/fs/bpf"'],
    [{ ...record, bpffs: '/sys/fs/bpf/../../..' }, 'bpffs "/sys/fs/bpf/../../.."'],
    [{ ...record, pinDir: '/' }, 'pinDir "/"'],
    [{ ...record, pinDir: '/sys/fs/bpf/l4fleet-backend/../../..' }, 'pinDir "/sys/fs/bpf/l4fleet-backend/../../.."'],
    [
      { ...record, pinDir: '/sys/fs/bpf/l4fleet-backend/fedcba9876543210' },
      'pinDir "/sys/fs/bpf/l4fleet-backend/fedcba9876543210"',
    ],
    [{ ...record, interface: '../../../kernel' }, 'interface "../../../kernel"'],
    [{ ...record, incomplete: 'yes' }, 'incomplete "yes"'],
  ])('backend record - a damaged record is refused naming the field: %s', (raw, field) => {
    expect(() => parseRecord(raw, '/run/l4fleet/x.json')).toThrow(`/run/l4fleet/x.json: ${field} is not valid`);
  });

  test('backend record - an IPv6 VIP added as /128, in any text of the address, and an interface sysctl are accepted', () => {
    const r = {
      ...record,
      interface: 'eth0.100',
      vips: ['198.51.100.7', '2001:DB8::7'],
      addedVips: ['2001:db8::7/128'],
      sysctls: [{ key: 'net/ipv4/conf/eth0.100/rp_filter', before: '1', set: '2' }],
      incomplete: true,
    };
    expect(parseRecord(r, '/run/l4fleet/x.json')).toEqual(r);
  });

  test('backend record - two writers at once each write through their own temporary file: both succeed, one wins whole', async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4fb-rec-`);
    dirs.push(dir);
    const path = `${dir}/backend-net1.json`;
    const other = { ...record, guePort: 6081 };
    await Promise.all([writeRecord(path, record), writeRecord(path, other), writeRecord(path, record)]);
    expect([record, other]).toContainEqual(await readRecord(path));
    expect(readdirSync(dir)).toEqual(['backend-net1.json']);
  });

  test('backend record - a record of the first setups (7a9b25b: no stateDirCreated) reads, its state directory kept', async () => {
    // Written before teardown learned to remove the state directory: whether setup created it is not known, so the
    // directory stays (teardown's other undo steps need the record: sysctls, VIPs on lo, pins).
    const { stateDirCreated: _absent, ...first } = record;
    expect(parseRecord(first, '/run/l4fleet/x.json')).toEqual({ ...record, stateDirCreated: false });
    const dir = mkdtempSync(`${tmpdir()}/l4fb-rec-`);
    dirs.push(dir);
    writeFileSync(`${dir}/r.json`, JSON.stringify(first));
    expect(await readRecord(`${dir}/r.json`)).toEqual({ ...record, stateDirCreated: false });
    expect(() => parseRecord({ ...record, stateDirCreated: 'no' }, '/run/l4fleet/x.json')).toThrow(
      '/run/l4fleet/x.json: stateDirCreated "no" is not valid',
    );
  });

  test('backend record - a file that is not JSON is refused naming the file', async () => {
    const dir = mkdtempSync(`${tmpdir()}/l4fb-rec-`);
    dirs.push(dir);
    writeFileSync(`${dir}/r.json`, '{');
    await expect(readRecord(`${dir}/r.json`)).rejects.toThrow(`${dir}/r.json: not JSON`);
  });
});

describe('backend counters', () => {
  const entry = (slot: number, perCpu: [number, number][]) => ({
    key: [slot, 0, 0, 0].map((b) => `0x${b.toString(16).padStart(2, '0')}`),
    values: perCpu.map(([p, b], cpu) => {
      const buf = Buffer.alloc(16);
      buf.writeBigUInt64LE(BigInt(p), 0);
      buf.writeBigUInt64LE(BigInt(b), 8);
      return { cpu, value: [...buf].map((x) => `0x${x.toString(16).padStart(2, '0')}`) };
    }),
  });

  test('backend counters - per-CPU values are summed into the slot layout of backend.bpf.c', () => {
    const dump = JSON.stringify([
      entry(0, [
        [2, 200],
        [3, 300],
      ]), // gue 4-in-4
      entry(5, [[1, 90]]), // ipip 6-in-4 (mode 1 * 4 + outer 0 * 2 + inner 1)
      entry(11, [[4, 400]]), // gre 6-in-6
      entry(12, [[7, 700]]),
      entry(13, [[1, 10]]),
      entry(14, [[2, 20]]),
      entry(15, [[9, 900]]),
      entry(16, [[1, 1]]),
    ]);
    const c = parseCounterDump(dump);
    expect(c.decapsulated.gue['ipv4-in-ipv4']).toEqual({ packets: 5, bytes: 500 });
    expect(c.decapsulated.ipip['ipv6-in-ipv4']).toEqual({ packets: 1, bytes: 90 });
    expect(c.decapsulated.gre['ipv6-in-ipv6']).toEqual({ packets: 4, bytes: 400 });
    expect(c.droppedStranger.packets).toBe(7);
    expect(c.malformed.packets).toBe(1);
    expect(c.droppedNotVip.packets).toBe(2);
    expect(c.passed.packets).toBe(9);
    expect(c.decapFailed.packets).toBe(1);
    expect(totalDecapsulated(c)).toBe(10);
  });

  test('backend counters - output that is not a bpftool dump is refused', () => {
    expect(() => parseCounterDump('Error: map not found')).toThrow('counters: bpftool printed no JSON');
    expect(() => parseCounterDump('[{"key":["zz"],"values":[]}]')).toThrow('counters: a key is not a list of bytes');
  });

  test.each([
    ['[null]', 'counters: entry 0 null is not {key, values}'],
    ['[{"key":["0x01"],"values":[]}]', 'counters: entry 0: key ["0x01"] has 1 bytes, not 4'],
    ['[{"key":["0x00","0x00","0x00","0x00"],"values":{}}]', 'counters: entry 0 (slot 0): values {} is not a list'],
    [
      '[{"key":["0x00","0x00","0x00","0x00"],"values":[null]}]',
      'counters: entry 0 (slot 0): values[0] null is not {value}',
    ],
    [
      '[{"key":["0x00","0x00","0x00","0x00"],"values":[{"cpu":0}]}]',
      'counters: entry 0 (slot 0): values[0] {"cpu":0} is not {value}',
    ],
  ])('backend counters - a malformed entry is refused naming it: %s', (dump, message) => {
    let err: unknown;
    try {
      parseCounterDump(dump);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as Error).message).toBe(message);
  });
});
