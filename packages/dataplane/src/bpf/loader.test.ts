import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import { createReplyReader, OP_CHAINED, Op, parseStart, requestHeader, startLoader } from './loader.js';

const frame = (status: number, body: Buffer): Buffer => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(status, 0);
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
};

describe('bpf loader replies', () => {
  const bodies = [Buffer.from('attached 7'), Buffer.alloc(0), Buffer.from(Array.from({ length: 300 }, (_x, i) => i))];
  const stream = Buffer.concat([
    frame(0, bodies[0] as Buffer),
    frame(0, bodies[1] as Buffer),
    frame(22, bodies[2] as Buffer),
  ]);

  test.each([1, 2, 3, 7, 8, 9, 64, stream.length])('split into %i-byte reads, the same replies in order', (size) => {
    const read = createReplyReader();
    const got: { status: number; body: string }[] = [];
    for (let at = 0; at < stream.length; at += size) {
      for (const r of read(stream.subarray(at, at + size)))
        got.push({ status: r.status, body: r.body.toString('hex') });
    }
    expect(got).toEqual([
      { status: 0, body: (bodies[0] as Buffer).toString('hex') },
      { status: 0, body: '' },
      { status: 22, body: (bodies[2] as Buffer).toString('hex') },
    ]);
  });

  test('an incomplete reply waits for the rest', () => {
    const read = createReplyReader();
    const f = frame(0, Buffer.from('dump'));
    expect(read(f.subarray(0, f.length - 1))).toEqual([]);
    expect(read(f.subarray(f.length - 1)).map((r) => r.body.toString())).toEqual(['dump']);
  });
});

describe('bpf loader - a send is one chain', () => {
  test('every request but the first is marked chained, so the loader refuses those after a failed one', () => {
    const send = [
      { op: Op.tableCreate, payload: Buffer.alloc(12), what: 'table-create' },
      { op: Op.update, payload: Buffer.alloc(3), what: 'vips' },
      { op: Op.seatWait, payload: Buffer.alloc(0), what: 'seat-wait' },
    ];
    const heads = send.map((r, i) => requestHeader(r, i, true));
    expect(heads.map((h) => h.readUInt32LE(0))).toEqual([
      Op.tableCreate,
      (Op.update | OP_CHAINED) >>> 0,
      (Op.seatWait | OP_CHAINED) >>> 0,
    ]);
    expect(heads.map((h) => h.readUInt32LE(4))).toEqual([12, 3, 0]);
    expect(OP_CHAINED).toBe(0x8000_0000);
  });

  test('a loader that did not say `chain` (an earlier build) gets plain ops: it would refuse the bit', () => {
    const r = { op: Op.update, payload: Buffer.alloc(3), what: 'vips' };
    expect(requestHeader(r, 1, false).readUInt32LE(0)).toBe(Op.update);
  });
});

describe('bpf loader start reply', () => {
  test.each([
    ['attached 12 object', { attach: 'attached', progId: 12, from: 'object' }],
    ['unchanged 12 pins', { attach: 'unchanged', progId: 12, from: 'pins' }],
    [
      'attached 12 object xdp 13',
      { attach: 'attached', progId: 12, from: 'object', xdp: { progId: 13, forwardingOff: [] } },
    ],
    [
      'unchanged 12 pins xdp 13 nofwd4 nofwd6',
      { attach: 'unchanged', progId: 12, from: 'pins', xdp: { progId: 13, forwardingOff: [4, 6] } },
    ],
    [
      'attached 5 object xdp 6 nofwd6',
      { attach: 'attached', progId: 5, from: 'object', xdp: { progId: 6, forwardingOff: [6] } },
    ],
    ['attached 12 object chain', { attach: 'attached', progId: 12, from: 'object', chain: true }],
    [
      'unchanged 12 pins seat 4 65537',
      { attach: 'unchanged', progId: 12, from: 'pins', seat: { index: 4, size: 65_537 } },
    ],
    [
      'unchanged 12 pins xdp 13 nofwd4 seat 0 251',
      {
        attach: 'unchanged',
        progId: 12,
        from: 'pins',
        xdp: { progId: 13, forwardingOff: [4] },
        seat: { index: 0, size: 251 },
      },
    ],
  ])('%s', (text, want) => {
    expect(parseStart(text)).toEqual(want);
  });
});

