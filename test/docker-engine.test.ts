/**
 * scripts/docker-engine.sh start when dockerd never answers: run with `docker`, `dockerd`, `ip` and `umount` stubbed
 * on PATH and its own run directory (no engine is started, no link is made), it must stop the dockerd it started
 * and remove the bridge it made before exiting non-zero, so a retry finds nothing of the failed start.
 */
import { execFileSync } from 'node:child_process';
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
