/**
 * scripts/install.sh as an operator runs it, into a scratch root (`--root DIR`: no apt-get, no systemctl): the
 * runtime under /opt/l4fleet with its own Node, the command, the systemd units and the example configs. The
 * installed tree runs on its own (its CLI, its data-plane files resolve inside it), every path the units start
 * exists in it, and a second run (an upgrade) replaces /opt/l4fleet but never an edited /etc/l4fleet file.
 */

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@l4fleet/process';
import { unitValue } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
/** What the units may start from Debian's packages rather than the installed tree (kill: procps, the reload). */
const DEBIAN_PROGRAMS = ['/usr/bin/gobgpd', '/bin/kill'];
const UNITS = [
  'l4fleet-agent.service',
  'l4fleet-gobgpd.service',
  'l4fleet-backend.service',
  'l4fleet-backend-agent.service',
  'l4fleet-dashboard.service',
];

/** Every symbolic link under `dir` whose target is absolute (it would point outside the installed tree). */
function absoluteLinks(dir: string, found: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) {
      if (readlinkSync(p).startsWith('/')) found.push(p);
    } else if (e.isDirectory()) absoluteLinks(p, found);
  }
  return found;
}

describe('scripts/install.sh', () => {
  let dest = '';
  const opt = () => join(dest, 'opt/l4fleet');
  const install = () => run(['bash', join(ROOT, 'scripts/install.sh'), '--root', dest], { timeoutMs: 120_000 });

  beforeAll(() => {
    dest = mkdtempSync(join(tmpdir(), 'l4fleet-install-'));
  });

  afterAll(() => {
    if (dest) rmSync(dest, { recursive: true, force: true });
  });

  test('installs the runtime with its own Node, the command, the units and the example configs', async () => {
    const r = await install();
    expect(r.stdout).toMatch(/install: l4fleet \d+\.\d+\.\d+ in .*\/opt\/l4fleet \(Node v2\d\./);
    for (const f of ['bin/node', 'packages/cli/dist/bin.js', 'packages/dataplane/native/bin/l4fleet-nft-batch']) {
      expect(existsSync(join(opt(), f)), f).toBe(true);
    }
    expect(readFileSync(join(dest, 'usr/local/bin/l4fleet'), 'utf8')).toContain(
      'exec /opt/l4fleet/bin/node /opt/l4fleet/packages/cli/dist/bin.js "$@"',
    );
    for (const u of UNITS) expect(existsSync(join(dest, 'etc/systemd/system', u)), u).toBe(true);
    for (const [e, mode] of [
      ['agent.yaml', 0o640],
      ['backend.env', 0o640],
      ['backend-agent.env', 0o644],
      ['dashboard.env', 0o600], // it holds the dashboard's write token
    ] as const) {
      const installed = join(dest, 'etc/l4fleet', e);
      expect(readFileSync(installed, 'utf8')).toBe(readFileSync(join(ROOT, 'deploy/examples', e), 'utf8'));
      expect(statSync(installed).mode & 0o777, e).toBe(mode);
    }
    // No sources or test tooling: what runs, only.
    expect(existsSync(join(opt(), 'packages/agent/src'))).toBe(false);
    expect(existsSync(join(opt(), 'node_modules/vitest'))).toBe(false);
  }, 180_000);

  test('the installed tree runs on its own: its CLI answers, its data-plane files resolve inside it, no link leaves it', async () => {
    const node = join(opt(), 'bin/node');
    // From / and from the installed tree: nothing of this checkout is on the way.
    const at = (cwd: string, argv: string[]) => execFileSync(node, argv, { cwd, encoding: 'utf8' });
    expect(at('/', [join(opt(), 'packages/cli/dist/bin.js'), 'backend', 'setup', '--help'])).toContain('--forwarding');
    const imported =
      "const d = await import('@l4fleet/dataplane'); console.log(d.BPF_LOADER_PATH, d.DEFAULT_BACKEND_OBJECT)";
    const paths = at(opt(), ['--input-type=module', '-e', imported]).trim().split(' ');
    expect(paths).toHaveLength(2);
    for (const p of paths) expect(p.startsWith(`${opt()}/`), p).toBe(true);
    expect(absoluteLinks(opt())).toEqual([]);
    expect(lstatSync(join(opt(), 'node_modules/@l4fleet/cli')).isSymbolicLink()).toBe(true);
  }, 60_000);

  test('every program the units start is there: in the installed tree, or a Debian package', async () => {
    for (const u of UNITS) {
      const unit = readFileSync(join(dest, 'etc/systemd/system', u), 'utf8');
      for (const key of ['ExecStartPre', 'ExecStart', 'ExecReload', 'ExecStop']) {
        if (!new RegExp(`^${key}=`, 'm').test(unit)) continue;
        const [program, script] = unitValue(unit, key).split(/\s+/);
        // Node is the installed one (Debian 12's /usr/bin/node is 18); gobgpd and kill are Debian's.
        expect(
          [DEBIAN_PROGRAMS.includes(program ?? ''), program?.startsWith('/opt/l4fleet/')],
          `${u} ${key}`,
        ).toContain(true);
        for (const p of [program, script].filter((x): x is string => x?.startsWith('/') === true)) {
          const where = p.startsWith('/opt/l4fleet/') ? join(dest, p) : p;
          expect(existsSync(where), `${u} ${key}: ${p}`).toBe(true);
        }
      }
    }
  });

  test('a second run (an upgrade) replaces /opt/l4fleet and keeps an edited /etc/l4fleet file', async () => {
    const edited = '# edited by the operator\n';
    writeFileSync(join(dest, 'etc/l4fleet/agent.yaml'), edited);
    writeFileSync(join(opt(), 'stale-file'), 'x');
    await install();
    expect(readFileSync(join(dest, 'etc/l4fleet/agent.yaml'), 'utf8')).toBe(edited);
    expect(existsSync(join(opt(), 'stale-file'))).toBe(false);
    expect(readdirSync(join(dest, 'opt')).sort()).toEqual(['l4fleet']);
  }, 180_000);
});
