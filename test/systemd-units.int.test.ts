/**
 * deploy/systemd/l4fleet-gobgpd.service's gobgpd, started as the unit starts it (its ExecStart; DynamicUser as an
 * unprivileged user with only the unit's AmbientCapabilities, through setpriv), in a network namespace: it takes
 * the global config of deploy/examples/agent.yaml's node (listen on port 179 at the node's address, so the router
 * can dial it) and listens there. The agent's unit reaches a bfdd run as FRR runs it (user frr, vty socket of group
 * frrvty) with vtysh, as the agent does with bfd.enabled. The agent's data planes under its unit are test/agent-bpf's
 * and test/agent-unit-caps'; the backend's unit is test/backend-host's. The dashboard's unit runs with
 * deploy/examples/dashboard.env, started before etcd as at boot. Root only, else skipped; under the ns lock.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdEnv, frrDaemonArgv, prepareBfddDir, singleMemberFlags } from '@l4fleet/daemons';
import { type Child, spawnChild } from '@l4fleet/process';
import { eventually } from '@l4fleet/test-support/eventually';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { environmentFile, expandCommand, setprivAsUnit, unitFile, unitValue } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..');

interface ExampleBgp {
  readonly asn: number;
  readonly routerId: string;
  readonly listenPort: number;
  readonly listenAddresses: string[];
}

// What systemd does around the agent's own handling, read from the unit (no systemd here to run it).
describe('systemd units - l4fleet-agent.service stop, reload and restart', () => {
  const unit = unitFile('l4fleet-agent.service');

  test('stop signals the agent alone: it drains through its helpers (bpf loader, nft batch), then closes them', () => {
    // control-group (the default) sent SIGTERM to the helpers too: the drain's table changes failed
    // (BPF_LOADER_LOST) and BFD's AdminDown cut RFC 8326's graceful shutdown short. mixed: SIGTERM to the main
    // process only; whatever is left after it (or at TimeoutStopSec) gets SIGKILL.
    expect(unitValue(unit, 'KillMode')).toBe('mixed');
  });

  test("starts after FRR, so --check (ExecStartPre) finds bfdd's vty socket at boot with bfd.enabled", () => {
    expect(unitValue(unit, 'After').split(/\s+/)).toContain('frr.service');
    expect(unitValue(unit, 'ExecStartPre')).toMatch(/ agent --config \/etc\/l4fleet\/agent.yaml --check$/);
  });

  test('an agent a SIGHUP ended is restarted (Restart=on-failure counts a SIGHUP death as clean)', () => {
    // bin.ts holds SIGHUP from its first line; this covers the few ms before it runs.
    expect(unitValue(unit, 'Restart')).toBe('on-failure');
    expect(unitValue(unit, 'RestartForceExitStatus').split(/\s+/)).toContain('SIGHUP');
  });
});

describe.skipIf(process.getuid?.() !== 0)('systemd units - l4fleet-gobgpd.service', () => {
  let lab: NetnsLab;
  let node: NetnsHost;
  const bgp = (parse(readFileSync(join(ROOT, 'deploy/examples/agent.yaml'), 'utf8')) as { bgp: ExampleBgp }).bgp;

  beforeAll(async () => {
    lab = await createNetnsLab('l4su');
    node = await lab.host('node');
    for (const a of bgp.listenAddresses) await node.addr('lo', `${a}/32`);
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  test("gobgpd as the unit runs it listens on port 179 of the example node's address", async () => {
    const unit = unitFile('l4fleet-gobgpd.service');
    const argv = expandCommand(unitValue(unit, 'ExecStart'), new Map());
    expect(argv[0]).toBe('/usr/bin/gobgpd');
    const gobgpd = node.spawn([...setprivAsUnit(unit), ...argv]);
    let log = '';
    gobgpd.stdout?.on('data', (b: Buffer) => (log += b.toString()));
    gobgpd.stderr?.on('data', (b: Buffer) => (log += b.toString()));
    try {
      expect(bgp.listenPort).toBe(179);
      const global = ['global', 'as', String(bgp.asn), 'router-id', bgp.routerId, 'listen-port', '179'];
      global.push('listen-addresses', ...bgp.listenAddresses);
      // Bounded: 10 s, every 200 ms, until its API answers and takes the config.
      let r = await node.run(['gobgp', ...global], { allowFailure: true });
      const unanswered = () => r.code !== 0 && /connect|Unavailable|deadline exceeded/i.test(r.stdout + r.stderr);
      for (let i = 0; i < 50 && unanswered(); i++) {
        await new Promise((res) => setTimeout(res, 200));
        r = await node.run(['gobgp', ...global], { allowFailure: true });
      }
      expect(r.code, `${r.stdout}${r.stderr}\n${log}`).toBe(0);
      const listening = await node.run(['ss', '-Hltn', 'sport', '=', ':179']);
      expect(listening.stdout).toContain(`${bgp.listenAddresses[0]}:179`);
    } finally {
      gobgpd.kill('SIGTERM');
      await new Promise((res) => (gobgpd.exitCode !== null ? res(undefined) : gobgpd.once('exit', res)));
    }
  }, 30_000);

  test("the agent as its unit runs it (root, the unit's capabilities and groups) reaches the node's bfdd over vtysh", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-unit-bfdd-'));
    const paths = prepareBfddDir(dir, { hostname: 'unit' });
    const bfdd = node.spawn(frrDaemonArgv('bfdd', paths));
    try {
      const argv = [...setprivAsUnit(unitFile('l4fleet-agent.service')), 'vtysh', '--vty_socket', paths.vtyDir];
      argv.push('-c', 'show bfd peers json');
      // Bounded: 10 s, every 200 ms, until bfdd's vty socket is there and answers.
      let r = await node.run(argv, { allowFailure: true });
      for (let i = 0; i < 50 && r.code !== 0 && /failed to connect|No such file/i.test(r.stdout + r.stderr); i++) {
        await new Promise((res) => setTimeout(res, 200));
        r = await node.run(argv, { allowFailure: true });
      }
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
    } finally {
      bfdd.kill('SIGTERM');
      await new Promise((res) => (bfdd.exitCode !== null ? res(undefined) : bfdd.once('exit', res)));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

/** systemd's environment for a service: its default PATH and the EnvironmentFile's variables, nothing inherited. */
const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'l4fleet.js');

