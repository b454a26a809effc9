/** The real host adapter of `--check`, against this machine (read-only: it creates nothing). */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { AgentError } from '../errors.js';
import { readUnitStopTimeout, type SystemctlRun, systemHost } from './host.js';
import { parseAgentConfig } from './parse.js';
import { preflightProblems } from './preflight.js';
import { MAX_TLS_FILE_BYTES, readHealthCa, readTlsFiles } from './tls-files.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const host = systemHost();

describe('host facts - this machine', () => {
  test('interfaces and local addresses', () => {
    expect(host.hasInterface('lo')).toBe(true);
    expect(host.hasInterface('l4f-none0')).toBe(false);
    expect(host.hasInterface('../lo')).toBe(false);
    // Directories under /sys/class/net that are no interface (parse refuses them too; --check must not pass them).
    expect(host.hasInterface('.')).toBe(false);
    expect(host.hasInterface('..')).toBe(false);
    expect(host.isLocalAddress('127.0.0.1')).toBe(true);
    expect(host.isLocalAddress('198.51.100.254')).toBe(false);
  });

  test('files, directories and programs', () => {
    const f = join(dir, 'ca.pem');
    writeFileSync(f, 'x');
    expect(host.canRead(f, 'etcd.tls.key')).toBe(true);
    expect(host.canRead(dir, 'etcd.tls.key')).toBe('is not a regular file'); // a directory is not a PEM file
    expect(host.canRead(join(dir, 'missing.pem'), 'etcd.tls.key')).toBe('cannot be read (ENOENT)');
    expect(host.canWriteDir(join(dir, 'state', 'sub'))).toBe(true); // creatable below a writable directory
    expect(host.canWriteDir(f)).toBe(false); // a file where the directory should be
    expect(host.canWriteDir(join(f, 'state'))).toBe(false); // below a file: can never be created
    expect(host.onPath('sh')).toBe(true);
    expect(host.onPath('l4fleet-no-such-program')).toBe(false);
  });

  // canRead passed what the start refuses (access(2) R_OK, no directory): `--check`, run by the unit before every
  // start, said OK and the start failed. It now reads the file as the start does (tls-files.ts), in its words.
  test('TLS files: --check refuses what the start refuses, in the same words', () => {
    const empty = join(dir, 'empty.pem');
    writeFileSync(empty, '');
    const fifo = join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    const huge = join(dir, 'huge.pem');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_TLS_FILE_BYTES + 1);
    const config = parseAgentConfig({
      node: { name: 'n1', interface: 'lo', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
      etcd: { endpoints: ['https://127.0.0.1:2379'], tls: { ca: fifo, cert: '/dev/zero', key: huge } },
      nats: { servers: ['tls://127.0.0.1:4222'], tls: { ca: empty } },
      health: { caFile: empty },
      state: { enabled: false },
      dataplane: { driver: 'dry-run' },
    });
    const problems = preflightProblems(config, host).filter((p) => /tls|caFile/.test(p.path));
    const startSays = (read: () => unknown) => {
      try {
        read();
      } catch (err) {
        return (err as AgentError).problems;
      }
      return [];
    };
    expect(problems).toEqual([
      ...startSays(() => readTlsFiles('etcd', { ca: fifo })),
      ...startSays(() => readTlsFiles('etcd', { cert: '/dev/zero' })),
      ...startSays(() => readTlsFiles('etcd', { key: huge })),
      ...startSays(() => readTlsFiles('nats', { ca: empty })),
      ...startSays(() => readHealthCa(empty)),
    ]);
    expect(problems.map((p) => p.message)).toEqual([
      `"${fifo}" is not a regular file`,
      '"/dev/zero" is not a regular file',
      `"${huge}" is ${MAX_TLS_FILE_BYTES + 1} bytes, more than ${MAX_TLS_FILE_BYTES} (MAX_TLS_FILE_BYTES)`,
      `"${empty}" is empty`,
      `"${empty}" is empty`,
    ]);
  });

  test.runIf(process.getuid?.() === 0)('root holds CAP_NET_ADMIN and CAP_SYS_ADMIN', () => {
    expect(host.hasNetAdmin()).toBe(true);
    expect(host.hasSysAdmin()).toBe(true);
  });

  test('a Unix socket (bfdd.vty) and a bpffs are told from other files', async () => {
    const path = join(dir, 'bfdd.vty');
    const server = createServer();
    await new Promise<void>((r) => server.listen(path, r));
    try {
      expect(host.isSocket(path)).toBe(true);
      expect(host.isSocket(dir)).toBe(false);
      expect(host.isSocket(join(dir, 'none.vty'))).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(host.isBpffs(dir)).toBe(false); // tmpfs or the root file system
    expect(host.isBpffs(join(dir, 'missing'))).toBe(false);
  });

  test('a bpffsPath the start would refuse is told in its words: /, a non-empty directory; a missing one is not', () => {
    expect(host.bpffsPathProblem('/')).toBe(
      '"/" is the root directory: a bpffs mounted there would hide the whole filesystem',
    );
    const full = join(dir, 'full');
    mkdirSync(full, { recursive: true });
    writeFileSync(join(full, 'keep'), 'x');
    expect(host.bpffsPathProblem(full)).toBe(
      `"${full}" is a non-empty directory (keep) and not a bpffs: a bpffs mounted there would hide its files`,
    );
    expect(host.bpffsPathProblem(join(dir, 'missing'))).toBeUndefined();
  });
});

describe('host facts - the unit stop timeout in force', () => {
  const ran = (r: Partial<SystemctlRun>) => {
    const asked: (readonly string[])[] = [];
    const got = readUnitStopTimeout((args) => {
      asked.push(args);
      return { status: 0, stdout: '', stderr: '', ...r };
    });
    return { got, asked };
  };

  test('a loaded unit: its TimeoutStopUSec as printed, asked of l4fleet-agent.service with LoadState', () => {
    const { got, asked } = ran({ stdout: 'LoadState=loaded\nTimeoutStopUSec=18s\n' });
    expect(got).toEqual({ shown: '18s' });
    expect(asked).toEqual([['show', '-p', 'LoadState', '-p', 'TimeoutStopUSec', 'l4fleet-agent.service']]);
    // The order systemctl prints them in is not the order asked.
    expect(ran({ stdout: 'TimeoutStopUSec=1min 30s\nLoadState=loaded\n' }).got).toEqual({ shown: '1min 30s' });
  });

  test.each([
    [
      'a unit systemd does not know (it still prints the default timeout)',
      { stdout: 'LoadState=not-found\nTimeoutStopUSec=1min 30s\n' },
      'l4fleet-agent.service is not loaded (LoadState=not-found)',
    ],
    [
      'no systemd as PID 1',
      {
        status: 1,
        stderr:
          "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
      },
      "systemctl show failed: System has not been booted with systemd as init system (PID 1). Can't operate.",
    ],
    [
      'no systemctl',
      { status: null, error: Object.assign(new Error('spawnSync systemctl ENOENT'), { code: 'ENOENT' }) },
      'systemctl is not installed',
    ],
    [
      'systemctl stuck (killed at the timeout)',
      { status: null, error: Object.assign(new Error('spawnSync systemctl ETIMEDOUT'), { code: 'ETIMEDOUT' }) },
      'systemctl show did not answer within 5000 ms',
    ],
    ['no TimeoutStopUSec printed', { stdout: 'LoadState=loaded\n' }, 'systemctl show printed no TimeoutStopUSec'],
  ])('%s: unread, saying why', (_, r, why) => {
    expect(ran(r).got).toEqual({ unread: why });
  });

  // --check is the unit's ExecStartPre: a systemctl stuck on D-Bus must not hang every start. The real runner, with a
  // `systemctl` on PATH that sleeps past the bound and then would print nothing (an unbounded run reads "not loaded").
  test('the real runner: a systemctl that does not answer is killed at the bound, unread, and gone', () => {
    const bin = mkdtempSync(join(tmpdir(), 'l4fleet-systemctl-'));
    const pidFile = join(bin, 'pid');
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 8\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path ?? ''}`;
    try {
      expect(readUnitStopTimeout()).toEqual({ unread: 'systemctl show did not answer within 5000 ms' });
      const pid = Number(readFileSync(pidFile, 'utf8'));
      expect(() => process.kill(pid, 0), `stub systemctl ${pid} still running`).toThrow(/ESRCH/);
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
  }, 15_000);

  test('this machine: read or unread, never a throw', () => {
    const got = host.unitStopTimeout();
    expect('shown' in got || 'unread' in got).toBe(true);
  });
});
