/** The real host adapter of `--check`, against this machine (read-only: it creates nothing). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { systemHost } from './host.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const host = systemHost();

describe('host facts - this machine', () => {
  test('interfaces and local addresses', () => {
    expect(host.hasInterface('lo')).toBe(true);
    expect(host.hasInterface('l4f-none0')).toBe(false);
    expect(host.hasInterface('../lo')).toBe(false);
    // Directories under /sys/class/net that are no interface (parse refuses them too; --check must not pass them).
    expect(host.hasInterface('.')).toBe(false);
    expect(host.hasInterface('..')).toBe(false);
    expect(host.isLocalAddress('127.0.0.1')).toBe(true);
    expect(host.isLocalAddress('198.51.100.254')).toBe(false);
  });

  test('files, directories and programs', () => {
    const f = join(dir, 'ca.pem');
    writeFileSync(f, 'x');
    expect(host.canRead(f)).toBe(true);
    expect(host.canRead(dir)).toBe(false); // a directory is not a PEM file
    expect(host.canRead(join(dir, 'missing.pem'))).toBe(false);
    expect(host.canWriteDir(join(dir, 'state', 'sub'))).toBe(true); // creatable below a writable directory
    expect(host.canWriteDir(f)).toBe(false); // a file where the directory should be
    expect(host.canWriteDir(join(f, 'state'))).toBe(false); // below a file: can never be created
    expect(host.onPath('sh')).toBe(true);
    expect(host.onPath('l4fleet-no-such-program')).toBe(false);
  });

  test.runIf(process.getuid?.() === 0)('root holds CAP_NET_ADMIN and CAP_SYS_ADMIN', () => {
    expect(host.hasNetAdmin()).toBe(true);
    expect(host.hasSysAdmin()).toBe(true);
  });

  test('a Unix socket (bfdd.vty) and a bpffs are told from other files', async () => {
    const path = join(dir, 'bfdd.vty');
    const server = createServer();
    await new Promise<void>((r) => server.listen(path, r));
    try {
      expect(host.isSocket(path)).toBe(true);
      expect(host.isSocket(dir)).toBe(false);
      expect(host.isSocket(join(dir, 'none.vty'))).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(host.isBpffs(dir)).toBe(false); // tmpfs or the root file system
    expect(host.isBpffs(join(dir, 'missing'))).toBe(false);
  });
});
