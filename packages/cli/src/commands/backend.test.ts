/** `l4fleet backend setup | teardown | status`: what is refused before the host is read. */
import { describe, expect, test } from 'vitest';
import { type CliIo, EXIT_USAGE } from '../io.js';
import { runCli } from '../program.js';
import { printSetup } from './backend.js';

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
