import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Pids killAll reports alive after its wait (a process in D state). */
  survivors: [] as number[],
  /** `ip ... del NAME` commands that fail, by NAME, with this stderr. */
  delFails: new Map<string, string>(),
  /** Called with NAME for each `ip ... del NAME`, before its answer (what the machine changes meanwhile). */
  onDel: undefined as ((name: string) => void) | undefined,
  /** Output of `ip -o link show`. */
  links: '' as string,
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    machine.calls.push(argv);
    const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
    if (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'list') return ok(machine.netns);
    if (argv[0] === 'ip' && argv[1] === '-o' && argv[2] === 'link') return ok(machine.links);
    if (argv[0] === 'ip' && argv.at(-2) === 'del') machine.onDel?.(argv.at(-1) ?? '');
    const delFail = argv[0] === 'ip' && argv.at(-2) === 'del' ? machine.delFails.get(argv.at(-1) ?? '') : undefined;
    if (delFail !== undefined) return { code: 1, stdout: '', stderr: delFail };
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
    return pids.filter((p) => machine.survivors.includes(p));
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

describe('lab resources - down', () => {
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
    machine.survivors = [];
    machine.delFails = new Map();
    machine.onDel = undefined;
    machine.links = '';
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

  test('lab resources - a process that outlives SIGKILL: down names it and keeps the state, so a later down retries', async () => {
    const { writeState, readState } = await import('./state.js');
    const { labDir } = await import('./state.js');
    const { pidStartTime } = await import('@l4fleet/process');
    writeState({
      version: 1,
      id: 'nn3',
      runtime: 'netns',
      mode: 'agent',
      controlSlot: 0,
      clients: 1,
      backends: 1,
      nodeIndexes: [1],
      killed: [],
      pids: { node1: { agent: process.pid } },
      starts: { node1: { agent: pidStartTime(process.pid) ?? '' } },
      createdAt: new Date(0).toISOString(),
    });
    machine.survivors = [process.pid];
    const found = await downLab('nn3');
    expect(found.warnings.join('\n')).toMatch(new RegExp(`lab "nn3".*pid ${process.pid}.*SIGKILL`));
    expect(found.warnings.join('\n')).toMatch(/state .*kept.*lab down/);
    expect(existsSync(labDir('nn3'))).toBe(true);
    expect(readState('nn3')?.pids).toEqual({ node1: { agent: process.pid } });

    // It ended meanwhile: the next down removes the state.
    machine.survivors = [];
    expect((await downLab('nn3')).warnings).toEqual([]);
    expect(existsSync(labDir('nn3'))).toBe(false);
  });

  test('lab resources - a namespace or host interface that will not delete: down names it with the error, keeps the state', async () => {
    const { labDir } = await import('./state.js');
    mkdirSync(join(dir, 'nn4'));
    machine.dockerLabels = ''; // an engine that answers, with no lab containers
    machine.netns = 'l4f-nn4-node1 (id: 9)\nl4f-nn4-router (id: 10)';
    machine.links = '7: l4f-nn4-h@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n';
    machine.delFails.set(
      'l4f-nn4-node1',
      'Cannot remove namespace file "/run/netns/l4f-nn4-node1": Device or resource busy',
    );
    machine.delFails.set('l4f-nn4-h', 'RTNETLINK answers: Operation not permitted');
    const found = await downLab('nn4');
    const text = found.warnings.join('\n');
    expect(text).toMatch(/ip netns del l4f-nn4-node1.*Device or resource busy/);
    expect(text).toMatch(/ip link del l4f-nn4-h.*Operation not permitted/);
    expect(text).not.toMatch(/l4f-nn4-router/);
    expect(existsSync(labDir('nn4'))).toBe(true);

    machine.delFails = new Map();
    expect((await downLab('nn4')).warnings).toEqual([]);
    expect(existsSync(labDir('nn4'))).toBe(false);
  });

  // The host interface is one end of a veth pair: it goes when its peer's namespace is deleted, and its own delete
  // then fails on a device that is gone. What down wanted is done: no warning, and the state goes.
  test('lab resources - a host interface whose delete fails but is gone by the next listing: no warning, the state removed', async () => {
    const { labDir } = await import('./state.js');
    mkdirSync(join(dir, 'nn5'));
    machine.dockerLabels = '';
    machine.netns = 'l4f-nn5-node1 (id: 9)';
    machine.links = '7: l4f-nn5-h@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n';
    machine.delFails.set('l4f-nn5-h', 'Cannot find device "l4f-nn5-h"');
    machine.onDel = (name) => {
      if (name === 'l4f-nn5-h') machine.links = '';
    };
    const down = await downLab('nn5');
    expect(machine.calls).toContainEqual(['ip', 'link', 'del', 'l4f-nn5-h']);
    expect(down.warnings).toEqual([]);
    expect(down.left).toEqual([]);
    expect(existsSync(labDir('nn5'))).toBe(false);
  });
});
