/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core (headless), against real etcd and
 * NATS and two real agents (each with its own gobgpd, peering with a port that never answers; n1 forwards for
 * real with the userspace proxy on loopback, n2 runs the dry-run data plane). Backends are TCP echo servers on
 * loopback, health-checked by both agents.
 *
 * The list: the page lists the nodes and VIPs; a drain from the page reaches etcd and the node's state
 * changes on the page; a failed member shows as down; a write without the token is refused. The screenshot is
 * kept as a test artifact (reports/dashboard.png). The last test runs the real `l4fleet dashboard` command.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventFilter, parseAgentConfig, type RunningAgent, runAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { type GobgpdHandle, type NatsHandle, startGobgpd, startNats } from '@l4fleet/daemons';
import { type Dashboard, startDashboard } from '@l4fleet/dashboard';
import { createProxyDataPlane } from '@l4fleet/dataplane';
import { freePort } from '@l4fleet/process';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const TOKEN = 'dashboard-test-token-0123456789';
const FLEET = 'dash';
const VIP_ADDRESS = '198.51.100.30';
const INTERVAL_MS = 300;
const FALL = 2;
const root = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOT = join(root, 'reports', 'dashboard.png');

function echoServer(): Promise<Server> {
  const s = createServer((c) => c.pipe(c));
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}
const portOf = (s: Server) => (s.address() as AddressInfo).port;

/** One TCP round trip through the proxy (n1's data plane), so the charts have packets and flows to show. */
function roundTrip(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write('ping'));
    c.setTimeout(2_000, () => c.destroy(new Error('timeout')));
    c.once('data', () => c.end());
    c.once('close', () => resolve());
    c.once('error', reject);
  });
}

