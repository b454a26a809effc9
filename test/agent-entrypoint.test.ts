/**
 * deploy/docker/agent/entrypoint.sh waits for L4FLEET_WAIT_ADDRESSES before it starts anything (containerlab adds
 * the node's addresses with `exec` after the start): run here with `ip`, `gobgpd` and `node` stubbed on PATH (no
 * container, no address changes); the stub `ip` shows an address from its third call on.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const ENTRYPOINT = join(import.meta.dirname, '..', 'deploy/docker/agent/entrypoint.sh');

function runEntrypoint(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-agent-entrypoint-'));
  try {
    const calls = join(dir, 'calls');
    writeFileSync(calls, '');
    writeFileSync(
      join(dir, 'ip'),
      `#!/bin/sh\necho x >> ${calls}\n[ "$(wc -l < ${calls})" -ge 3 ] && echo "2: eth1    inet 198.18.2.11/24 brd 198.18.2.255 scope global eth1"\nexit 0\n`,
    );
    writeFileSync(join(dir, 'gobgpd'), '#!/bin/sh\nexit 0\n');
    writeFileSync(join(dir, 'node'), '#!/bin/sh\necho "node $*"\n');
    for (const f of ['ip', 'gobgpd', 'node']) chmodSync(join(dir, f), 0o755);
    const r = spawnSync('sh', [ENTRYPOINT, '--config', '/etc/l4fleet/agent.yaml'], {
      env: { PATH: `${dir}:${process.env.PATH ?? ''}`, ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('deploy/docker/agent/entrypoint.sh', () => {
  test('agent entrypoint - without L4FLEET_WAIT_ADDRESSES the agent starts at once', () => {
    const r = runEntrypoint({});
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('node /opt/l4fleet/packages/cli/dist/bin.js agent --config /etc/l4fleet/agent.yaml');
  });

  test('agent entrypoint - waits until the address is on an interface, then starts the agent', () => {
    const r = runEntrypoint({ L4FLEET_WAIT_ADDRESSES: '198.18.2.11', L4FLEET_WAIT_S: '10' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('bin.js agent --config');
  });

  test('agent entrypoint - an address that never comes ends it with the address named, the agent not started', () => {
    // 198.18.2.1 is a prefix of the stub's 198.18.2.11: it must not count as present.
    const r = runEntrypoint({ L4FLEET_WAIT_ADDRESSES: '198.18.2.11,198.18.2.1', L4FLEET_WAIT_S: '1' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('address 198.18.2.1 is on no interface after 1 s (L4FLEET_WAIT_ADDRESSES)');
    expect(r.stdout).not.toContain('bin.js agent');
  });
});
