/**
 * README.md's quick start and walk-through, run as a user runs them: `bash scripts/quickstart.sh` (bounded:
 * `--duration S --check`, which fails if any flow broke or none is open), then the walk-through's lab commands through
 * the installed command (`npx --no-install l4fleet`, the bin npm links at `npm ci`) while `lab watch --json` runs:
 * add-node, add-backend, fail-backend, restore-backend. Needs root and the built workspace (`npm run build`); by hand:
 * `flock /tmp/l4fleet-lab.lock npx vitest run test/quickstart.int.test.ts`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bpfAvailable, DEFAULT_BACKEND_OBJECT } from '@l4fleet/dataplane';
import {
  agentAvailable,
  DEFAULT_DATA_PATH,
  downLab,
  type LabStatus,
  NFTABLES_DATA_PATH,
  run,
  type WatchTick,
} from '@l4fleet/lab';
import { until as untilValue } from '@l4fleet/test-support/eventually';
import { afterAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const agentReady = await agentAvailable();
const id = `q${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
// The lab commands read their lab from the environment, so the README's commands run unchanged.
const env = { ...process.env, L4FLEET_LAB_ID: id, L4FLEET_LAB_CONTROL_SLOT: String(controlSlot) };
const etcd = `http://198.19.${controlSlot}.2:2379`;
/** What `lab up` runs by default here: bpf + routed + gue when the bpf objects are built (lab/src/runtime/up-data-path.ts). */
const bpfMissing = bpfAvailable() ?? bpfAvailable({ objectPath: DEFAULT_BACKEND_OBJECT });
const expectedPath = bpfMissing === undefined ? DEFAULT_DATA_PATH : NFTABLES_DATA_PATH;
/**
 * The lab fleet's health check (deploy/examples/lab-fleet.yaml) decides within 2-3 intervals of 1 s; the time bounds
 * are lab-e2e.int.test.ts's. Here only "it happens": 20 s leaves room for a loaded machine.
 */
const DECIDED_TIMEOUT_MS = 20_000;
/** Ctrl-C to the watch: its flows are stopped within 5 s (FlowRun.stop). */
const WATCH_STOP_TIMEOUT_MS = 15_000;
/** Time for the watch to tick after a step (one tick per second, each reading every node's flows). */
const WATCH_SEES_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `npx --no-install l4fleet ARGS...` in the repository, as the README's walk-through runs it. */
async function l4fleet(...args: string[]): Promise<string> {
  const r = await run(['npx', '--no-install', 'l4fleet', ...args], { env, timeoutMs: 120_000 });
  return r.stdout;
}

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? '';

/** The decided state of `member` in the TCP VIP's pool, from `l4fleet describe vip`. */
async function decided(member: string): Promise<string | undefined> {
  const out = await l4fleet('--etcd', etcd, 'describe', 'vip', '198.51.100.10:80/tcp');
  const row = out.split('\n').find((l) => l.startsWith(`${member} `));
  return row?.split(/\s+/)[4];
}

async function waitDecided(member: string, state: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if ((await decided(member)) === state) return Date.now() - t0;
    await sleep(250);
  }
  throw new Error(`${member} not "${state}" after ${timeoutMs} ms (now "${await decided(member)}")`);
}

/**
 * `lab watch --json` in the background, in its own process group (so `stop()` is a Ctrl-C to all of npx, l4fleet and
 * l4fleet-lab): every tick it printed, and whether it has exited.
 */
function startWatch(): { ticks: WatchTick[]; stop: () => Promise<void> } {
  const child = spawn(
    'npx',
    ['--no-install', 'l4fleet', 'lab', 'watch', '--json', '--flows', '60', '--udp', '10', '--duration', '600'],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const ticks: WatchTick[] = [];
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith('{')) ticks.push(JSON.parse(l) as WatchTick);
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    process.kill(-child.pid, 'SIGINT');
    await Promise.race([exited, sleep(WATCH_STOP_TIMEOUT_MS)]);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
  };
  return { ticks, stop };
}

/** Polls `ok` every 250 ms for at most `timeoutMs`. */
async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(250);
  }
}

