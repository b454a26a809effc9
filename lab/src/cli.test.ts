import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

// Nothing is installed or run: `run` (the installer's way in) only records its calls.
const processes = vi.hoisted(() => ({ run: vi.fn(async () => ({ code: 0, stdout: '', stderr: '' })) }));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: processes.run,
}));

// `watch` and its dashboard publisher pass through to the real ones unless a test gives one run of them.
vi.mock('./flows/watch.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./flows/watch.js')>();
  return { ...real, watch: vi.fn(real.watch) };
});
vi.mock('./flows/publish.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./flows/publish.js')>();
  return { ...real, publishLabFlows: vi.fn(real.publishLabFlows) };
});

const { runLabCli, upSummary } = await import('./cli.js');

async function cli(...argv: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = '';
  let out = '';
  const code = await runLabCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, err, out };
}

describe('lab cli - options', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-cli-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
    processes.run.mockClear();
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    [['--nodes', '0'], 'nodes 0'],
    [['--nodes', '65'], 'nodes 65'],
    [['--backends', '151'], 'backends 151'],
    [['--control-slot', '256'], 'controlSlot 256'],
    [['--bfd-multiplier', '1'], 'bfd.multiplier 1'],
    [['--nodes', ''], '--nodes "" is not a whole number'],
  ])('lab cli - up %j is a usage error naming it, before any package is installed', async (args, message) => {
    const { code, err } = await cli('up', ...args);
    expect(err).toContain(message);
    expect(code).toBe(2);
    expect(processes.run).not.toHaveBeenCalled();
  });

  test.each([
    [['watch', '--flows', ''], '--flows "" is not a whole number'],
    [['watch', '--flows', ' '], '--flows " " is not a whole number'],
    [['watch', '--udp', '0x1f'], '--udp "0x1f" is not a whole number'],
    [['watch', '--flows', '-1'], '--flows "-1" is not a whole number'],
    [['watch', '--flows', '1e9'], '--flows "1e9" is not a whole number'],
    [['watch', '--flows', '1000000000'], '--flows 1000000000 is more than 28232'],
    [['watch', '--udp', '28233'], '--udp 28233 is more than 28232'],
    [['watch', '--duration', '2.5'], '--duration "2.5" is not a whole number'],
    [['watch', '--check', '--max-pause-ms', '5s'], '--max-pause-ms "5s" is not a whole number'],
    [['export', '--format', 'fleet', '--nodes', '1e10'], '--nodes "1e10" is not a whole number'],
    [['export', '--format', 'fleet', '--nodes', '99999999999999999999'], '--nodes "99999999999999999999" is'],
    [['export', '--format', 'fleet', '--nodes', '10000000000'], 'nodes 10000000000 is not an integer in 1..64'],
  ])('lab cli - %j is a usage error naming the option and value', async (args, message) => {
    const { code, err } = await cli(...args);
    expect(err).toContain(message);
    expect(code).toBe(2);
  });

  test('lab cli - up on a healthy lab: options given that it does not have are refused (exit 2), defaults are not', async () => {
    const { writeState } = await import('./runtime/state.js');
    const { Lab } = await import('./runtime/lab.js');
    writeState({
      ...{ version: 1, id: 'c1', runtime: 'netns', mode: 'agent', controlSlot: 0, etcdMembers: 3 },
      ...{ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue', bfd: { intervalMs: 100, multiplier: 3 } },
      ...{ clients: 1, backends: 4, nodeIndexes: [1, 2], killed: [], pids: {} },
      ...{ createdAt: '2026-12-06T00:00:00.000Z', upAt: '2026-12-06T00:01:00.000Z' },
    });
    // Healthy: every namespace of the lab exists (no process is recorded).
    const namespaces = Lab.open('c1').topology.hosts.flatMap((h) => (h.namespace ? [`${h.namespace} (id: 1)`] : []));
    processes.run.mockImplementation(async (...args: unknown[]) => {
      const argv = args[0] as string[];
      return { code: 0, stdout: argv.join(' ') === 'ip netns list' ? namespaces.join('\n') : '', stderr: '' };
    });
    const up = await cli('--id', 'c1', 'up', '--no-install', '--nodes', '3', '--dataplane', 'nftables');
    expect(up.err).toContain(
      'lab "c1" is up with other options: --nodes 3 (the lab has 2), --dataplane nftables (the lab has bpf); run lab down --id c1 first',
    );
    expect(up.code).toBe(2);
    // Defaults (3 nodes, 3 etcd members, BFD 100 ms x 3) are not asked for: the lab is left as it is.
    const again = await cli('--id', 'c1', 'up', '--no-install', '--backends', '4');
    expect(again.err).not.toContain('other options');
    processes.run.mockImplementation(async () => ({ code: 0, stdout: '', stderr: '' }));
  });

  test('lab cli - add-backend applies the fleet under the lab lock from the state then: two at once end with both in it', async () => {
    const { readState, writeState } = await import('./runtime/state.js');
    const { labLockPath } = await import('./runtime/lock.js');
    const { netnsRuntime } = await import('./runtime/netns-runtime.js');
    writeState({
      ...{ version: 1, id: 'c2', runtime: 'netns', mode: 'agent', controlSlot: 0, etcdMembers: 3 },
      ...{ dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'l2' },
      ...{ clients: 1, backends: 4, nodeIndexes: [1, 2, 3], killed: [], pids: {} },
      ...{ createdAt: '2026-12-06T00:00:00.000Z', upAt: '2026-12-06T00:01:00.000Z' },
    });
    // No host is made; `l4fleet apply` (run) records the fleet file's backends and who holds the lab's lock then.
    const startHost = vi.spyOn(netnsRuntime, 'startHost').mockResolvedValue();
    const applies: { backends: string[]; lockedBy: string | undefined }[] = [];
    let started = 0;
    processes.run.mockImplementation(async (...args: unknown[]) => {
      const argv = args[0] as string[];
      const file = argv[argv.indexOf('-f') + 1] ?? '';
      const backends = [...new Set(readFileSync(file, 'utf8').match(/backend\d+/g))].sort();
      const lock = labLockPath('c2');
      const lockedBy = existsSync(lock)
        ? (JSON.parse(readFileSync(lock, 'utf8')) as { command: string }).command
        : undefined;
      // The first apply is slow: the second add-backend applies meanwhile unless the lock keeps it waiting.
      if (started++ === 0) await new Promise((r) => setTimeout(r, 100));
      applies.push({ backends, lockedBy });
      return { code: 0, stdout: `+ ${backends.at(-1)}`, stderr: '' };
    });
    try {
      const both = await Promise.all([cli('--id', 'c2', 'add-backend'), cli('--id', 'c2', 'add-backend')]);
      // Each prints its backend's name last (this io joins the lines without newlines).
      expect(both.map((r) => [r.code, r.out.slice(-'backend5'.length)])).toEqual([
        [0, 'backend5'],
        [0, 'backend6'],
      ]);
    } finally {
      startHost.mockRestore();
      processes.run.mockImplementation(async () => ({ code: 0, stdout: '', stderr: '' }));
    }
    expect(applies.map((a) => a.lockedBy)).toEqual(['add-backend', 'add-backend']);
    // The fleet applied last is the lab's: both new backends in it.
    expect(applies.at(-1)?.backends).toEqual(['backend1', 'backend2', 'backend3', 'backend4', 'backend5', 'backend6']);
    expect(readState('c2')?.backends).toBe(6);
  });

  test('lab cli - watch --help names --max-pause-ms and its default', async () => {
    const { out } = await cli('watch', '--help');
    expect(out).toMatch(/--max-pause-ms <ms>[\s\S]*\(default: 5000\)/);
    expect(out).toContain('the longest pause passed --max-pause-ms');
  });

  // status prints text unless -o json: its help said "the lab as JSON", and a script piping it to jq got text.
  test('lab cli - status --help says text by default, -o json for scripts', async () => {
    const { out } = await cli('status', '--help');
    const help = out.replace(/\s+/g, ' '); // commander wraps the description
    expect(help).not.toContain('as JSON');
    expect(help).toContain('(-o json for scripts)');
    expect(help).toMatch(/-o, --output <format>.*default: "text"\)/);
  });

  test('lab cli - whole numbers in range pass: export prints the fleet, watch on no lab says so (exit 1)', async () => {
    expect((await cli('export', '--format', 'fleet', '--nodes', '5')).code).toBe(0);
    const watch = await cli('watch', '--flows', '28232', '--udp', '0');
    expect(watch.err).toContain('is not up');
    expect(watch.code).toBe(1);
  });
});