describe('dashboard in chromium against etcd, NATS and two agents', () => {
  let etcd: EtcdHandle;
  let nats: NatsHandle;
  let store: EtcdFleetStore;
  let dashboard: Dashboard;
  let context: BrowserContext;
  let page: Page;
  let profileDir = '';
  let stateDir = '';
  let vipPort = 0;
  let vipKey = '';
  const backends: Server[] = [];
  const gobgpds: GobgpdHandle[] = [];
  const agents: RunningAgent[] = [];
  const dialogs: string[] = [];

  beforeAll(async () => {
    profileDir = await mkdtemp(join(tmpdir(), 'l4fleet-chromium-'));
    stateDir = await mkdtemp(join(tmpdir(), 'l4fleet-dash-state-'));
    etcd = await startEtcd();
    nats = await startNats();
    for (let i = 0; i < 3; i++) backends.push(await echoServer());
    vipPort = await freePort();
    vipKey = `${VIP_ADDRESS}:${vipPort}/tcp`;
    store = new EtcdFleetStore({ endpoints: etcd.endpoints, logger });
    await store.apply(
      parseFleet({
        hashSeed: 0x5eed,
        pools: [
          {
            name: 'web',
            healthCheck: { type: 'tcp', intervalMs: INTERVAL_MS, timeoutMs: 200, rise: 1, fall: FALL },
            members: backends.map((b, i) => ({ name: `be${i + 1}`, address: '127.0.0.1', port: portOf(b) })),
          },
        ],
        vips: [{ address: VIP_ADDRESS, port: vipPort, protocol: 'tcp', pool: 'web', tableSize: 251 }],
      }),
    );
    const metricsTargets = new Map<string, string>();
    for (const name of ['n1', 'n2']) {
      const gobgpd = await startGobgpd({ name: `dash-${name}` });
      gobgpds.push(gobgpd);
      const config = parseAgentConfig({
        fleet: FLEET,
        node: { name, interface: 'lo', address: '127.0.0.1' },
        // A peer that never answers: the agents run their whole lifecycle; sessions show as not established.
        bgp: {
          asn: 65001,
          gobgpdAddress: gobgpd.apiAddress,
          peers: [{ address: '127.0.0.1', asn: 65000, port: await freePort() }],
        },
        etcd: { endpoints: etcd.endpoints, leaseTtlS: 5, dialTimeoutMs: 1_000 },
        nats: { servers: [nats.url] },
        metrics: { listen: '127.0.0.1:0' },
        dataplane: { driver: 'dry-run' },
        state: { dir: stateDir },
      });
      const running = await runAgent(config, {
        logger,
        ...(name === 'n1' ? { dataPlane: createProxyDataPlane({ logger, listenAddress: '127.0.0.1' }) } : {}),
      });
      agents.push(running);
      metricsTargets.set(name, `http://${running.metricsAddress}/metrics`);
    }
    await Promise.all(agents.map((a) => a.agent.whenReady(20_000)));
    dashboard = await startDashboard({
      store,
      logger,
      listen: '127.0.0.1:0',
      token: TOKEN,
      nats: { servers: [nats.url], subject: eventFilter('l4fleet', FLEET) },
      metricsTargets,
      scrapeIntervalMs: 500,
    });
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      void d.accept();
    });
    await page.goto(dashboard.url);
  }, 120_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await dashboard?.close().catch(() => undefined);
    for (const a of agents) await a.close().catch(() => undefined);
    for (const g of gobgpds) await g.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await nats?.stop().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    for (const b of backends) b.close();
    await rm(profileDir, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  }, 60_000);

  const cell = (row: string, field: string) => page.locator(`${row} td[data-field="${field}"]`);

  test('the page lists the nodes and the VIP, live, with matching table checksums and the table share', async () => {
    await page.locator('#live.on').waitFor({ timeout: 10_000 });
    await page.locator('tr[data-node="n1"]').waitFor({ timeout: 15_000 });
    await page.locator('tr[data-node="n2"]').waitFor();
    await page.locator(`#vips tr[data-vip="${vipKey}"]`).waitFor();
    // Both nodes report the checksum the fleet derives: no mismatch flagged.
    await eventually(
      'checksums shown',
      () => page.locator(`tr[data-node] div[data-vip="${vipKey}"]`).count(),
      (n) => n === 2,
      15_000,
    );
    expect(await page.locator('tr[data-node] .mismatch').count()).toBe(0);
    expect(await page.locator(`#vips tr[data-vip="${vipKey}"] .share span`).count()).toBe(3);
    // Traffic through n1's proxy shows up in its charts (the recorder scrapes every 500 ms).
    for (let i = 0; i < 20; i++) await roundTrip(vipPort);
    await page.locator('[data-chart="packetsPerNode"] .uplot').waitFor();
    expect(await page.locator('#writes').textContent()).toBe('writes enabled');
  }, 60_000);

  test('a drain from the page reaches etcd, and the node shows drained (its VIP withdrawn)', async () => {
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.click('tr[data-node="n1"] button[data-action="drain"]');
    await eventually(
      'n1 drained in etcd',
      () => store.listNodes(),
      (ns) => ns.find((n) => n.name === 'n1')?.drained === true,
      10_000,
    );
    await expect.poll(() => cell('tr[data-node="n1"]', 'drained').textContent(), { timeout: 10_000 }).toBe('drained');
    expect(await cell('tr[data-node="n2"]', 'drained').textContent()).toBe('no');
    await expect.poll(() => cell('tr[data-node="n1"]', 'announced').textContent(), { timeout: 10_000 }).toBe('');
    expect(await cell('tr[data-node="n2"]', 'announced').textContent()).toBe(vipKey);
    await expect.poll(() => cell('tr[data-node="n1"]', 'announced').textContent(), { timeout: 10_000 }).toBe('');
    expect(await cell('tr[data-node="n2"]', 'announced').textContent()).toBe(vipKey);
    expect(dialogs[0]).toMatch(/^confirm: drain node n1\?/);
    await page.locator('#timeline li.action.ok').first().waitFor();
    // The agent's own node.state event arrives over NATS into the timeline.
    await page.locator('#timeline li[data-kind="node.state"]').first().waitFor({ timeout: 10_000 });
  }, 30_000);

  test('a failed member shows as down (decided and per node); explain sends its flows elsewhere', async () => {
    await new Promise((r) => (backends[0] as Server).close(r));
    await expect
      .poll(() => cell('tr[data-member="web/be1"]', 'decided').textContent(), { timeout: INTERVAL_MS * FALL + 10_000 })
      .toBe('down');
    expect(await page.locator('tr[data-member="web/be1"] .badge.down').count()).toBeGreaterThanOrEqual(2);
    await page.fill('#explain input[name="src"]', '198.18.1.7');
    await page.fill('#explain input[name="sport"]', '40000');
    await page.selectOption('#explain select[name="vip"]', vipKey);
    await page.click('#explain button[type="submit"]');
    await expect.poll(() => page.locator('#explain-result').textContent()).toMatch(/slot: +\d+ of 251/);
    expect(await page.locator('#explain-result').textContent()).toMatch(
      /backend: +be[23] \(127\.0\.0\.1:\d+, pool web\)/,
    );
  }, 30_000);

  test('a write without the token is refused: the page says so, etcd is unchanged, the timeline records it', async () => {
    await page.fill('#token', '');
    await page.dispatchEvent('#token', 'change');
    await page.click('tr[data-node="n1"] button[data-action="undrain"]');
    await expect.poll(() => dialogs.at(-1)).toMatch(/^alert: refused: authorization: missing or wrong bearer token/);
    expect((await store.listNodes()).find((n) => n.name === 'n1')?.drained).toBe(true);
    await page.locator('#timeline li.action.refused').first().waitFor();
    const res = await fetch(`${dashboard.url}api/nodes/n2/drain`, { method: 'POST' });
    expect(res.status).toBe(401);
    await mkdir(join(root, 'reports'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }, 30_000);

  test('`l4fleet dashboard` serves the same fleet read-only without a token and stops on SIGTERM', async () => {
    const bin = join(root, 'packages', 'cli', 'bin', 'l4fleet.js');
    const env = { ...process.env, L4FLEET_DASHBOARD_TOKEN: '' };
    const child = spawn(
      process.execPath,
      [bin, '--etcd', etcd.endpoints.join(','), 'dashboard', '--listen', '127.0.0.1:0', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'pipe'], env },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = (await eventually(
        'URL printed',
        () => /http:\/\/127\.0\.0\.1:\d+\//.exec(out)?.[0],
        Boolean,
        15_000,
      )) as string;
      const state = (await (await fetch(`${url}api/state`)).json()) as {
        writes: boolean;
        view: { nodes: { name: string; drained: boolean }[] };
      };
      expect(state.writes).toBe(false);
      expect(state.view.nodes.map((n) => `${n.name}:${n.drained}`)).toEqual(['n1:true', 'n2:false']);
      expect(
        (await fetch(`${url}api/nodes/n2/drain`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }))
          .status,
      ).toBe(403);
      child.kill('SIGTERM');
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))])).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
