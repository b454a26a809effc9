/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core (headless), against real etcd and
 * NATS and two real agents, all inside one network namespace this test creates (the fleet's backends have lab
 * addresses, and only a namespace of the test's own may carry traffic to them). Everything runs as the user runs
 * it: etcd, nats-server, one gobgpd per node, two `l4fleet agent` processes (n1 forwards with the userspace proxy,
 * n2 with the dry-run data plane; their BGP peer never answers), TCP echo backends (socat), `l4fleet apply` and
 * `l4fleet dashboard`; chromium is started in the namespace through a wrapper. Run it under the ns lock:
 * `flock /tmp/l4fleet-lab.lock npx vitest run test/dashboard.int.test.ts` (needs `npm run build`: the processes
 * run the built CLI).
 *
 * The list: the page lists the nodes and VIPs; a drain from the page reaches etcd and the node's state
 * changes on the page; a failed member shows as down; a write without the token is refused; the live flows of
 * `lab watch` (a LabFlows on NATS, as lab/src/flows/publish.ts sends it) and BFD per node (a node status record
 * with `bfd`, as an agent with BFD writes it) show. The screenshot is kept as a test artifact (reports/dashboard.png).
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdEnv, gobgpdArgv, natsArgv, singleMemberFlags } from '@l4fleet/daemons';
import { type Child, killAll, namespacePids, run, spawnChild } from '@l4fleet/process';
import { eventually } from '@l4fleet/test-support/eventually';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';

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
const NS = `l4f-dash-${process.pid % 100_000}`;
const SEGMENT = '198.18.250';
const VIP = '198.51.100.30:8080/tcp';
const PORT = 8080; // VIP and members share it: every forwarding mode is direct server return
const ETCD = 'http://127.0.0.1:2379';
const NATS = 'nats://127.0.0.1:4222';
const DASHBOARD = 'http://127.0.0.1:9480/';
const READ_ONLY_DASHBOARD = 'http://127.0.0.1:9481/';
/** A third dashboard, started while etcd is down (the last test). */
const LATE_PORT = 9482;
/** A fourth, restarted under an open page (timeline ids start over in each process). */
const RESTART_PORT = 9483;
const INTERVAL_MS = 300;
const FALL = 2;
const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'packages', 'cli', 'bin', 'l4fleet.js');
const SCREENSHOT = join(root, 'reports', 'dashboard.png');
const FLOWS_SUBJECT = `l4fleet.${FLEET}.lab.flows`;
/** One tick of `lab watch` as lab/src/flows/publish.ts sends it. */
const LAB_FLOWS = {
  lab: 'dash',
  total: 60,
  open: 58,
  broken: 2,
  longestPauseMs: 735,
  perNode: { n1: 31, n2: 27 },
  perBackend: { be2: 30, be3: 28 },
  nodes: ['n1', 'n2'],
  backends: ['be1', 'be2', 'be3'],
  down: ['be1'],
  nextHops: ['n1', 'n2'],
};

const fleetYaml = stringify({
  hashSeed: 0x5eed,
  pools: [
    {
      name: 'web',
      healthCheck: { type: 'tcp', intervalMs: INTERVAL_MS, timeoutMs: 200, rise: 1, fall: FALL },
      // A member that returns ramps over 5 min: long enough to read its first step on the page.
      slowStartS: 300,
      // All three must take new flows for the VIP to be announced (a site that defers to others when degraded).
      minUpMembers: 3,
      members: [1, 2, 3].map((i) => ({ name: `be${i}`, address: `${SEGMENT}.2${i}`, port: PORT })),
    },
  ],
  // n1's proxy sees its clients as 127.0.0.1: admitted. The page names the prefixes under the pool.
  vips: [
    {
      address: '198.51.100.30',
      port: PORT,
      protocol: 'tcp',
      pool: 'web',
      tableSize: 251,
      sourceRanges: ['127.0.0.0/8', '198.18.0.0/15'],
    },
  ],
});