describe('lab cli - up summary', () => {
  test('lab cli - up summary: the status hint runs the CLI through npx (a new user has no l4fleet on PATH)', () => {
    const lines = upSummary({
      id: 'l4f',
      runtime: 'netns',
      mode: 'agent',
      dataPath: { dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'l2' },
      etcd: { endpoints: ['http://10.1.0.2:2379'], members: [] },
      nats: { url: '' },
      vips: [],
      nodes: [],
      backends: [],
      clients: [],
      router: { asn: 65000, address: '', nextHops: {} },
      dashboard: null,
    });
    const hint = lines.find((l) => l.startsWith('try:'));
    expect(hint).toBe('try: export L4FLEET_ETCD=http://10.1.0.2:2379; npx l4fleet status');
  });
});

describe('lab cli - down', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  test('lab cli - down that leaves something behind (its warnings) exits 1; a clean one exits 0', async () => {
    const { Lab } = await import('./runtime/lab.js');
    const down = vi.spyOn(Lab, 'down');
    down.mockResolvedValueOnce({
      namespaces: ['l4f-d1-node1'],
      hostInterfaces: [],
      warnings: ['pid 7 still running'],
      left: ['pid 7 still running'],
    });
    const left = await cli('down', '--id', 'd1');
    expect(left).toMatchObject({ code: 1, out: expect.stringContaining('lab "d1"') });
    expect(left.err).toContain('warning: pid 7 still running');
    process.exitCode = undefined;
    down.mockResolvedValueOnce({ namespaces: ['l4f-d1-node1'], hostInterfaces: [], warnings: [], left: [] });
    expect(await cli('down', '--id', 'd1')).toMatchObject({ code: 0, err: '' });
  });
});

