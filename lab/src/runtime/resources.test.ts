import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

// Nothing is killed or deleted here: `run` answers from a table of what this machine "has", and records its calls.
const machine = vi.hoisted(() => ({
  netns: '' as string,
  /** Output of `docker ps ... --format {{.Label "l4fleet.lab"}}`; undefined: no Docker engine answers. */
  dockerLabels: undefined as string | undefined,
  calls: [] as string[][],
  killed: [] as number[],
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    machine.calls.push(argv);
    const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
    if (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'list') return ok(machine.netns);
    if (argv[0] === 'docker') {
      if (machine.dockerLabels === undefined) return { code: 1, stdout: '', stderr: 'Cannot connect' };
      if (argv.includes('--format')) return ok(machine.dockerLabels);
      return ok('');
    }
    return ok('');
  }),
  namespacePids: vi.fn(async (ns: string) => (ns.startsWith('l4f-l4f-') ? [4242] : [])),
  killAll: vi.fn(async (pids: number[]) => {
    machine.killed.push(...pids);
  }),
  sleep: vi.fn(async () => {}),
}));
vi.mock('./bpffs.js', () => ({ unmountBpffsUnder: vi.fn(async () => {}) }));

const { downLab, listLabIds } = await import('./resources.js');

/** containerlab's netns links for the exported topology under the old prefix: `<prefix>-<lab name>-<node>`. */
const CLAB_NETNS = ['l4f-l4f-lab-router (id: 7)', 'l4f-l4f-lab-node1 (id: 8)'].join('\n');

describe('lab resources - which labs `down --all` removes', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-res-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
    machine.netns = '';
    machine.dockerLabels = undefined;
    machine.calls = [];
    machine.killed = [];
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab resources - namespaces named like a lab but with no lab state or container are left alone', async () => {
    machine.netns = `${CLAB_NETNS}\nl4f-lab-router (id: 1)\nl4f-lab-node1 (id: 2)`;
    mkdirSync(join(dir, 'lab'));
    const found = await listLabIds();
    expect(found.ids).toEqual(['lab']);
    expect(found.unowned).toEqual(['l4f']);
  });

  test('lab resources - a lab known only by its state dir or its labelled containers is found', async () => {
    mkdirSync(join(dir, 'old'));
    machine.dockerLabels = 'dk1\ndk1\n\n';
    machine.netns = 'l4f-dk1-router (id: 3)';
    expect((await listLabIds()).ids).toEqual(['dk1', 'old']);
    const ps = machine.calls.find((c) => c[0] === 'docker' && c[1] === 'ps');
    expect(ps).toEqual(expect.arrayContaining(['-a', '--filter', 'label=l4fleet.lab']));
  });

  test('lab resources - no Docker engine: the namespaces and state dirs still count', async () => {
    mkdirSync(join(dir, 'lab'));
    machine.netns = 'l4f-lab-router (id: 1)';
    expect((await listLabIds()).ids).toEqual(['lab']);
  });
});

describe('lab resources - down of a docker lab', () => {
  let dir: string;
  let uid: ReturnType<typeof vi.spyOn> | undefined;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    // downLab asks for root before anything else; nothing here needs it (run is mocked).
    uid = vi.spyOn(process, 'getuid').mockReturnValue(0);
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-res-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
    machine.netns = '';
    machine.dockerLabels = undefined;
    machine.calls = [];
  });
  afterEach(() => {
    uid?.mockRestore();
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab resources - a docker lab with no engine answering: down says its containers stay', async () => {
    const { writeState } = await import('./state.js');
    writeState({
      version: 1,
      id: 'dk2',
      runtime: 'docker',
      mode: 'agent',
      controlSlot: 0,
      clients: 1,
      backends: 1,
      nodeIndexes: [1],
      killed: [],
      pids: {},
      createdAt: new Date(0).toISOString(),
    });
    const found = await downLab('dk2');
    expect(found.warnings.join('\n')).toMatch(/lab "dk2" runs in Docker.*no Docker engine answers/);
    expect(found.warnings.join('\n')).toContain('eval "$(bash scripts/docker-engine.sh start)"');
  });

  test('lab resources - a broken state file and no engine answering: down says the lab may have containers left', async () => {
    mkdirSync(join(dir, 'dk3'));
    writeFileSync(join(dir, 'dk3', 'state.json'), '{"version": 1, "id": "dk3", "runt');
    const found = await downLab('dk3');
    expect(found.warnings.join('\n')).toMatch(/lab "dk3" may run in Docker.*label l4fleet\.lab=dk3/);
    expect(found.warnings.join('\n')).toContain('eval "$(bash scripts/docker-engine.sh start)"');
  });

  test('lab resources - no state but the lab namespaces and no engine answering: down says so too', async () => {
    machine.netns = 'l4f-dk4-router (id: 5)\nl4f-dk4-node1 (id: 6)';
    const found = await downLab('dk4');
    expect(found.warnings.join('\n')).toMatch(/lab "dk4" may run in Docker/);
  });

  test('lab resources - a netns lab with no engine: no warning', async () => {
    const found = await downLab('nn1');
    expect(found.warnings).toEqual([]);
  });

  test('lab resources - a namespace deleted by hand: down still kills the recorded pids whose start time matches', async () => {
    const { writeState } = await import('./state.js');
    const { pidStartTime } = await import('@l4fleet/process');
    // Processes that run (killAll is mocked: nothing is signalled); `ip netns identify` names no namespace for them.
    const gobgpd = process.pid;
    const agent = process.ppid;
    writeState({
      version: 1,
      id: 'nn2',
      runtime: 'netns',
      mode: 'agent',
      controlSlot: 0,
      clients: 1,
      backends: 1,
      nodeIndexes: [1, 2],
      killed: [],
      pids: { node2: { gobgpd, agent, bfdd: 1 } },
      // bfdd's pid now runs with another start time: a reused pid, some other process.
      starts: { node2: { gobgpd: pidStartTime(gobgpd) ?? '', agent: pidStartTime(agent) ?? '', bfdd: '1' } },
      createdAt: new Date(0).toISOString(),
    });
    machine.killed = [];
    await downLab('nn2');
    expect(machine.killed.sort()).toEqual([gobgpd, agent].sort());
  });
});
