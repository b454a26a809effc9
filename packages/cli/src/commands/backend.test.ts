/** `l4fleet backend setup | teardown | status`: what is refused before the host is read. */
import { type BackendHostDeps, DEFAULT_BPFFS_DIR, DEFAULT_STATE_DIR } from '@l4fleet/dataplane';
import { describe, expect, test, vi } from 'vitest';
import { type CliIo, EXIT_USAGE } from '../io.js';
import { runCli } from '../program.js';
import { printSetup } from './backend.js';

// While capturing, teardown and status do not touch the host: they keep the deps the command built. Otherwise the
// real ones run (they refuse a relative directory before reading the host).
const host = vi.hoisted(() => ({ capture: false, calls: [] as { op: string; deps: unknown }[] }));
vi.mock('@l4fleet/dataplane', async (importOriginal) => {
  const real = await importOriginal<typeof import('@l4fleet/dataplane')>();
  return {
    ...real,
    teardownBackend: async (deps: BackendHostDeps) => {
      if (!host.capture) return real.teardownBackend(deps);
      host.calls.push({ op: 'teardown', deps });
      return { wasSetUp: false, recordPath: 'x', changes: [], leftAlone: [] };
    },
    backendStatus: async (deps: BackendHostDeps) => {
      if (!host.capture) return real.backendStatus(deps);
      host.calls.push({ op: 'status', deps });
      return {};
    },
  };
});

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const SETUP = ['backend', 'setup', '--vip', '198.51.100.7', '--nodes', '198.18.0.2', '--forwarding', 'gue'];

describe('cli - backend host directories', () => {
  // A relative directory names another one from another working directory: teardown found no record there and
  // said "nothing to tear down"; the record kept a relative bpffs that teardown removed pins under.
  test.each([
    [['backend', 'teardown', '--state-dir', 'run/l4fleet'], '--state-dir "run/l4fleet": not an absolute path'],
    [['backend', 'status', '--state-dir', '.'], '--state-dir ".": not an absolute path'],
    [[...SETUP, '--bpffs', 'sys/fs/bpf'], '--bpffs "sys/fs/bpf": not an absolute path'],
    [[...SETUP, '--state-dir', 'state'], '--state-dir "state": not an absolute path'],
  ])('%j is a usage error naming the flag', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.err).toContain(message);
  });
});

// commander keeps the last of a repeated option: setup was made on the second --interface (or object, port,
// directory) silently, while the README says an option naming one file given twice is refused.
describe('cli - backend options given twice', () => {
  test.each([
    [
      [...SETUP, '--object', '/a/backend.bpf.o', '--object', '/b/backend.bpf.o'],
      '--object',
      '/a/backend.bpf.o',
      '/b/backend.bpf.o',
    ],
    [[...SETUP, '--state-dir', '/run/a', '--state-dir', '/run/b'], '--state-dir', '/run/a', '/run/b'],
    [[...SETUP, '--bpffs', '/sys/fs/bpf', '--bpffs', '/mnt/bpf'], '--bpffs', '/sys/fs/bpf', '/mnt/bpf'],
    [[...SETUP, '--interface', 'eth0', '--interface', 'eth1'], '--interface', 'eth0', 'eth1'],
    [[...SETUP, '--gue-port', '6080', '--gue-port', '6081'], '--gue-port', '6080', '6081'],
    [['backend', 'teardown', '--state-dir', '/run/a', '--state-dir', '/run/b'], '--state-dir', '/run/a', '/run/b'],
    [['backend', 'teardown', '--bpffs', '/sys/fs/bpf', '--bpffs', '/mnt/bpf'], '--bpffs', '/sys/fs/bpf', '/mnt/bpf'],
    [['backend', 'status', '--state-dir', '/run/a', '--state-dir', '/run/b'], '--state-dir', '/run/a', '/run/b'],
    [['backend', 'status', '--bpffs', '/sys/fs/bpf', '--bpffs', '/mnt/bpf'], '--bpffs', '/sys/fs/bpf', '/mnt/bpf'],
  ])('%j is a usage error naming %s and both values', async (argv, flag, first, second) => {
    const r = await cli(...argv);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.err).toBe(
      `error: ${flag}: given twice (${JSON.stringify(first)}, then ${JSON.stringify(second)}); give it once`,
    );
  });

  // The defaults are applied by the command, not by commander (a commander default reaches the parser as a first
  // value): the help still names them.
  test.each(['setup', 'teardown', 'status'])('backend %s --help names the default directories', async (sub) => {
    const r = await cli('backend', sub, '--help');
    expect(r.code).toBe(0);
    const help = r.out.replace(/\s+/g, ' '); // commander wraps the descriptions
    expect(help).toContain('(default: "/sys/fs/bpf")');
    expect(help).toContain('(default: "/run/l4fleet")');
  });
});

describe('cli - backend default directories', () => {
  // Without --state-dir / --bpffs the command applies the defaults itself (commander has none for them): a missing
  // default would hand the host code undefined directories.
  test.each(['teardown', 'status'])('backend %s without directory flags uses the defaults', async (sub) => {
    host.calls.length = 0;
    host.capture = true;
    const r = await cli('backend', sub, '-o', 'json').finally(() => {
      host.capture = false;
    });
    expect(r.code).toBe(0);
    expect(host.calls).toHaveLength(1);
    const deps = host.calls[0]?.deps as BackendHostDeps;
    expect(host.calls[0]?.op).toBe(sub);
    expect(deps.stateDir).toBe(DEFAULT_STATE_DIR);
    expect(deps.bpffs).toBe(DEFAULT_BPFFS_DIR);
  });
});

describe('cli - backend setup text report', () => {
  // setup's prune warnings (a previous program generation left) were only in -o json; text printed none.
  test('a warning of the report goes to stderr as "warning: ...", the changes to stdout', () => {
    const out: string[] = [];
    const err: string[] = [];
    printSetup(
      {
        interface: 'eth0',
        recordPath: '/run/l4fleet/backend.json',
        pinDir: '/sys/fs/bpf/l4fleet-backend/v3',
        progId: 7,
        changes: [{ what: 'vip', detail: '198.51.100.7/32 on lo' }],
        warnings: ['previous generation /sys/fs/bpf/l4fleet-backend/v2 not removed: rm -rf: exit 1: busy'],
      },
      { out: (t) => out.push(t), err: (t) => err.push(t) },
    );
    expect(out.join('\n')).toContain('198.51.100.7/32 on lo');
    expect(err).toEqual([
      'warning: previous generation /sys/fs/bpf/l4fleet-backend/v2 not removed: rm -rf: exit 1: busy',
    ]);
  });
});
