/**
 * The dashboard in the lab, as the user meets it: `lab up` (netns, agent mode) starts `l4fleet dashboard` in the
 * control namespace and prints its URL; the URL in `lab status -o json` serves the page to a browser on the host
 * (chromium, headless, host namespace: the user's browser); the token file is 0600 and writes need it; `lab watch`
 * shows its flows on the page; `lab add-node` restarts the dashboard with the new node's agent; `lab down` stops it.
 * Needs root and the built CLI (`npm run build`); run under the lab lock:
 * `flock /tmp/l4fleet-lab.lock npx vitest run test/dashboard-lab.int.test.ts`. The lab is removed even when a step
 * fails (afterAll).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { bpfAvailable, DEFAULT_BACKEND_OBJECT } from '@l4fleet/dataplane';
import {
  agentAvailable,
  createLabProgram,
  DEFAULT_DATA_PATH,
  downLab,
  type LabState,
  type LabStatus,
  NFTABLES_DATA_PATH,
} from '@l4fleet/lab';
import { isAlive } from '@l4fleet/process';
import { eventually } from '@l4fleet/test-support/eventually';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const agentReady = await agentAvailable();
const id = `d${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
const stateRoot = process.env.L4FLEET_LAB_STATE_DIR ?? '/run/l4fleet-lab';
const CHROMIUM = '/usr/bin/chromium';
const bpfMissing = bpfAvailable() ?? bpfAvailable({ objectPath: DEFAULT_BACKEND_OBJECT });
const expectedPath = bpfMissing === undefined ? DEFAULT_DATA_PATH : NFTABLES_DATA_PATH;

/** `l4fleet-lab --id <id> ARGS` in this process; the lines it printed. */
async function lab(...args: string[]): Promise<string[]> {
  const out: string[] = [];
  await createLabProgram({ out: (t) => out.push(t), err: () => {} }).parseAsync(['--id', id, ...args], {
    from: 'user',
  });
  return out;
}

const status = async () => JSON.parse((await lab('status', '-o', 'json')).join('\n')) as LabStatus;
const dashboardPid = () =>
  (JSON.parse(readFileSync(`${stateRoot}/${id}/state.json`, 'utf8')) as LabState).pids.control?.dashboard;

interface StateDoc {
  view: { nodes: { name: string }[] };
  flows: { lab: string; open: number; perNode: Record<string, number> } | null;
}

describe.skipIf(!agentReady || process.getuid?.() !== 0).sequential(`dashboard in the lab (lab ${id})`, () => {
  let upOut: string[] = [];
  let url = '';

  beforeAll(async () => {
    upOut = await lab(
      'up',
      '--nodes',
      '2',
      '--backends',
      '2',
      '--mode',
      'agent',
      '--no-bfd',
      '--no-install',
      '--control-slot',
      String(controlSlot),
    );
  }, 180_000);

  afterAll(async () => {
    await downLab(id);
  }, 60_000);

  test('lab up prints the URL that lab status -o json has; the page and the fleet answer there', async () => {
    const s = await status();
    url = s.dashboard?.url ?? '';
    // The lab's default data path (bpf + routed + gue where the bpf objects are built; issue 14).
    expect(s.dataPath).toEqual(expectedPath);
    expect(url).toBe(`http://198.19.${controlSlot}.2:9470/`);
    expect(upOut).toContain(`dashboard: ${url} (write token in ${s.dashboard?.tokenFile})`);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>l4fleet dashboard</title>');
    await eventually(
      'both agents on the dashboard',
      async () => ((await (await fetch(`${url}api/state`)).json()) as StateDoc).view.nodes.map((n) => n.name),
      (names) => names.join() === 'node1,node2',
      30_000,
      500,
    );
  }, 60_000);

  test('the token file is 0600 and holds the write token: without it a write is refused', async () => {
    const { tokenFile } = (await status()).dashboard ?? { tokenFile: '' };
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    // 401, not 403: writes are enabled (a token is configured) and this request has none.
    expect((await fetch(`${url}api/nodes/node1/drain`, { method: 'POST' })).status).toBe(401);
    const wrong = await fetch(`${url}api/nodes/node1/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}x` },
    });
    expect(wrong.status).toBe(401);
  });

  test('lab watch: its flows are on the page, per node and per backend (a browser on the host)', async () => {
    const ticks = (await lab('watch', '--flows', '20', '--udp', '0', '--duration', '6', '--json'))
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { summary: { open: number } });
    expect(ticks.length).toBeGreaterThanOrEqual(1); // one per second, fewer on a loaded machine
    const last = ticks.at(-1)?.summary.open;
    expect(last).toBe(20);
    const state = (await (await fetch(`${url}api/state`)).json()) as StateDoc;
    expect(state.flows?.lab).toBe(id);
    expect(state.flows?.open).toBe(last);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(url);
      await page.locator('#flows-section').waitFor({ state: 'visible', timeout: 10_000 });
      const perNode = await page.locator('#flows-nodes tr[data-flow-node] td[data-field="flows"]').allTextContents();
      expect(perNode.map(Number).reduce((a, b) => a + b, 0)).toBe(20);
      expect(await page.locator('#flows-backends tr[data-flow-backend]').count()).toBe(2);
      expect(await page.locator('#flows-summary').textContent()).toMatch(new RegExp(`lab ${id} · flows 20 · open 20`));
    } finally {
      await browser.close();
    }
  }, 90_000);

  test('lab add-node restarts the dashboard with the new node in its agent list', async () => {
    const before = dashboardPid();
    expect((await lab('add-node')).at(-1)).toBe('node3');
    const after = dashboardPid();
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(isAlive(before as number)).toBe(false);
    const argv = readFileSync(`/proc/${after}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('--agent-metrics') + 1]).toMatch(/,node3=http:\/\/198\.19\.\d+\.\d+:9469$/);
    expect((await fetch(url)).status).toBe(200);
  }, 120_000);

  test('lab down stops it: the URL no longer answers, the process and the token file are gone', async () => {
    const pid = dashboardPid();
    const { tokenFile } = (await status()).dashboard ?? { tokenFile: '' };
    // Unreachable, or (this machine's egress proxy answers unrouted addresses) anything but the dashboard's state.
    const stateStatus = () =>
      fetch(`${url}api/state`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status,
        () => 'unreachable',
      );
    expect(await stateStatus()).toBe(200);
    await lab('down');
    expect(isAlive(pid as number)).toBe(false);
    expect(existsSync(tokenFile)).toBe(false);
    expect(await stateStatus()).not.toBe(200);
  }, 60_000);
});
