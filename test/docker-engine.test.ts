/**
 * scripts/docker-engine.sh start when dockerd never answers: run with `docker`, `dockerd`, `ip` and `umount` stubbed
 * on PATH and its own run directory (no engine is started, no link is made), it must stop the dockerd it started
 * and remove the bridge it made before exiting non-zero, so a retry finds nothing of the failed start.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const SCRIPT = join(import.meta.dirname, '..', 'scripts/docker-engine.sh');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('scripts/docker-engine.sh', () => {
  test('docker-engine - a start that times out stops its dockerd and removes its bridge', () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-docker-engine-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const stubs: Record<string, string> = {
      docker: 'exit 1', // never answers
      dockerd: `echo $$ >"${dir}/dockerd.started"; exec sleep 300`,
      ip: `echo "$*" >>"${dir}/ip.log"; case "$*" in "link show"*) exit 1 ;; esac; exit 0`,
      umount: 'exit 0',
    };
    for (const [name, body] of Object.entries(stubs)) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    let dockerdPid = 0;
    try {
      let code = 0;
      try {
        execFileSync('bash', [SCRIPT, 'start'], {
          env: {
            PATH: `${bin}:${process.env.PATH ?? ''}`,
            L4FLEET_DOCKER_RUN_DIR: join(dir, 'run'),
            L4FLEET_DOCKER_DATA_ROOT: join(dir, 'data'),
            L4FLEET_DOCKER_START_TIMEOUT_S: '1',
          },
          stdio: 'pipe',
          timeout: 20_000,
        });
      } catch (e) {
        code = (e as { status?: number }).status ?? -1;
      }
      expect(code).not.toBe(0);
      expect(existsSync(join(dir, 'dockerd.started')), 'the stub dockerd ran').toBe(true);
      dockerdPid = Number(readFileSync(join(dir, 'dockerd.started'), 'utf8'));
      expect(alive(dockerdPid), `dockerd ${dockerdPid} still running`).toBe(false);
      const ip = readFileSync(join(dir, 'ip.log'), 'utf8');
      expect(ip).toContain('link add l4f-docker0 type bridge');
      expect(ip).toContain('link del l4f-docker0');
    } finally {
      if (dockerdPid > 0 && alive(dockerdPid)) process.kill(dockerdPid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A scratch dir with `docker`, `dockerd`, `ip` and `umount` stubs (`dockerd`'s body given) first on PATH; `umount`
 * real with `realUmount`.
 */
