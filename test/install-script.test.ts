/**
 * scripts/install.sh's own housekeeping, run into scratch roots (`--root DIR`: no apt-get, no systemctl, no root):
 * a relative --root is the caller's directory, not the checkout's; a failed run leaves no staging directory and a
 * later run removes those of earlier failed runs; without FRR's group frrvty the agent's unit gets a drop-in
 * without it (systemd would refuse to start the agent: 216/GROUP). The whole install is test/install.int.test.ts.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const INSTALL = join(ROOT, 'scripts/install.sh');
const DROP_IN = 'etc/systemd/system/l4fleet-agent.service.d/no-frrvty.conf';
const built = existsSync(join(ROOT, 'packages/cli/dist/bin.js'));

interface Ran {
  readonly code: number;
  readonly stderr: string;
}

function install(args: readonly string[], options: { cwd?: string; path?: string } = {}): Ran {
  const r = spawnSync('bash', [INSTALL, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, PATH: options.path ?? process.env.PATH },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stderr: r.stderr };
}

describe.skipIf(!built)('scripts/install.sh', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-install-script-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('install - a relative --root is taken from the directory it is run in', () => {
    const name = `l4fleet-install-rel-${process.pid}`;
    try {
      expect(install(['--root', name], { cwd: dir }).code).toBe(0);
      expect(existsSync(join(dir, name, 'opt/l4fleet/packages/cli/dist/bin.js'))).toBe(true);
      expect(existsSync(join(ROOT, name)), 'installed inside the checkout').toBe(false);
    } finally {
      rmSync(join(ROOT, name), { recursive: true, force: true });
    }
  }, 180_000);

  test('install - a failed copy leaves no staging directory, and a later run removes those of earlier runs', () => {
    const stubs = join(dir, 'stubs');
    mkdirSync(stubs);
    writeFileSync(join(stubs, 'tar'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(stubs, 'tar'), 0o755);
    const root = join(dir, 'root');
    const failed = install(['--root', root], { path: `${stubs}:${process.env.PATH ?? ''}` });
    expect(failed.code).not.toBe(0);
    expect(readdirSync(join(root, 'opt'))).toEqual([]);

    // One left by a run that was killed (no trap runs on SIGKILL): its pid is beyond pid_max, so not running.
    mkdirSync(join(root, 'opt/l4fleet.new.99999999'), { recursive: true });
    expect(install(['--root', root]).code).toBe(0);
    expect(readdirSync(join(root, 'opt'))).toEqual(['l4fleet']);
  }, 180_000);

  test('install - without group frrvty the agent unit gets a drop-in without it, and a warning', () => {
    const root = join(dir, 'root');
    const r = install(['--root', root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/frrvty/);
    expect(readFileSync(join(root, DROP_IN), 'utf8')).toMatch(/^SupplementaryGroups=$/m);
  }, 180_000);

  test('install - with group frrvty no drop-in, and one left by an earlier run is removed', () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nfrrvty:x:112:frr\n');
    mkdirSync(join(root, DROP_IN, '..'), { recursive: true });
    writeFileSync(join(root, DROP_IN), '[Service]\nSupplementaryGroups=\n');
    expect(install(['--root', root]).code).toBe(0);
    expect(existsSync(join(root, DROP_IN))).toBe(false);
    expect(readFileSync(join(root, 'etc/systemd/system/l4fleet-agent.service'), 'utf8')).toMatch(
      /^SupplementaryGroups=frrvty$/m,
    );
  }, 180_000);
});