describe('bpf loader start reply - garbage is refused', () => {
  test.each([
    ['garbage', /attach: "garbage" is not attached or unchanged/],
    ['attached x object', /progId: "x" is not a program id/],
    ['attached 12 disk', /from: "disk" is not pins or object/],
    ['attached 12', /from: undefined is not pins or object/],
    ['attached 12 object xdp', /xdp progId: undefined is not a program id/],
    ['attached x object seat y', /progId: "x" is not a program id/],
    ['attached 12 object seat y 251', /seat index: "y" is not a table index/],
    ['attached 12 object seat 4', /seat size: undefined is not a table size/],
    ['attached 12 object chained', /"chained" is not a start reply word/],
  ])('%s', (text, message) => {
    let err: unknown;
    try {
      parseStart(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('BPF_FAILED');
    expect((err as Error).message).toMatch(message);
  });
});

/**
 * A stand-in for l4fleet-bpf whose start fails as libbpf's does over a pinned flow map of another size: the reply
 * first, then libbpf's lines on stderr (the order the driver may see them in), then exit 1.
 */
const FAILING_LOADER = `#!/usr/bin/env node
const h = Buffer.alloc(8);
const body = Buffer.from('load node.bpf.o (pins in /sys/fs/bpf/l4fleet): Invalid argument');
h.writeUInt32LE(22, 0);
h.writeUInt32LE(body.length, 4);
process.stdout.write(Buffer.concat([h, body]), () => {
  setTimeout(() => {
    process.stderr.write("libbpf: couldn't reuse pinned map at '/sys/fs/bpf/l4fleet/l4f_flows4': parameter mismatch\\n");
    process.stderr.write("libbpf: map 'l4f_flows4': error reusing pinned map\\n");
    process.stderr.write("libbpf: map 'l4f_flows4': failed to create: Invalid argument(-22)\\n");
    process.stderr.write("libbpf: failed to load object 'node.bpf.o'\\n", () => process.exit(1));
  }, 50);
});
`;

describe('bpf loader - a failed start', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  test("says what libbpf wrote on stderr (couldn't reuse pinned map), also when it comes after the reply", async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-loader-'));
    const loaderPath = join(dir, 'l4fleet-bpf');
    writeFileSync(loaderPath, FAILING_LOADER);
    chmodSync(loaderPath, 0o755);
    const l = startLoader({
      pinDir: '/sys/fs/bpf/l4fleet',
      iface: 'eth0',
      flowTableSize: 1024,
      xdp: 'off',
      logger: pino({ level: 'silent' }),
      loaderPath,
      objectPath: join(dir, 'node.bpf.o'),
    });
    const err = await l.started.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('BPF_FAILED');
    expect((err as Error).message).toMatch(/start: load node\.bpf\.o .*: Invalid argument/);
    expect((err as Error).message).toContain(
      "couldn't reuse pinned map at '/sys/fs/bpf/l4fleet/l4f_flows4': parameter mismatch",
    );
    await l.close();
  });
});

/** A stand-in for l4fleet-bpf whose start succeeds after saying on stderr that it emptied the flow LRUs. */
const CLEARING_LOADER = `#!/usr/bin/env node
process.stderr.write('l4fleet-bpf: /sys/fs/bpf/l4fleet/l4f_backends was not pinned and starts empty: flows remembered over its ids cleared\\n', () => {
  const h = Buffer.alloc(8);
  const body = Buffer.from('attached 12 object');
  h.writeUInt32LE(0, 0);
  h.writeUInt32LE(body.length, 4);
  process.stdout.write(Buffer.concat([h, body]));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
});
`;

describe('bpf loader - a start that emptied the flow LRUs', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  test('is logged as a warning (bpfFlowsCleared) naming the map that started empty', async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-loader-'));
    const loaderPath = join(dir, 'l4fleet-bpf');
    writeFileSync(loaderPath, CLEARING_LOADER);
    chmodSync(loaderPath, 0o755);
    const warnings: { event?: string; detail?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    const l = startLoader({
      pinDir: '/sys/fs/bpf/l4fleet',
      iface: 'eth0',
      flowTableSize: 1024,
      xdp: 'off',
      logger,
      loaderPath,
      objectPath: join(dir, 'node.bpf.o'),
    });
    expect((await l.started).from).toBe('object');
    await l.close();
    // stderr and stdout are two pipes: the note may be read after the reply, so it is waited for (2 s at most).
    await expect
      .poll(() => warnings.filter((w) => w.event === 'bpfFlowsCleared').map((w) => w.detail))
      .toEqual([
        'l4fleet-bpf: /sys/fs/bpf/l4fleet/l4f_backends was not pinned and starts empty: flows remembered over its ids cleared',
      ]);
  });
});
