import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology } from '../topology/model.js';
import type { WatchedChild } from './daemon-exits.js';
import type { LabContext } from './lab-runtime.js';

// No container is made: `run` answers the runtime's docker and ip commands; `docker wait` (a long-running child,
// not a `run`) is a fake `docker` first in PATH whose answer FAKE_DOCKER_WAIT picks.
const docker = vi.hoisted(() => ({
  calls: [] as string[][],
  /** The l4fleet.lab label of the container of that name already there; absent: there is none. */
  labels: new Map<string, string>(),
  /** Images `docker image inspect` does not find. */
  missingImages: [] as string[],
  /** The labels `docker image inspect` reports per image; absent: those build-images.sh gives one of this tree. */
  imageLabels: new Map<string, Record<string, string> | null>(),
  /** This tree's labels (set once image-tree.ts is imported). */
  treeLabels: {} as Record<string, string>,
  logs: { code: 1, stdout: '', stderr: 'Error: No such container' },
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    docker.calls.push(argv);
    const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
    if (argv[0] !== 'docker') return ok();
    if (argv[1] === 'version') return ok('27.0.0\n');
    if (argv[1] === 'logs') return docker.logs;
    if (argv[1] === 'image' && argv[2] === 'inspect') {
      const missing = argv.slice(3).filter((i) => docker.missingImages.includes(i));
      if (missing.length > 0) {
        return { code: 1, stdout: '', stderr: missing.map((i) => `Error: No such image: ${i}\n`).join('') };
      }
      const image = argv.at(-1) ?? '';
      const labels = docker.imageLabels.has(image) ? docker.imageLabels.get(image) : docker.treeLabels;
      return ok(`${JSON.stringify(labels)}\n`);
    }
    if (argv[1] === 'container' && argv[2] === 'inspect') {
      const name = argv.at(-1) ?? '';
      const label = docker.labels.get(name);
      if (label === undefined) return { code: 1, stdout: '', stderr: `Error: No such container: ${name}` };
      return ok(`${label}\n`);
    }
    if (argv[1] === 'inspect') return ok('4242\n');
    return ok();
  }),
  runScript: vi.fn(async () => ({ code: 0, stdout: '', stderr: '' })),
}));

const { dockerRuntime } = await import('./docker-runtime.js');
const { IMAGE_RECIPE_LABEL, IMAGE_TREE_LABEL, imageTree } = await import('./image-tree.js');
const tree = imageTree();
docker.treeLabels = { [IMAGE_TREE_LABEL]: tree.tree, [IMAGE_RECIPE_LABEL]: tree.recipe ?? '' };
const { DaemonExits } = await import('./daemon-exits.js');
const { stopContainerWatches } = await import('./docker-wait.js');

interface Watched {
  readonly child: WatchedChild & { ended?: Promise<void>; watcherPid?: number };
  readonly host: string;
  readonly role: string;
  readonly logFile: string;
}

function fakeLab(id: string, dir: string, watched: Watched[], exits: InstanceType<typeof DaemonExits>): LabContext {
  const topology = buildTopology({ id, ...NFTABLES_DATA_PATH });
  return {
    id,
    topology,
    mode: 'agent',
    log: undefined,
    ns: (host) => `l4f-${id}-${host}`,
    hostDir: (host) => join(dir, host),
    recordPid: () => {},
    watchDaemon: (child, host, role, logFile) => {
      watched.push({ child, host, role, logFile });
      exits.watch(child, host, role, logFile);
    },
  };
}

describe('docker runtime - a container that exits ends the lab waits, named', () => {
  let dir: string;
  const path = process.env.PATH;
  let watched: Watched[];
  let exits: InstanceType<typeof DaemonExits>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-docker-runtime-'));
    mkdirSync(join(dir, 'bin'));
    const fake = join(dir, 'bin', 'docker');
    writeFileSync(
      fake,
      [
        '#!/bin/sh',
        'case "$FAKE_DOCKER_WAIT" in',
        '  exit3) echo 3; exit 0 ;;',
        '  engine-gone) echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;',
        '  *) exec sleep 30 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    process.env.PATH = `${join(dir, 'bin')}:${path}`;
    watched = [];
    exits = new DaemonExits();
    docker.calls = [];
    docker.labels.clear();
  });
  afterEach(() => {
    stopContainerWatches();
    process.env.PATH = path;
    delete process.env.FAKE_DOCKER_WAIT;
    rmSync(dir, { recursive: true, force: true });
  });

  const routerState = { pids: { router: { container: 4242 } }, killed: [] as string[] };

  test('docker runtime - the router container exiting 3 is its container role, named with where its log is', async () => {
    process.env.FAKE_DOCKER_WAIT = 'exit3';
    await dockerRuntime.startHost(fakeLab('dr1', dir, watched, exits), 'router');
    expect(watched.map((w) => [w.host, w.role])).toEqual([['router', 'container']]);
    await watched[0]?.child.ended;
    expect(exits.exited(routerState)).toBe(
      `container of router (pid 4242) exited with code 3; see docker logs l4f-dr1-router (kept in ${join(dir, 'router', 'container.log')} once it is replaced or removed)`,
    );
  });

  test('docker runtime - a docker wait that ends because the engine stopped answering is no container exit', async () => {
    process.env.FAKE_DOCKER_WAIT = 'engine-gone';
    await dockerRuntime.startHost(fakeLab('dr2', dir, watched, exits), 'router');
    await watched[0]?.child.ended;
    expect(exits.exited(routerState)).toBeUndefined();
  });

  test('docker runtime - the docker wait children are killed when the command ends', async () => {
    process.env.FAKE_DOCKER_WAIT = 'hang';
    await dockerRuntime.startHost(fakeLab('dr3', dir, watched, exits), 'router');
    const pid = watched[0]?.child.watcherPid;
    expect(pid).toBeGreaterThan(0);
    stopContainerWatches();
    await watched[0]?.child.ended;
    expect(() => process.kill(pid as number, 0)).toThrow(/ESRCH/);
    expect(exits.exited(routerState)).toBeUndefined();
  });
});