function agentYaml(name: string, index: number, stateDir: string): string {
  return stringify({
    fleet: FLEET,
    node: { name, interface: 'lo', address: `${SEGMENT}.1${index}` },
    // A peer that never answers (nothing listens there): the agents run their whole lifecycle regardless.
    bgp: {
      asn: 65001,
      gobgpdAddress: `127.0.0.1:5005${index}`,
      peers: [{ address: `${SEGMENT}.1`, asn: 65000, port: 1790 }],
    },
    etcd: { endpoints: [ETCD], leaseTtlS: 5, dialTimeoutMs: 1_000 },
    nats: { servers: [NATS] },
    metrics: { listen: `127.0.0.1:947${index}` },
    dataplane: index === 1 ? { driver: 'proxy', proxyBindAddress: '127.0.0.1' } : { driver: 'dry-run' },
    state: { dir: stateDir },
  });
}

/** `l4fleet ARGS` in the namespace, against its etcd; stdout. */
async function cli(...args: string[]): Promise<string> {
  // Node's start alone took 8.5 s on the shared 2-core machine under load (load average 20): generous bounds.
  return (await run([process.execPath, BIN, '--etcd', ETCD, ...args], { namespace: NS, timeoutMs: 45_000 })).stdout;
}

/**
 * Publishes `text` on `subject` with the NATS client, from inside the namespace (its NATS is on its loopback); `nats`
 * resolves from the working directory, the repository (where vitest runs).
 */
async function natsPublish(subject: string, text: string): Promise<void> {
  const script = `import { connect } from 'nats';
const nc = await connect({ servers: ${JSON.stringify(NATS)} });
nc.publish(${JSON.stringify(subject)}, new TextEncoder().encode(${JSON.stringify(text)}));
await nc.drain();`;
  await run([process.execPath, '--input-type=module', '-e', script], { namespace: NS, timeoutMs: 10_000 });
}

interface StatusNode {
  name: string;
  lease: boolean;
  drained: boolean;
  desiredRevision: number | null;
}
const statusNodes = async () => (JSON.parse(await cli('status', '-o', 'json')) as { nodes: StatusNode[] }).nodes;

