/**
 * deploy/systemd/l4fleet-gobgpd.service's gobgpd, started as the unit starts it (its ExecStart; DynamicUser as an
 * unprivileged user with only the unit's AmbientCapabilities, through setpriv), in a network namespace: it takes
 * the global config of deploy/examples/agent.yaml's node (listen on port 179 at the node's address, so the router
 * can dial it) and listens there. The agent's own unit is run by test/agent-bpf and test/agent-unit-caps; the
 * backend's by test/backend-host. Root only, else skipped; under the ns lock.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
});
