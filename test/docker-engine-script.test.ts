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