describe.skipIf(!agentReady || process.getuid?.() !== 0).sequential(`quick start and walk-through (lab ${id})`, () => {
  let watcher: ReturnType<typeof startWatch> | undefined;

  afterAll(async () => {
    await watcher?.stop();
    await downLab(id);
  }, 60_000);

  test('quick start: scripts/quickstart.sh brings the lab up and a bounded watch sees every flow open', async () => {
    const r = await run(['bash', 'scripts/quickstart.sh', '--duration', '10', '--flows', '100', '--check'], {
      env,
      timeoutMs: 600_000,
      allowFailure: true,
    });
    expect(r.code, r.stderr.slice(-2_000)).toBe(0);
    expect(r.stdout).toContain(`lab "${id}" is up`);
    // What a new user gets: bpf nodes, routed backends, gue; without the bpf objects nftables and a notice saying so.
    const { dataplane, backendNetwork, forwarding } = expectedPath;
    const where = backendNetwork === 'routed' ? 'routed (behind the router)' : "on the nodes' segment";
    expect(r.stdout).toContain(`data plane ${dataplane}, backends ${where}, forwarding ${forwarding}`);
    if (bpfMissing === undefined) expect(r.stderr).not.toContain('notice:');
    else expect(r.stderr).toContain(`notice: bpf data plane not built (${bpfMissing} missing)`);
    expect(r.stdout).toMatch(/^node1 +\d+ /m);
    expect(lastLine(r.stdout)).toMatch(/^watch --check: ok \(flows 150 {2}open 150 {2}broken 0 /);
  }, 660_000);

  test('npx l4fleet: the installed command runs (linked by npm ci, executable after every build)', async () => {
    expect(lastLine(await l4fleet('--version'))).toMatch(/^\d+\.\d+\.\d+$/);
    expect(await l4fleet('lab', '--help')).toContain('add-backend');
  });

  test('walk-through: add-node, add-backend, fail-backend, restore-backend; watch names them all', async () => {
    watcher = startWatch();
    const ticks = watcher.ticks;
    // Until the watch's flows are open and it ticks.
    await until('watch ticks', () => ticks.length > 0, 60_000);

    expect(lastLine(await l4fleet('lab', 'add-node'))).toBe('node4');
    const added = await l4fleet('lab', 'add-backend');
    // The lab's default puts backends behind the router (198.18.3.0/24; nftables: the nodes' segment 198.18.2.0/24):
    // the address `lab status` shows is the one the apply added.
    const status = JSON.parse(await l4fleet('lab', 'status', '-o', 'json')) as LabStatus;
    expect(status.dataPath).toEqual(expectedPath);
    const address = status.backends.find((b) => b.name === 'backend5')?.address;
    expect(address).toBe(expectedPath.backendNetwork === 'routed' ? '198.18.3.105' : '198.18.2.105');
    expect(added).toContain(`\n+ member web/backend5: ${address}:80 `);
    expect(lastLine(added)).toBe('backend5');
    const roseMs = await waitDecided('backend5', 'up', DECIDED_TIMEOUT_MS);

    expect(lastLine(await l4fleet('lab', 'fail-backend', 'backend2'))).toBe('backend2 failed');
    const downMs = await waitDecided('backend2', 'down', DECIDED_TIMEOUT_MS);
    // Why, per node: the reason of the probe that took it down, from the nodes' status records.
    const why = await untilValue(
      'describe vip names why backend2 is down',
      async () => {
        const out = await l4fleet('--etcd', etcd, 'describe', 'vip', '198.51.100.10:80/tcp');
        return /^ {2}backend2 {2}node\d: \S.* since \d{4}-/m.test(out) ? out : undefined;
      },
      10_000,
    );
    expect(why).toContain('Probe failures (the node, the reason of the probe that took it down):');
    await until('watch shows backend2 failed', () => ticks.some((t) => t.down.includes('backend2')), WATCH_SEES_MS);
    expect(lastLine(await l4fleet('lab', 'restore-backend', 'backend2'))).toBe('backend2 restored');
    const upMs = await waitDecided('backend2', 'up', DECIDED_TIMEOUT_MS);
    console.log(`walk-through: backend5 up after ${roseMs} ms; backend2 down after ${downMs} ms, up after ${upMs} ms`);
    const restored = (t: WatchTick) => t.events.some((e) => e.event === 'backendRestored');
    await until('watch shows backend2 restored', () => ticks.some(restored), WATCH_SEES_MS);
    await watcher.stop();

    const last = ticks.at(-1);
    expect(last?.nodes).toEqual(['node1', 'node2', 'node3', 'node4']);
    expect(last?.backends).toEqual(['backend1', 'backend2', 'backend3', 'backend4', 'backend5']);
    expect(last?.nextHops).toEqual(['node1', 'node2', 'node3', 'node4']);
    // Flows the router moved to node4 are counted under its name, never as `?`.
    expect(ticks.some((t) => (t.summary.perNode.node4 ?? 0) > 0)).toBe(true);
    expect(ticks.filter((t) => t.summary.perNode['?'] !== undefined)).toEqual([]);
    expect(ticks.some((t) => t.down.includes('backend2'))).toBe(true);
    expect(last?.down).toEqual([]);
    const events = ticks.flatMap((t) => t.events.map((e) => `${e.event} ${e.host ?? ''}`.trim()));
    for (const e of [
      'nodeAdded node4',
      'nextHopAdded node4',
      'backendAdded backend5',
      'fleetApplied',
      'backendFailed backend2',
      'backendRestored backend2',
    ]) {
      expect(events).toContain(e);
    }
  }, 300_000);

  test('lab down removes the lab', async () => {
    expect(lastLine(await l4fleet('lab', 'down'))).toMatch(new RegExp(`^lab "${id}": removed \\d+ namespaces$`));
    const ns = await run(['ip', 'netns', 'list']);
    expect(ns.stdout).not.toContain(`l4f-${id}-`);
  }, 60_000);
});
