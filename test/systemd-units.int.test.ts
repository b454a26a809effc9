/**
 * deploy/systemd/l4fleet-gobgpd.service's gobgpd, started as the unit starts it (its ExecStart; DynamicUser as an
 * unprivileged user with only the unit's AmbientCapabilities, through setpriv), in a network namespace: it takes
 * the global config of deploy/examples/agent.yaml's node (listen on port 179 at the node's address, so the router
 * can dial it) and listens there. The agent's unit reaches a bfdd run as FRR runs it (user frr, vty socket of group
 * frrvty) with vtysh, as the agent does with bfd.enabled. The agent's data planes under its unit are test/agent-bpf's
 * and test/agent-unit-caps'; the backend's unit is test/backend-host's. Root only, else skipped; under the ns lock.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { frrDaemonArgv, prepareBfddDir } from '@l4fleet/daemons';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { expandCommand, setprivAsUnit, unitFile, unitValue } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..');

interface ExampleBgp {
  readonly asn: number;
  readonly routerId: string;
  readonly listenPort: number;
  readonly listenAddresses: string[];
}

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
