import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createBpfDataPlane } from './driver.js';

// No bpffs in a unit test: the driver's mount check is replaced; the loader is a script speaking its protocol.
vi.mock('./bpffs.js', () => ({ ensureBpffs: async () => false, isBpffs: () => true }));

/**
 * A stand-in for l4fleet-bpf: answers the start and every request with status 0, but op 9 (remove) with the
 * status and text the real loader gave for an interface deleted under it (ENODEV); writes its pid to `pidFile`.
 */
const FAKE_LOADER = `#!/usr/bin/env node
const fs = require('node:fs');
fs.writeFileSync(process.env.FAKE_PID_FILE, String(process.pid));
const reply = (status, text) => {
  const body = Buffer.from(text);
  const h = Buffer.alloc(8);
  h.writeUInt32LE(status, 0);
  h.writeUInt32LE(body.length, 4);
  process.stdout.write(Buffer.concat([h, body]));
};
reply(0, 'attached 7 object chain');
let buf = Buffer.alloc(0);
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32LE(4)) {
    const op = buf.readUInt32LE(0) & 0x7fffffff;
    buf = buf.subarray(8 + buf.readUInt32LE(4));
    if (op === 9) reply(19, 'detaching from ifindex 5: No such device');
    else reply(0, '');
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

describe('bpf driver - close', () => {
  let dir: string | undefined;
  let pid: number | undefined;
  afterEach(() => {
    if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    pid = undefined;
    dir = undefined;
  });

  test('a remove the loader refuses still ends the loader, and close reports the failure', async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-driver-'));
    const loaderPath = join(dir, 'l4fleet-bpf');
    const objectPath = join(dir, 'node.bpf.o');
    const pidFile = join(dir, 'pid');
    writeFileSync(loaderPath, FAKE_LOADER);
    chmodSync(loaderPath, 0o755);
    writeFileSync(objectPath, '');
    vi.stubEnv('FAKE_PID_FILE', pidFile);
    const dp = createBpfDataPlane({
      interface: 'gone0',
      bpffsPath: join(dir, 'bpffs'),
      loaderPath,
      objectPath,
      logger: pino({ level: 'silent' }),
    });
    await expect(dp.close({ removeState: true })).rejects.toThrow(/remove: detaching from ifindex 5: No such device/);
    vi.unstubAllEnvs();
    pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(false);
  });
});
