/**
 * deploy/docker/backend/entrypoint.sh builds the identity server's listen list from L4FLEET_VIPS: run here with
 * `ip` and `node` stubbed on PATH (no container, no address changes), the stub node printing the arguments it got.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const ENTRYPOINT = join(import.meta.dirname, '..', 'deploy/docker/backend/entrypoint.sh');

/** The arguments the entrypoint hands to node, one per line. */
function nodeArgs(vips: string, args: readonly string[] = []): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-entrypoint-'));
  try {
    writeFileSync(join(dir, 'ip'), '#!/bin/sh\nexit 0\n');
    writeFileSync(join(dir, 'node'), '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n');
    chmodSync(join(dir, 'ip'), 0o755);
    chmodSync(join(dir, 'node'), 0o755);
    const out = execFileSync('sh', [ENTRYPOINT, ...args], {
      env: { PATH: `${dir}:${process.env.PATH ?? ''}`, L4FLEET_VIPS: vips, L4FLEET_BACKEND_NAME: 'b1' },
      encoding: 'utf8',
    });
    return out.trim().split('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `--listen` values among `argv`. */
const listens = (argv: readonly string[]) => argv.filter((_, i) => argv[i - 1] === '--listen');

describe('deploy/docker/backend/entrypoint.sh', () => {
  test('backend entrypoint - TCP VIPs sharing a port give one wildcard listen', () => {
    const argv = nodeArgs('tcp:198.51.100.10:80,tcp:[2001:db8::10]:80,tcp:198.51.100.11:443');
    expect(argv.slice(0, 3)).toEqual(['/opt/l4fleet/lab/dist/identity/main.js', '--name', 'b1']);
    expect(listens(argv)).toEqual(['tcp:[::]:80', 'tcp:[::]:443']);
  });

  test('backend entrypoint - a UDP VIP listed twice gives one listen, each UDP address its own', () => {
    const argv = nodeArgs('udp:198.51.100.10:53,udp:[2001:db8::10]:53,udp:198.51.100.10:53');
    expect(listens(argv)).toEqual(['udp:198.51.100.10:53', 'udp:[2001:db8::10]:53']);
  });

  test('backend entrypoint - arguments given replace the list', () => {
    const argv = nodeArgs('tcp:198.51.100.10:80', ['--listen', 'tcp:[::]:8080']);
    expect(listens(argv)).toEqual(['tcp:[::]:8080']);
  });
});