interface DashboardState {
  readonly writes: boolean;
  readonly view: {
    readonly problems: string[];
    readonly vips: { key: string }[];
    readonly etcd: { watching: boolean };
  };
}

describe.skipIf(process.getuid?.() !== 0)('systemd units - l4fleet-dashboard.service', () => {
  let lab: NetnsLab;
  let host: NetnsHost;
  const env = environmentFile(readFileSync(join(ROOT, 'deploy/examples/dashboard.env'), 'utf8'));
  const listen = /--listen (\S+)/.exec(env.get('L4FLEET_DASHBOARD_FLAGS') ?? '')?.[1] ?? '';
  const etcdUrl = (env.get('L4FLEET_ETCD') ?? '').split(',')[0] ?? '';

  beforeAll(async () => {
    lab = await createNetnsLab('l4sd');
    host = await lab.host('mgmt');
    await host.addr('lo', `${new URL(etcdUrl).hostname}/32`);
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  /** GET /api/state from inside the namespace. */
  const state = async (): Promise<DashboardState> => {
    const script = `fetch('http://${listen}/api/state').then((r) => r.text()).then((t) => process.stdout.write(t))`;
    return JSON.parse((await host.run([process.execPath, '-e', script])).stdout) as DashboardState;
  };

  test('started before etcd with the example file and no capabilities: serves, says nothing was read, shows the fleet once etcd answers', async () => {
    expect(listen).toMatch(/^198\.19\.0\.2:9470$/);
    const unit = unitFile('l4fleet-dashboard.service');
    const argv = expandCommand(unitValue(unit, 'ExecStart'), env);
    expect(argv.slice(0, 3)).toEqual(['/opt/l4fleet/bin/node', '/opt/l4fleet/packages/cli/dist/bin.js', 'dashboard']);
    // This checkout's node and CLI stand in for /opt/l4fleet's (scripts/install.sh copies exactly these).
    const command = [
      ...setprivAsUnit(unit),
      process.execPath,
      join(ROOT, 'packages/cli/dist/bin.js'),
      ...argv.slice(2),
    ];
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-unit-dash-'));
    const children: Child[] = [];
    try {
      const dashboard = spawnChild(command, {
        namespace: host.ns,
        env: { PATH: SERVICE_PATH, ...Object.fromEntries(env) },
      });
      children.push(dashboard);
      const down = await eventually(
        'the dashboard serves while etcd is down',
        () => state().catch(() => undefined),
        (s) => s?.view.problems[0]?.endsWith('nothing read from it yet') === true,
        20_000,
        250,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${dashboard.log()}`);
      });
      expect(down?.writes).toBe(false); // the example's token is empty: read-only
      expect(down?.view.etcd.watching).toBe(false);
      // No capability at all (root for the key files only), as CapabilityBoundingSet= gives it.
      const status = readFileSync(`/proc/${dashboard.process.pid}/status`, 'utf8');
      expect(/^CapEff:\s+(\S+)$/m.exec(status)?.[1]).toBe('0000000000000000');
      expect(/^CapBnd:\s+(\S+)$/m.exec(status)?.[1]).toBe('0000000000000000');

      const peerUrl = `http://${new URL(etcdUrl).hostname}:2380`;
      const flags = singleMemberFlags({
        dataDir: join(dir, 'etcd'),
        listenClientUrl: etcdUrl,
        advertiseClientUrl: etcdUrl,
        peerUrl,
      });
      children.push(spawnChild(['/usr/bin/etcd', ...flags], { namespace: host.ns, env: etcdEnv() }));
      const apply = [process.execPath, BIN, '--etcd', etcdUrl, 'apply', '--new-fleet', '-f'];
      apply.push(join(ROOT, 'deploy/examples/lab-fleet.yaml'));
      await eventually(
        'etcd answers, fleet applied',
        () => host.run(apply, { allowFailure: true }),
        (r) => r.code === 0,
        30_000,
        250,
      );
      const up = await eventually(
        'the dashboard shows the fleet',
        state,
        (s) => s.view.etcd.watching && s.view.vips.length > 0 && s.view.problems.length === 0,
        30_000,
        250,
      );
      expect(up.view.vips.map((v) => v.key)).toContain('198.51.100.10:80/tcp');
      await dashboard.stop('SIGTERM', 5_000);
      expect(dashboard.process.exitCode).toBe(0);
    } finally {
      for (const c of children.reverse()) await c.stop('SIGTERM', 5_000).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(process.getuid?.() !== 0)('systemd units - l4fleet-backend-agent.service', () => {
  let lab: NetnsLab;
  let host: NetnsHost;
  const env = environmentFile(readFileSync(join(ROOT, 'deploy/examples/backend-agent.env'), 'utf8'));

  beforeAll(async () => {
    lab = await createNetnsLab('l4ba');
    host = await lab.host('backend');
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  test("as the unit runs it (a dynamic user, no capabilities): answers the node probe with the state file's state", async () => {
    const unit = unitFile('l4fleet-backend-agent.service');
    const argv = expandCommand(unitValue(unit, 'ExecStart'), env);
    expect(argv.slice(0, 5)).toEqual([
      '/opt/l4fleet/bin/node',
      '/opt/l4fleet/packages/cli/dist/bin.js',
      'backend',
      'agent',
      '--listen',
    ]);
    expect(argv.slice(5)).toEqual(['[::]:9777', '--state-file', '/var/lib/l4fleet/backend-state']);
    // The state file in a directory of the test's (the host's /var/lib stays untouched). `dir` stands for /var (0755);
    // lib/l4fleet below it is made by `backend state`, under umask 027 as on hardened hosts, and must still be
    // readable by the unit's user.
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-unit-agent-'));
    chmodSync(dir, 0o755);
    const stateFile = join(dir, 'lib', 'l4fleet', 'backend-state');
    const command = [
      ...setprivAsUnit(unit),
      process.execPath,
      join(ROOT, 'packages/cli/dist/bin.js'),
      ...argv.slice(2, -1),
      stateFile,
    ];
    const probe = (
      address: string,
    ) => `import('${join(ROOT, 'packages/agent/dist/index.js')}').then(({ probeMember }) => probeMember(
      { address: '${address}', port: 80 },
      { type: 'agent', port: 9777, intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1 },
    )).then((r) => process.stdout.write(JSON.stringify(r)))`;
    const ask = async (address = '127.0.0.1') =>
      JSON.parse((await host.run([process.execPath, '-e', probe(address)])).stdout) as { ok: boolean; reason?: string };
    const agent = spawnChild(command, { namespace: host.ns, env: { PATH: SERVICE_PATH, ...Object.fromEntries(env) } });
    try {
      await host.run(['ip', 'link', 'set', 'lo', 'up']);
      const first = await eventually(
        'the agent answers',
        () => ask().catch(() => undefined),
        (r) => r?.ok === true,
        20_000,
        250,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${agent.log()}`);
      });
      expect(first).toMatchObject({ ok: true });
      const status = readFileSync(`/proc/${agent.process.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('65534');
      expect(/^CapEff:\s+(\S+)$/m.exec(status)?.[1]).toBe('0000000000000000');
      // root writes the state (`l4fleet backend state`), the unit's user reads it at the next probe.
      // A member the fleet names by its IPv6 address is probed there: the default [::] answers both families.
      expect(await ask('::1')).toMatchObject({ ok: true });
      const stateCmd = [process.execPath, BIN, 'backend', 'state', 'maint', '--reason', 'disk swap'];
      const set = await host.run(['sh', '-c', 'umask 027 && exec "$@"', 'sh', ...stateCmd, '--state-file', stateFile]);
      expect(set.stdout).toContain('ready -> maint # disk swap');
      for (const address of ['127.0.0.1', '::1']) {
        expect(await ask(address)).toEqual(
          expect.objectContaining({ ok: false, reason: 'agent says maint: disk swap' }),
        );
      }
      await agent.stop('SIGTERM', 5_000);
      expect(agent.process.exitCode).toBe(0);
    } finally {
      await agent.stop('SIGKILL', 5_000).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
