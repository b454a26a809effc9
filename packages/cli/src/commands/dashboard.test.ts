/**
 * `l4fleet dashboard`: the NATS login flags and the write token reach startDashboard; a --nats URL with userinfo is a
 * usage error, as is a bad --listen (named as typed); a file flag naming a file that is not what it should be is exit 1
 * before anything starts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LISTEN_ADDRESS_FORM } from '@l4fleet/config';
import type { DashboardOptions } from '@l4fleet/dashboard';
import { MemoryFleetStore } from '@l4fleet/store';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { CliIo } from '../io.js';
import { writeTestPem } from '../pem.test-helper.js';
import { runCli } from '../program.js';

/** startDashboard as a recorder that refuses to start, so the command ends (it would serve until a signal). */
const started = vi.hoisted(() => ({ calls: [] as unknown[] }));
vi.mock('@l4fleet/dashboard', async (importOriginal) => {
  const real = await importOriginal<typeof import('@l4fleet/dashboard')>();
  return {
    ...real,
    startDashboard: async (opts: unknown) => {
      started.calls.push(opts);
      throw new real.DashboardError('OPTION_INVALID', 'recorded, not started');
    },
  };
});

async function dashboard(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(['dashboard', '--listen', '127.0.0.1:0', ...argv], io, {
    openStore: () => new MemoryFleetStore(),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cli dashboard - a secured NATS for the timeline', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-dashboard-'));
    started.calls.length = 0;
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });
  const nats = () => (started.calls[0] as DashboardOptions | undefined)?.nats;

  test('--nats-token-file and --nats-ca reach startDashboard', async () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'nats-token-of-the-fleet\n');
    const ca = writeTestPem(dir).cert;
    const r = await dashboard('--nats', 'tls://198.19.0.2:4222', '--nats-token-file', token, '--nats-ca', ca);
    expect(r.err).toBe('error: recorded, not started');
    expect(nats()).toMatchObject({
      servers: ['tls://198.19.0.2:4222'],
      auth: { token: 'nats-token-of-the-fleet', ca: readFileSync(ca, 'utf8') },
    });
  });

  test('--nats-user with L4FLEET_NATS_PASSWORD', async () => {
    vi.stubEnv('L4FLEET_NATS_PASSWORD', 'N3wS3cret');
    await dashboard('--nats', 'nats://127.0.0.1:4222', '--nats-user', 'ops');
    expect(nats()?.auth).toEqual({ user: 'ops', password: 'N3wS3cret' });
  });

  test('no --nats: no timeline, the login flags unused', async () => {
    await dashboard();
    expect(started.calls).toHaveLength(1);
    expect(nats()).toBeUndefined();
  });

  test.each([
    [
      ['--nats', 'nats://ops:N3wS3cret@198.19.0.2:4222'],
      '--nats: "nats://***@198.19.0.2:4222": a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)',
    ],
    [
      ['--nats', 'nats://127.0.0.1:4222', '--nats-user', 'ops'],
      '--nats-user: needs the password in L4FLEET_NATS_PASSWORD',
    ],
  ])('%j: usage error, not started, no secret shown', async (argv, message) => {
    const r = await dashboard(...argv);
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toBe(`error: ${message}`);
    expect(started.calls).toEqual([]);
  });

  test('--nats-ca that cannot be read: exit 1 naming the flag', async () => {
    const r = await dashboard('--nats', 'nats://127.0.0.1:4222', '--nats-ca', '/nonexistent/ca.pem');
    expect(r.code).toBe(1);
    expect(r.err).toBe('error: --nats-ca: "/nonexistent/ca.pem" cannot be read (ENOENT)');
    expect(started.calls).toEqual([]);
  });

  // nats.js skips an empty `ca`: the timeline's NATS login (its token) went to any publicly trusted server.
  test.each([
    ['', 'is empty'],
    ['PEM\n', 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)'],
  ])('--nats-ca holding %j: exit 1 naming the flag and the file, not started', async (text, why) => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, text);
    const r = await dashboard('--nats', 'tls://198.19.0.2:4222', '--nats-ca', ca);
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toBe(`error: --nats-ca: "${ca}" ${why}`);
    expect(started.calls).toEqual([]);
  });
});