describe('dashboard in chromium against etcd, NATS and two agents', () => {
  let dir = '';
  let context: BrowserContext;
  let page: Page;
  const children: Child[] = [];
  const backends = new Map<string, Child>();
  const dialogs: string[] = [];
  let etcdArgv: string[] = [];
  let etcd: Child | undefined;

  const start = (argv: string[], env?: NodeJS.ProcessEnv): Child => {
    const c = spawnChild(argv, { namespace: NS, ...(env ? { env } : {}) });
    children.push(c);
    return c;
  };
  const logs = () => children.map((c) => `--- ${c.process.spawnargs.slice(4, 8).join(' ')}\n${c.log()}`).join('\n');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'l4fleet-dash-'));
    await run(['ip', 'netns', 'add', NS]);
    // The backends', the nodes' and the (silent) router's addresses, all on the namespace's own loopback.
    await run(['ip', 'link', 'set', 'lo', 'up'], { namespace: NS });
    for (const h of ['1', '11', '12', '21', '22', '23']) {
      await run(['ip', 'addr', 'add', `${SEGMENT}.${h}/32`, 'dev', 'lo'], { namespace: NS });
    }
    etcdArgv = [
      '/usr/bin/etcd',
      ...singleMemberFlags({
        dataDir: join(dir, 'etcd'),
        listenClientUrl: ETCD,
        advertiseClientUrl: ETCD,
        peerUrl: 'http://127.0.0.1:2380',
      }),
    ];
    etcd = start(etcdArgv, etcdEnv());
    start(natsArgv({ address: '127.0.0.1', port: 4222 }));
    for (const i of [1, 2]) start(gobgpdArgv({ apiHosts: `127.0.0.1:5005${i}` }));
    for (const i of [1, 2, 3]) {
      backends.set(
        `be${i}`,
        start(['socat', `TCP-LISTEN:${PORT},bind=${SEGMENT}.2${i},fork,reuseaddr`, 'EXEC:/bin/cat']),
      );
    }
    await writeFile(join(dir, 'fleet.yaml'), fleetYaml);
    await eventually(
      'etcd answers, fleet applied',
      () => cli('apply', '--new-fleet', '-f', join(dir, 'fleet.yaml')),
      Boolean,
      20_000,
      200,
    );
    for (const [i, name] of [
      [1, 'n1'],
      [2, 'n2'],
    ] as const) {
      await writeFile(join(dir, `${name}.yaml`), agentYaml(name, i, dir));
      start([process.execPath, BIN, 'agent', '--config', join(dir, `${name}.yaml`)]);
    }
    const dashboardArgs = [
      '--nats',
      NATS,
      '--fleet',
      FLEET,
      '--agent-metrics',
      'n1=http://127.0.0.1:9471,n2=http://127.0.0.1:9472',
    ];
    start([process.execPath, BIN, '--etcd', ETCD, 'dashboard', '--listen', '127.0.0.1:9480', ...dashboardArgs], {
      ...process.env,
      L4FLEET_DASHBOARD_TOKEN: TOKEN,
    });
    start([process.execPath, BIN, '--etcd', ETCD, 'dashboard', '--listen', '127.0.0.1:9481', ...dashboardArgs], {
      ...process.env,
      L4FLEET_DASHBOARD_TOKEN: '',
    });
    await eventually(
      'both agents serving',
      statusNodes,
      (ns) => ns.length === 2 && ns.every((n) => n.lease && n.desiredRevision !== null),
      90_000,
      250,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${logs()}`);
    });
    // chromium in the namespace: a wrapper playwright starts like the browser (it talks to it over a pipe).
    const wrapper = join(dir, 'chromium-in-ns.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} ${CHROMIUM} "$@"\n`);
    await chmod(wrapper, 0o755);
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: wrapper,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      void d.accept();
    });
    await eventually(
      'dashboard page',
      () => page.goto(DASHBOARD).then((r) => r?.status()),
      (s) => s === 200,
      15_000,
      250,
    );
  }, 240_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    for (const c of [...children].reverse()) await c.stop('SIGTERM', 3_000).catch(() => undefined);
    await killAll(await namespacePids(NS));
    await run(['ip', 'netns', 'del', NS], { allowFailure: true });
    await rm(dir, { recursive: true, force: true });
  }, 90_000);

  const cell = (row: string, field: string) => page.locator(`${row} td[data-field="${field}"]`);

  test('the page lists the nodes and the VIP, live, with matching table checksums and the table share', async () => {
    await page.locator('#live.on').waitFor({ timeout: 10_000 });
    await page.locator('tr[data-node="n1"]').waitFor({ timeout: 15_000 });
    await page.locator('tr[data-node="n2"]').waitFor();
    await page.locator(`#vips tr[data-vip="${VIP}"]`).waitFor();
    // Both nodes report the checksum the fleet derives: no mismatch flagged.
    await expect.poll(() => page.locator(`tr[data-node] div[data-vip="${VIP}"]`).count(), { timeout: 15_000 }).toBe(2);
    expect(await page.locator('tr[data-node] .mismatch').count()).toBe(0);
    expect(await page.locator(`#vips tr[data-vip="${VIP}"] .share span`).count()).toBe(3);
    expect(await page.locator(`#vips tr[data-vip="${VIP}"] [data-field="sources"]`).textContent()).toBe(
      'clients 127.0.0.0/8, 198.18.0.0/15 only',
    );
    expect(await page.locator('#writes').textContent()).toBe('writes enabled');
    // Traffic through n1's proxy (a client in the namespace) shows in its charts, per node and per backend.
    await run(['sh', '-c', `for i in $(seq 20); do echo ping | ncat -w 1 127.0.0.1 ${PORT} >/dev/null; done`], {
      namespace: NS,
    });
    await expect
      .poll(() => page.locator('[data-chart="packetsPerBackend"] .u-legend').textContent(), { timeout: 10_000 })
      .toMatch(/198\.18\.250\.2[123]/);
    await page.locator('[data-chart="packetsPerNode"] .uplot').waitFor();
  }, 90_000);

  test('a change to the fleet (`l4fleet member weight`) shows under Changes, newest first, marked now', async () => {
    const rows = page.locator('#changes tr[data-revision]');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(1);
    expect(await rows.first().textContent()).toMatch(/now.*\(first write\)/);
    expect(await cli('member', 'weight', 'web', 'be3', '2')).toMatch(/^weight web\/be3 1 -> 2: revision \d+/);
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(2);
    expect(await rows.first().textContent()).toMatch(/now.*~ member web\/be3: weight 1 -> 2/);
    expect(await rows.nth(1).locator('.badge').count()).toBe(0);
    // The CLI's history reads the same writes.
    expect(await cli('history')).toContain('~ member web/be3: weight 1 -> 2');
  }, 90_000);

  test('a drain from the page reaches etcd, and the node shows drained (its VIP withdrawn)', async () => {
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.click('tr[data-node="n1"] button[data-action="drain"]');
    await eventually(
      'n1 drained in etcd',
      statusNodes,
      (ns) => ns.find((n) => n.name === 'n1')?.drained === true,
      10_000,
      250,
    );
    await expect.poll(() => cell('tr[data-node="n1"]', 'drained').textContent(), { timeout: 10_000 }).toBe('drained');
    expect(await cell('tr[data-node="n2"]', 'drained').textContent()).toBe('no');
    await expect.poll(() => cell('tr[data-node="n1"]', 'announced').textContent(), { timeout: 10_000 }).toBe('');
    expect(await cell('tr[data-node="n2"]', 'announced').textContent()).toBe(VIP);
    expect(dialogs[0]).toMatch(/^confirm: drain node n1\?/);
    await page.locator('#timeline li.action.ok').first().waitFor();
    // The agent's own node.state event arrives over NATS into the timeline.
    await page.locator('#timeline li[data-kind="node.state"]').first().waitFor({ timeout: 10_000 });
  }, 90_000);

  test('a VIP disabled from the page: every node withdraws it and the row says so; enabled, announced again; drained, still announced', async () => {
    const row = `tr[data-vip="${VIP}"]`;
    await page.click(`${row} button[data-action="vip-disable"]`);
    await expect.poll(() => dialogs.at(-1)).toMatch(/^confirm: disable VIP .* its open connections end\.$/);
    await expect
      .poll(() => page.locator(`${row} [data-field="state"]`).textContent(), { timeout: 10_000 })
      .toBe('disabled');
    await expect.poll(() => cell('tr[data-node="n2"]', 'announced').textContent(), { timeout: 10_000 }).toBe('');
    expect(await cli('get', 'vips')).toMatch(/\sdisabled\s/);
    await page.click(`${row} button[data-action="vip-enable"]`);
    await expect.poll(() => cell('tr[data-node="n2"]', 'announced').textContent(), { timeout: 10_000 }).toBe(VIP);
    expect(await page.locator(`${row} [data-field="state"]`).count()).toBe(0);
    expect(await cli('history', '--limit', '2')).toMatch(
      /dashboard, from .*\(vip enable .*\n.*dashboard, from .*\(vip disable /s,
    );
    // Drained from the page: marked, still announced (open flows continue, new ones are refused); enabled again.
    await page.click(`${row} button[data-action="vip-drain"]`);
    await expect.poll(() => dialogs.at(-1)).toMatch(/^confirm: drain VIP .* refuses new ones\.$/);
    await expect
      .poll(() => page.locator(`${row} [data-field="state"]`).textContent(), { timeout: 10_000 })
      .toBe('draining');
    expect(await cli('get', 'vips')).toMatch(/\sdraining\s+1\/2\s/);
    expect(await cell('tr[data-node="n2"]', 'announced').textContent()).toBe(VIP);
    await page.click(`${row} button[data-action="vip-enable"]`);
    await expect.poll(() => page.locator(`${row} [data-field="state"]`).count(), { timeout: 10_000 }).toBe(0);
  }, 90_000);

  test('a failed member shows as down (decided and per node); explain sends its flows elsewhere', async () => {
    await backends.get('be1')?.stop('SIGKILL');
    await expect
      .poll(() => cell('tr[data-member="web/be1"]', 'decided').textContent(), { timeout: INTERVAL_MS * FALL + 10_000 })
      .toBe('down');
    expect(await page.locator('tr[data-member="web/be1"] .badge.down').count()).toBeGreaterThanOrEqual(2);
    // Why: each node's status record names the probe that took it down (a refused connection to the killed port).
    const reasons = page.locator('tr[data-member="web/be1"] [data-field="down-reason"]');
    await expect.poll(() => reasons.count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(await reasons.allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^n\d: ECONNREFUSED$/)]),
    );
    // Two of three take new flows, fewer than minUpMembers: n2 withdraws the VIP and the row says why.
    await expect.poll(() => cell('tr[data-node="n2"]', 'announced').textContent(), { timeout: 10_000 }).toBe('');
    expect(await page.locator(`tr[data-vip="${VIP}"] [data-field="not-announced"]`).textContent()).toBe(
      "withdrawn: only 2 members take new flows, fewer than the pool's minUpMembers 3",
    );
    expect(await cli('describe', 'vip', VIP)).toContain(
      "Announced:    by 0 of 2 live nodes: only 2 members take new flows, fewer than the pool's minUpMembers 3",
    );
    await page.fill('#explain input[name="src"]', '198.18.1.7');
    await page.fill('#explain input[name="sport"]', '40000');
    await page.selectOption('#explain select[name="vip"]', VIP);
    await page.click('#explain button[type="submit"]');
    await expect.poll(() => page.locator('#explain-result').textContent()).toMatch(/slot: +\d+ of 251/);
    expect(await page.locator('#explain-result').textContent()).toMatch(
      /backend: +be[23] \(198\.18\.250\.2[23]:8080, pool web\)/,
    );
  }, 90_000);

  test('the failed member restarted: decided up, in slow start at its first step (20 % of its weight)', async () => {
    backends.set('be1', start(['socat', `TCP-LISTEN:${PORT},bind=${SEGMENT}.21,fork,reuseaddr`, 'EXEC:/bin/cat']));
    const decided = cell('tr[data-member="web/be1"]', 'decided');
    await expect.poll(() => decided.textContent(), { timeout: INTERVAL_MS * 2 + 10_000 }).toBe('upslow start 20%');
    expect(await page.locator('tr[data-member="web/be1"] [data-field="slow-start"]').textContent()).toBe(
      'slow start 20%',
    );
    // A member in slow start takes new flows: three again, announced again.
    await expect.poll(() => cell('tr[data-node="n2"]', 'announced').textContent(), { timeout: 10_000 }).toBe(VIP);
    expect(await page.locator(`tr[data-vip="${VIP}"] [data-field="not-announced"]`).count()).toBe(0);
  }, 60_000);

  test('the flows of lab watch show per node and per backend, with broken flows and the longest pause', async () => {
    expect(await page.locator('#flows-section').isHidden()).toBe(true);
    await eventually(
      'flows on the page',
      async () => {
        await natsPublish(FLOWS_SUBJECT, JSON.stringify({ ...LAB_FLOWS, at: new Date().toISOString() }));
        return page.locator('#flows-section').isVisible();
      },
      Boolean,
      10_000,
      500,
    );
    const flowsOf = (row: string) => page.locator(`${row} td[data-field="flows"]`).textContent();
    expect(await flowsOf('#flows-nodes tr[data-flow-node="n1"]')).toBe('31');
    expect(await flowsOf('#flows-nodes tr[data-flow-node="n2"]')).toBe('27');
    expect(await flowsOf('#flows-backends tr[data-flow-backend="be1"]')).toBe('0');
    expect(await flowsOf('#flows-backends tr[data-flow-backend="be3"]')).toBe('28');
    expect(await page.locator('#flows-backends tr[data-flow-backend="be1"]').textContent()).toContain('failed');
    expect(await page.locator('#flows-summary [data-field="broken"]').textContent()).toBe('broken 2');
    expect(await page.locator('#flows-summary [data-field="longestPause"]').textContent()).toBe('longest pause 735 ms');
    // A message that is not a LabFlows changes nothing: the last good one stays.
    await natsPublish(FLOWS_SUBJECT, JSON.stringify({ ...LAB_FLOWS, at: new Date().toISOString(), broken: -1 }));
    await eventually(
      'the dashboard refused it',
      async () => logs(),
      (l) => l.includes('broken: -1 is not a count'),
      10_000,
      200,
    );
    const state = await page.evaluate(
      async () => (await (await fetch('/api/state')).json()) as { flows: { broken: number } },
    );
    expect(state.flows.broken).toBe(2);
    expect(await page.locator('#flows-summary [data-field="broken"]').textContent()).toBe('broken 2');
  }, 90_000);

  test('BFD per node: the states a node reports per peer; "-" for a node without BFD', async () => {
    // The record an agent with BFD writes (NodeStatusReport.bfd), for a third node of the fleet.
    const record = {
      tables: {},
      announced: [],
      bgp: { [`${SEGMENT}.1`]: 'established' },
      failStatic: false,
      desiredRevision: 1,
      bfd: { [`${SEGMENT}.1`]: 'up', '2001:db8::1': 'down' },
    };
    await run(['etcdctl', '--endpoints', ETCD, 'put', '/l4fleet/v1/status/n3', JSON.stringify(record)], {
      namespace: NS,
    });
    const bfd = (node: string) => cell(`tr[data-node="${node}"]`, 'bfd');
    await expect.poll(() => bfd('n3').textContent(), { timeout: 10_000 }).toBe(`up ${SEGMENT}.1down 2001:db8::1`);
    expect(await bfd('n3').locator('.badge.on').count()).toBe(1);
    expect(await bfd('n3').locator('div[data-peer="2001:db8::1"] .badge.off').count()).toBe(1);
    expect(await bfd('n1').textContent()).toBe('-');
  }, 90_000);

  test('a write without the token is refused: the page says so, etcd is unchanged, the timeline records it', async () => {
    await page.fill('#token', '');
    await page.dispatchEvent('#token', 'change');
    await page.click('tr[data-node="n1"] button[data-action="undrain"]');
    await expect.poll(() => dialogs.at(-1)).toMatch(/^alert: refused: authorization: missing or wrong bearer token/);
    expect((await statusNodes()).find((n) => n.name === 'n1')?.drained).toBe(true);
    await page.locator('#timeline li.action.refused').first().waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/nodes/n2/drain', { method: 'POST' })).status);
    expect(status).toBe(401);
    await mkdir(join(root, 'reports'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }, 90_000);

  test('`l4fleet dashboard` without a token is read-only: the page shows no usable actions, writes answer 403', async () => {
    const ro = await context.newPage();
    try {
      await ro.goto(READ_ONLY_DASHBOARD);
      await expect
        .poll(() => ro.locator('#writes').textContent(), { timeout: 10_000 })
        .toBe('read-only (no token configured)');
      expect(await ro.locator('tr[data-node="n2"] button[data-action="drain"]').isDisabled()).toBe(true);
      const res = await ro.evaluate(async (token) => {
        const r = await fetch('/api/nodes/n2/drain', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
        return { status: r.status, body: await r.text() };
      }, TOKEN);
      expect(res).toEqual({
        status: 403,
        body: JSON.stringify({ error: 'writes are disabled: the dashboard has no token configured' }),
      });
      expect((await statusNodes()).find((n) => n.name === 'n2')?.drained).toBe(false);
    } finally {
      await ro.close();
    }
  }, 90_000);

  test('a dashboard restarted under an open page: the page starts its timeline over and shows the new events', async () => {
    const argv = [process.execPath, BIN, '--etcd', ETCD, 'dashboard', '--listen', `127.0.0.1:${RESTART_PORT}`];
    const url = `http://127.0.0.1:${RESTART_PORT}/`;
    const env = { ...process.env, L4FLEET_DASHBOARD_TOKEN: '' };
    const withNats = [...argv, '--nats', NATS, '--fleet', FLEET];
    const maxId = async () => {
      const r = await run(['curl', '-sf', `${url}api/state`], { namespace: NS, allowFailure: true });
      const ids = r.stdout ? (JSON.parse(r.stdout) as { timeline: { id: number }[] }).timeline.map((e) => e.id) : [];
      return Math.max(0, ...ids);
    };
    const first = start(withNats, env);
    const p = await context.newPage();
    try {
      await eventually(
        'the restarting dashboard serves',
        () => p.goto(url).then((r) => r?.status()),
        (x) => x === 200,
        15_000,
        250,
      );
      await p.locator('#live.on').waitFor({ timeout: 10_000 });
      // Every probe is an event: the first process's ids climb well past what the second's reach below.
      await eventually('ids past 500 in the first process', maxId, (n) => n >= 500, 60_000, 500);
      const before = await maxId();
      await first.stop('SIGTERM', 5_000);
      start(withNats, env);
      await eventually('the restarted dashboard serves', maxId, (n) => n > 0, 20_000, 250);
      await p.locator('#live.on').waitFor({ timeout: 15_000 }); // EventSource reconnected
      // A write refused by the new process (read-only) is an entry with a small id: the page must show it.
      const status = await p.evaluate(async () => (await fetch('/api/nodes/n2/drain', { method: 'POST' })).status);
      expect(status).toBe(403);
      expect(await maxId()).toBeLessThan(before); // else the page would show it without starting over
      await p.locator('#timeline li.action.refused').first().waitFor({ timeout: 10_000 });
    } finally {
      await p.close();
    }
  }, 120_000);

  // Last: it takes etcd away from everything above.
  test('etcd killed: the page says etcd is unreachable since when and still shows the last state; one started now says nothing was read; back: both show the fleet', async () => {
    const problems = page.locator('#problems');
    await page.goto(DASHBOARD);
    await expect.poll(() => problems.isHidden(), { timeout: 10_000 }).toBe(true);
    await etcd?.stop('SIGKILL');
    const killedAt = Date.now();
    await expect
      .poll(() => problems.textContent(), { timeout: 20_000 })
      .toMatch(/^etcd unreachable since \S+Z \(.*\): showing the last state read \(revision \d+\)/);
    console.log(`dashboard: etcd unreachable shown ${Date.now() - killedAt} ms after the kill`);
    expect(await problems.isVisible()).toBe(true);
    expect(await page.locator('tr[data-node="n1"]').count()).toBe(1);
    // A dashboard started during the outage serves a page that says so (it used to exit with the watch's error).
    start([process.execPath, BIN, '--etcd', ETCD, 'dashboard', '--listen', `127.0.0.1:${LATE_PORT}`]);
    const late = await context.newPage();
    await eventually(
      'the dashboard started during the outage serves its page',
      () => late.goto(`http://127.0.0.1:${LATE_PORT}/`).then((r) => r?.status()),
      (s) => s === 200,
      15_000,
      250,
    );
    const lateProblems = late.locator('#problems');
    await expect
      .poll(() => lateProblems.textContent(), { timeout: 10_000 })
      .toMatch(/^etcd unreachable since \S+Z \(.*\): nothing read from it yet/);
    etcd = start(etcdArgv, etcdEnv());
    const restartedAt = Date.now();
    await expect.poll(() => problems.isHidden(), { timeout: 30_000 }).toBe(true);
    console.log(`dashboard: the line gone ${Date.now() - restartedAt} ms after etcd was started again`);
    // The late one opens its watches once etcd answers and shows the fleet.
    await late.locator('tr[data-node="n1"]').waitFor({ timeout: 30_000 });
    await late.locator(`#vips tr[data-vip="${VIP}"]`).waitFor();
    await expect.poll(() => lateProblems.isHidden(), { timeout: 10_000 }).toBe(true);
    console.log(
      `dashboard started during the outage: the fleet shown ${Date.now() - restartedAt} ms after etcd came back`,
    );
    await late.close();
  }, 120_000);
});
