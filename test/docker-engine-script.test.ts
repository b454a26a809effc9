/**
 * scripts/docker-engine.sh start and the lines of scripts/test.sh that use it (between its `docker-engine: begin` and
 * `docker-engine: end` markers), run here with `docker`, `dockerd` and `ip` stubbed on PATH: no engine is started
 * or stopped, no link is made. `npm test` must stop only an engine it started: one that already answered is someone
 * else's (a Docker lab running on it), and stopping it kills their containers.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

/** The lines of scripts/test.sh between its markers. */
function testShEngineBlock(): string {
  const text = readFileSync(join(ROOT, 'scripts/test.sh'), 'utf8');
  const m = /# docker-engine: begin[^\n]*\n([\s\S]*?)\n\s*# docker-engine: end/.exec(text);
  if (!m?.[1]) throw new Error('scripts/test.sh has no docker-engine: begin/end block');
  return m[1];
}

describe('scripts/docker-engine.sh and npm test', () => {
  let dir: string;
  let stubs: string;
  let calls: string;
  let answering: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-docker-engine-'));
    stubs = join(dir, 'bin');
    mkdirSync(stubs);
    calls = join(dir, 'calls');
    answering = join(dir, 'answering');
    writeFileSync(calls, '');
    // `docker version` answers once the flag file exists; the stub dockerd makes it (a started engine).
    writeFileSync(join(stubs, 'docker'), `#!/bin/sh\necho "docker $*" >> ${calls}\n[ -e ${answering} ]\n`);
    writeFileSync(join(stubs, 'dockerd'), `#!/bin/sh\necho "dockerd" >> ${calls}\ntouch ${answering}\n`);
    // No bridge exists: `ip link show` fails, everything else succeeds.
    writeFileSync(
      join(stubs, 'ip'),
      `#!/bin/sh\necho "ip $*" >> ${calls}\n[ "$1 $2" = "link show" ] && exit 1\nexit 0\n`,
    );
    for (const f of ['docker', 'dockerd', 'ip']) chmodSync(join(stubs, f), 0o755);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function bash(script: string) {
    const r = spawnSync('bash', ['-c', script], {
      cwd: ROOT,
      env: {
        PATH: `${stubs}:${process.env.PATH ?? ''}`,
        L4FLEET_DOCKER_RUN_DIR: join(dir, 'run'),
        L4FLEET_DOCKER_DATA_ROOT: join(dir, 'data'),
        L4FLEET_DOCKER_START_TIMEOUT_S: '5',
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls: readFileSync(calls, 'utf8') };
  }

  /** test.sh's lines, then the shell exits: its EXIT trap (if any) runs. */
  const testSh = () =>
    bash(
      `set -uo pipefail\nfail() { echo "test: $1 failed"; exit 1; }\n${testShEngineBlock()}\necho "DOCKER_HOST=$DOCKER_HOST"`,
    );

  test('docker engine - start says whether it started the engine', () => {
    const started = bash('bash scripts/docker-engine.sh start');
    expect(started.status).toBe(0);
    expect(started.stdout).toContain('export DOCKER_HOST=unix://');
    expect(started.stdout).toContain('L4FLEET_DOCKER_STARTED=1');
    expect(started.calls).toContain('dockerd');
    const again = bash('bash scripts/docker-engine.sh start');
    expect(again.stdout).toContain('L4FLEET_DOCKER_STARTED=0');
  });

  test('docker engine - npm test leaves an engine that already answered running', () => {
    writeFileSync(answering, '');
    const r = testSh();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('DOCKER_HOST=unix://');
    expect(r.calls).not.toContain('dockerd');
    // stop deletes the engine's bridge: it did not run.
    expect(r.calls).not.toContain('ip link del');
    expect(existsSync(answering)).toBe(true);
  });

  test('docker engine - npm test stops the engine it started, at the end', () => {
    const r = testSh();
    expect(r.status).toBe(0);
    expect(r.calls).toContain('dockerd');
    expect(r.calls).toContain('ip link del l4f-docker0');
  });
});

/**
 * scripts/install-system-deps.sh --docker with `id`, `dpkg-query`, `apt-get` and `systemctl` stubbed on PATH and the
 * policy-rc.d path in a scratch dir: nothing is installed. Debian's docker.io postinst enables and starts
 * docker.service (which turns on ip_forward, sets FORWARD to DROP and adds NAT rules); the tests need none of it.
 */
describe('scripts/install-system-deps.sh --docker', () => {
  let dir: string;
  let stubs: string;
  let calls: string;
  let policy: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-system-deps-'));
    stubs = join(dir, 'bin');
    mkdirSync(stubs);
    calls = join(dir, 'calls');
    policy = join(dir, 'policy-rc.d');
    writeFileSync(calls, '');
    writeFileSync(join(stubs, 'id'), '#!/bin/sh\necho 0\n');
    // Every package is installed but docker.io.
    writeFileSync(
      join(stubs, 'dpkg-query'),
      '#!/bin/sh\nfor a; do p=$a; done\n[ "$p" = docker.io ] && exit 1\nprintf "install ok installed"\n',
    );
    // apt-get says whether services may start while it installs: what policy-rc.d answers for docker.
    writeFileSync(
      join(stubs, 'apt-get'),
      `#!/bin/sh\nif [ "$1" = install ] || [ "$2" = install ] || echo "$*" | grep -q ' install '; then\n  if [ -x ${policy} ]; then ${policy} docker start; echo "apt-get install (policy $?)" >> ${calls}; else echo "apt-get install (no policy)" >> ${calls}; fi\nfi\nexit 0\n`,
    );
    writeFileSync(join(stubs, 'systemctl'), `#!/bin/sh\necho "systemctl $*" >> ${calls}\nexit 0\n`);
    for (const f of ['id', 'dpkg-query', 'apt-get', 'systemctl']) chmodSync(join(stubs, f), 0o755);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const deps = (...args: string[]) => {
    const r = spawnSync('bash', ['scripts/install-system-deps.sh', ...args], {
      cwd: ROOT,
      env: { PATH: `${stubs}:${process.env.PATH ?? ''}`, L4FLEET_POLICY_RC_D: policy },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls: readFileSync(calls, 'utf8') };
  };

  test('system deps - docker.io is installed with service starts refused, its units disabled, the policy removed', () => {
    const r = deps('--docker');
    expect(r.status, r.stderr).toBe(0);
    expect(r.calls).toContain('apt-get install (policy 101)');
    expect(r.calls).toMatch(/systemctl disable .*docker\.service/);
    expect(r.calls).toMatch(/systemctl disable .*docker\.socket/);
    expect(existsSync(policy)).toBe(false);
  });

  test('system deps - a policy-rc.d of the machine is left as it was', () => {
    writeFileSync(policy, '#!/bin/sh\nexit 104\n', { mode: 0o755 });
    const r = deps('--docker');
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(policy, 'utf8')).toBe('#!/bin/sh\nexit 104\n');
  });
});