describe('docker runtime - lab images are never pulled', () => {
  beforeEach(() => {
    docker.calls = [];
    docker.missingImages = [];
    docker.imageLabels.clear();
  });

  test('docker runtime - up refuses naming the images the engine lacks and build-images.sh', async () => {
    docker.missingImages = ['l4fleet/agent:latest', 'l4fleet/control:latest'];
    await expect(dockerRuntime.resolveMode('auto')).rejects.toThrow(
      /lacks the lab images l4fleet\/agent:latest, l4fleet\/control:latest .*deploy\/docker\/build-images\.sh/,
    );
  });

  test('docker runtime - with every image: agent mode', async () => {
    await expect(dockerRuntime.resolveMode('auto')).resolves.toBe('agent');
  });

  test('docker runtime - the agent image bpf check runs with --pull never', async () => {
    await dockerRuntime.bpfMissing();
    const runs = docker.calls.filter((c) => c[0] === 'docker' && c[1] === 'run');
    expect(runs).toHaveLength(1);
    expect(runs[0]?.slice(0, 5)).toEqual(['docker', 'run', '--rm', '--pull', 'never']);
  });
});

describe('docker runtime - lab images built from another tree are refused, never run', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-docker-tree-'));
    docker.calls = [];
    docker.missingImages = [];
    docker.imageLabels.clear();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('docker runtime - up refuses an image of an older tree, naming it, both digests and build-images.sh', async () => {
    docker.imageLabels.set('l4fleet/agent:latest', { ...docker.treeLabels, [IMAGE_TREE_LABEL]: 'f00d' });
    const up = dockerRuntime.resolveMode('auto');
    await expect(up).rejects.toMatchObject({ code: 'RUNTIME_UNSUPPORTED' });
    await expect(up).rejects.toThrow(
      `the lab images l4fleet/agent:latest (l4fleet.tree=f00d, this tree's ${tree.tree}) were built from another tree`,
    );
    await expect(up).rejects.toThrow(/build them again with deploy\/docker\/build-images\.sh \(after npm run build\)$/);
  });

  test('docker runtime - images built together from an older tree are named once with what differs', async () => {
    const old = { ...docker.treeLabels, [IMAGE_TREE_LABEL]: 'f00d' };
    for (const image of ['l4fleet/router:latest', 'l4fleet/agent:latest']) docker.imageLabels.set(image, old);
    await expect(dockerRuntime.resolveMode('auto')).rejects.toThrow(
      `the lab images l4fleet/router:latest, l4fleet/agent:latest (l4fleet.tree=f00d, this tree's ${tree.tree}) were built`,
    );
  });

  test.each([
    [
      'without the labels (built before they were set)',
      null,
      `l4fleet/backend:latest (l4fleet.tree=(none), this tree's ${tree.tree}`,
    ],
    [
      'of other Dockerfiles or entrypoints',
      { ...docker.treeLabels, [IMAGE_RECIPE_LABEL]: 'beef' },
      `l4fleet/backend:latest (l4fleet.recipe=beef, this tree's ${tree.recipe}`,
    ],
  ])('docker runtime - up refuses an image %s', async (_what, labels, named) => {
    docker.imageLabels.set('l4fleet/backend:latest', labels);
    await expect(dockerRuntime.resolveMode('auto')).rejects.toThrow(named);
  });

  test('docker runtime - add-node refuses a node image of an older tree before making anything', async () => {
    docker.imageLabels.set('l4fleet/agent:latest', { ...docker.treeLabels, [IMAGE_TREE_LABEL]: 'f00d' });
    const exits = new DaemonExits();
    const lab = fakeLab('dr4', dir, [], exits);
    await expect(dockerRuntime.startHost(lab, 'node1')).rejects.toThrow(/l4fleet\/agent:latest \(l4fleet\.tree=f00d/);
    expect(docker.calls.filter((c) => c[1] === 'run' || c[1] === 'rm')).toEqual([]);
  });
});