function stubbed(dockerd: string, realUmount = false) {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-docker-engine-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const stubs: Record<string, string> = {
    docker: 'exit 1', // never answers
    dockerd,
    ip: `echo "$*" >>"${dir}/ip.log"; case "$*" in "link show"*) exit 1 ;; esac; exit 0`,
    umount: `echo "$*" >>"${dir}/umount.log"; exit 0`,
  };
  if (realUmount) delete stubs.umount;
  for (const [name, body] of Object.entries(stubs)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const env = {
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    L4FLEET_DOCKER_RUN_DIR: join(dir, 'run'),
    L4FLEET_DOCKER_DATA_ROOT: join(dir, 'data'),
    L4FLEET_DOCKER_START_TIMEOUT_S: '20',
  };
  const start = () => {
    const r = spawnSync('bash', [SCRIPT, 'start'], { env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  return { dir, bin, env, start, read };
}

describe('scripts/docker-engine.sh start - a dockerd that cannot run', () => {
  test('docker-engine - a dockerd that exits at once is reported with its code and log, and its bridge removed', () => {
    const s = stubbed('echo "failed to start daemon: pid file found" >&2; exit 3');
    try {
      const r = s.start();
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('dockerd exited with code 3');
      expect(r.stderr).toContain('failed to start daemon: pid file found');
      expect(r.stderr).not.toContain('did not answer');
      expect(s.read('ip.log')).toContain('link del l4f-docker0');
    } finally {
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('docker-engine - a live dockerd named by the pidfile that does not answer is left alone, named', () => {
    const s = stubbed('exit 0');
    // Another engine's dockerd (a process named dockerd) that runs but does not answer (yet).
    const other = join(s.dir, 'other', 'dockerd');
    mkdirSync(join(s.dir, 'other'));
    writeFileSync(other, '#!/bin/sh\nwhile :; do sleep 1; done\n');
    chmodSync(other, 0o755);
    const live = spawn(other, [], { stdio: 'ignore' });
    try {
      mkdirSync(join(s.dir, 'run'));
      writeFileSync(join(s.dir, 'run', 'dockerd.pid'), String(live.pid));
      const r = spawnSync('bash', [SCRIPT, 'start'], {
        env: { ...s.env, L4FLEET_DOCKER_START_TIMEOUT_S: '1' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`dockerd ${live.pid}`);
      // Nothing of the other engine's is touched: its pidfile, its exec root's mounts, a bridge.
      expect(readFileSync(join(s.dir, 'run', 'dockerd.pid'), 'utf8')).toBe(String(live.pid));
      expect(s.read('umount.log')).toBe('');
      expect(s.read('ip.log')).not.toContain('link del');
      expect(alive(live.pid as number)).toBe(true);
    } finally {
      live.kill('SIGKILL');
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('docker-engine - stop leaves alone a process that is not dockerd named by a stale pidfile', () => {
    const s = stubbed('exit 1');
    // The pid a dead dockerd left in its pidfile, since reused by another program.
    const live = spawn('sleep', ['300'], { stdio: 'ignore' });
    try {
      mkdirSync(join(s.dir, 'run'));
      writeFileSync(join(s.dir, 'run', 'dockerd.pid'), String(live.pid));
      const r = spawnSync('bash', [SCRIPT, 'stop'], { env: s.env, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(0);
      expect(alive(live.pid as number), 'the other program still runs').toBe(true);
      expect(existsSync(join(s.dir, 'run', 'dockerd.pid')), 'the stale pidfile is removed').toBe(false);
    } finally {
      live.kill('SIGKILL');
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
});

/** The mount points at or below `path` in this process's mount table. */
function mountsAt(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point === path || point.startsWith(`${path}/`));
}

// Real mounts in a scratch data root (root only): what a dockerd killed by halt's KILL leaves, and what is not its.
describe.skipIf(process.getuid?.() !== 0)('scripts/docker-engine.sh stop - mounts a dockerd left', () => {
  const unmountAll = (path: string) => {
    for (const point of mountsAt(path).reverse()) spawnSync('umount', [point]);
  };

  test('docker-engine - stop after a killed dockerd removes its data root bind mount and the mounts below it', () => {
    const s = stubbed('exit 1', true);
    const data = join(s.dir, 'data');
    const merged = join(data, 'overlay2', 'abc', 'merged');
    try {
      mkdirSync(merged, { recursive: true });
      execFileSync('mount', ['--bind', data, data]);
      execFileSync('mount', ['-t', 'tmpfs', 'l4fleet-test', merged]);
      expect(mountsAt(data)).toEqual([data, merged]);
      const r = spawnSync('bash', [SCRIPT, 'stop'], { env: s.env, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(0);
      expect(mountsAt(data)).toEqual([]);
      expect(r.stderr).toContain(`unmounted 2 mount(s) at or below ${data}`);
    } finally {
      unmountAll(data);
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['a file system mounted there', (_dir: string, data: string) => ['-t', 'tmpfs', 'l4fleet-test', data]],
    ['a bind mount of another directory', (dir: string, data: string) => ['--bind', join(dir, 'elsewhere'), data]],
  ])('docker-engine - stop leaves alone %s at the data root', (_what, args) => {
    const s = stubbed('exit 1', true);
    const data = join(s.dir, 'data');
    try {
      mkdirSync(data);
      mkdirSync(join(s.dir, 'elsewhere'));
      execFileSync('mount', args(s.dir, data));
      const r = spawnSync('bash', [SCRIPT, 'stop'], { env: s.env, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(0);
      expect(mountsAt(data)).toEqual([data]);
      expect(r.stderr).not.toContain('unmounted');
    } finally {
      unmountAll(data);
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
});
