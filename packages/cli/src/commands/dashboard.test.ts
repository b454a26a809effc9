/** `l4fleet dashboard`: the NATS login flags reach startDashboard; a --nats URL with userinfo is a usage error. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DashboardOptions } from '@l4fleet/dashboard';
import { MemoryFleetStore } from '@l4fleet/store';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { CliIo } from '../io.js';
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
    const ca = join(dir, 'ca.pem');
    writeFileSync(token, 'nats-token-of-the-fleet\n');
    writeFileSync(ca, 'PEM\n');
    const r = await dashboard('--nats', 'tls://198.19.0.2:4222', '--nats-token-file', token, '--nats-ca', ca);
    expect(r.err).toBe('error: recorded, not started');
    expect(nats()).toMatchObject({
      servers: ['tls://198.19.0.2:4222'],
      auth: { token: 'nats-token-of-the-fleet', ca: 'PEM\n' },
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
    expect(r.err).toBe(
      "error: --nats-ca: cannot read /nonexistent/ca.pem: ENOENT: no such file or directory, open '/nonexistent/ca.pem'",
    );
    expect(started.calls).toEqual([]);
  });
});