/** Beside the lab id tests' state root and above it, within their sandbox. */
const SENTINELS = ['precious', 's1/precious', 's1/s2/precious'];

describe('lab cli - lab id', () => {
  let dir: string;
  let root: string;
  const saved = { state: process.env.L4FLEET_LAB_STATE_DIR, id: process.env.L4FLEET_LAB_ID };
  beforeEach(() => {
    // The state root three levels down in a sandbox, so no id below (at most two `..`) reaches out of it, with a
    // sentinel at each level a path escape would remove.
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-id-'));
    root = join(dir, 's1', 's2', 'state');
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    for (const d of SENTINELS) mkdirSync(join(dir, d), { recursive: true });
    process.env.L4FLEET_LAB_STATE_DIR = root;
    delete process.env.L4FLEET_LAB_ID;
  });
  afterEach(() => {
    for (const [name, value] of [
      ['L4FLEET_LAB_STATE_DIR', saved.state],
      ['L4FLEET_LAB_ID', saved.id],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    vi.restoreAllMocks();
    process.exitCode = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function untouched(): void {
    for (const d of SENTINELS) expect(existsSync(join(dir, d))).toBe(true);
    expect(existsSync(join(root, 'a', 'b'))).toBe(true);
  }

  test.each([['..'], [''], ['a/b'], ['../..'], ['../precious'], ['LAB'], ['toolongid']])(
    'lab cli - down --id %j is a usage error naming --id, the value and the rule; nothing is removed',
    async (id) => {
      const { Lab } = await import('./runtime/lab.js');
      const down = vi.spyOn(Lab, 'down');
      const { code, err } = await cli('down', '--id', id);
      expect(err).toContain(`--id "${id}" is not a lab id: it must be 1-8 of [a-z0-9]`);
      expect(code).toBe(2);
      expect(down).not.toHaveBeenCalled();
      untouched();
    },
  );

  test.each([['..'], ['a/b']])(
    'lab cli - L4FLEET_LAB_ID=%j is a usage error naming the variable; nothing is removed',
    async (id) => {
      process.env.L4FLEET_LAB_ID = id;
      const { code, err } = await cli('down');
      expect(err).toContain(`L4FLEET_LAB_ID "${id}" is not a lab id: it must be 1-8 of [a-z0-9]`);
      expect(code).toBe(2);
      untouched();
    },
  );

  test.each([
    [['status']],
    [['kill', 'node1']],
    [['watch']],
    [['exec', 'client', 'true']],
    [['export', '--format', 'fleet']],
  ])('lab cli - %j with --id .. is a usage error too', async (args) => {
    const { code, err } = await cli('--id', '..', ...args);
    expect(err).toContain('--id ".." is not a lab id');
    expect(code).toBe(2);
    untouched();
  });

  test('lab cli - an empty L4FLEET_LAB_ID is unset: the default lab', async () => {
    process.env.L4FLEET_LAB_ID = '';
    const { Lab } = await import('./runtime/lab.js');
    const down = vi
      .spyOn(Lab, 'down')
      .mockResolvedValue({ namespaces: [], hostInterfaces: [], warnings: [], left: [] });
    expect(await cli('down')).toMatchObject({ code: 0, out: 'lab "lab": removed 0 namespaces' });
    expect(down).toHaveBeenCalledWith('lab', expect.anything());
    untouched();
  });
});

describe('lab cli - watch --check', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  const summary = {
    ...{ at: 0, total: 3, open: 3, broken: 0, perNode: {}, perBackend: {}, longestPauseMs: 120 },
    ...{ newFlows: { total: 0, perNode: {}, perBackend: {} }, brokenFlows: [] },
  };

  /** Runs `watch` on a fake lab whose flows write two ticks and end with `end`. */
  async function watchWith(end: typeof summary, ...args: string[]) {
    const { Lab } = await import('./runtime/lab.js');
    const { watch } = await import('./flows/watch.js');
    const { publishLabFlows } = await import('./flows/publish.js');
    vi.spyOn(Lab, 'open').mockReturnValue({ id: 'w1' } as unknown as ReturnType<typeof Lab.open>);
    vi.mocked(publishLabFlows).mockResolvedValueOnce({ publish: () => {}, close: async () => {} });
    vi.mocked(watch).mockImplementationOnce(async (_lab, o) => {
      o.write(JSON.stringify({ tick: 1 }));
      o.write(JSON.stringify({ tick: 2 }));
      return { summary: end };
    });
    const lines: string[] = [];
    let err = '';
    const code = await runLabCli(['--id', 'w1', 'watch', ...args], {
      out: (t) => lines.push(t),
      err: (t) => (err += t),
    });
    return { code, lines, err };
  }

  test('lab cli - watch --json --check: every stdout line is a JSON object, the verdict too', async () => {
    const { code, lines } = await watchWith(summary, '--json', '--check');
    expect(code).toBe(0);
    const objects = lines.map((l) => JSON.parse(l) as unknown);
    expect(objects.at(-1)).toEqual({
      check: { ok: true, line: expect.stringMatching(/^watch --check: ok \(flows 3 {2}open 3/) },
    });
  });

  test('lab cli - watch --json --check that fails: the verdict as JSON on stdout, the reason on stderr, exit 1', async () => {
    const { code, lines, err } = await watchWith({ ...summary, broken: 1 }, '--json', '--check');
    expect(code).toBe(1);
    const objects = lines.map((l) => JSON.parse(l) as unknown);
    expect(objects.at(-1)).toEqual({ check: { ok: false, line: expect.stringContaining('1 flows broke') } });
    expect(err).toContain('1 flows broke');
  });

  test('lab cli - watch --check without --json: the verdict as a text line', async () => {
    const { code, lines } = await watchWith(summary, '--check');
    expect(code).toBe(0);
    expect(lines.at(-1)).toMatch(/^watch --check: ok \(/);
  });
});