describe('cli dashboard - the write token', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-dashboard-'));
    started.calls.length = 0;
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });
  const token = () => (started.calls[0] as DashboardOptions | undefined)?.token;

  test('--token-file: its content, trimmed, reaches startDashboard', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'dashboard-token-of-the-fleet\n');
    await dashboard('--token-file', file);
    expect(token()).toBe('dashboard-token-of-the-fleet');
  });

  // The operator asked for writes: an empty or blank file (a failed provisioning, a truncated copy) served the page
  // read-only without a word. Refused as an empty --nats-token-file is (one reader for both).
  test.each(['', '\n', ' \t\n'])(
    '--token-file of %j: exit 1 naming the flag and the file, not started',
    async (text) => {
      const file = join(dir, 'token');
      writeFileSync(file, text);
      const r = await dashboard('--token-file', file);
      expect(r).toMatchObject({ code: 1, out: '' });
      expect(r.err).toBe(`error: --token-file: ${file} is empty`);
      expect(started.calls).toEqual([]);
    },
  );

  test('an empty L4FLEET_DASHBOARD_TOKEN: read-only, as documented (no token)', async () => {
    vi.stubEnv('L4FLEET_DASHBOARD_TOKEN', '');
    await dashboard();
    expect(started.calls).toHaveLength(1);
    expect(token()).toBeUndefined();
  });

  test('L4FLEET_DASHBOARD_TOKEN gives the token', async () => {
    vi.stubEnv('L4FLEET_DASHBOARD_TOKEN', 'dashboard-token-of-the-fleet');
    await dashboard();
    expect(token()).toBe('dashboard-token-of-the-fleet');
  });
});

// The README says a bad listen address is refused naming the flag: the command said `error: listen: ...`, the
// library's option name, which is not what the operator typed.
describe('cli dashboard - --listen', () => {
  beforeEach(() => {
    started.calls.length = 0;
  });

  test.each(['[fe80::1%eth0]:9470', 'dashboard.example:9470', '127.1:9470', '127.0.0.1'])(
    '--listen %j: usage error naming the flag and the value, not started',
    async (listen) => {
      const err: string[] = [];
      const io: CliIo = { out: () => undefined, err: (t) => err.push(t) };
      const code = await runCli(['dashboard', '--listen', listen], io, { openStore: () => new MemoryFleetStore() });
      expect(code).toBe(2);
      expect(err.join('\n')).toBe(`error: --listen: ${JSON.stringify(listen)} is not ${LISTEN_ADDRESS_FORM}`);
      expect(started.calls).toEqual([]);
    },
  );
});

// pino handed an unknown level failed after the store opened, in its own words ("default level:bogus must be
// included in custom levels"), exit 1, the flag never named; every other level setting is a usage error.
describe('cli dashboard - --log-level', () => {
  beforeEach(() => {
    started.calls.length = 0;
  });

  test.each(['bogus', '', 'INFO'])(
    '--log-level %j: usage error naming the flag and the value, store never opened',
    async (level) => {
      const err: string[] = [];
      const io: CliIo = { out: () => undefined, err: (t) => err.push(t) };
      const openStore = vi.fn(() => new MemoryFleetStore());
      const code = await runCli(['dashboard', '--listen', '127.0.0.1:0', '--log-level', level], io, { openStore });
      expect(code).toBe(2);
      expect(err.join('\n')).toBe(
        `error: --log-level: ${JSON.stringify(level)} is not one of fatal, error, warn, info, debug, trace, silent`,
      );
      expect(openStore).not.toHaveBeenCalled();
      expect(started.calls).toEqual([]);
    },
  );

  test('--log-level debug: accepted, handed on', async () => {
    const { code, err } = await dashboard('--log-level', 'debug');
    expect(err).toBe('error: recorded, not started');
    expect(code).toBe(2);
    expect(started.calls).toHaveLength(1);
    expect((started.calls[0] as DashboardOptions).logger.level).toBe('debug');
  });
});
