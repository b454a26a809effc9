import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology, hostOf } from '../topology/model.js';
import type { LabContext } from './lab-runtime.js';

// No container is made: `run` answers `docker logs` with the old container's output, `container inspect` with the
// label of the container of that name (if any) and `inspect` with a pid.
const docker = vi.hoisted(() => ({
  calls: [] as string[][],
  logs: { code: 0, stdout: '', stderr: '' },
  /** The l4fleet.lab label of each container already there ('' : none); absent: no such container. */
  labels: new Map<string, string>(),
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    docker.calls.push(argv);
    if (argv[0] === 'docker' && argv[1] === 'logs') return docker.logs;
    if (argv[0] === 'docker' && argv[1] === 'container' && argv[2] === 'inspect') {
      const name = argv.at(-1) ?? '';
      const label = docker.labels.get(name);
      if (label === undefined) return { code: 1, stdout: '', stderr: `Error: No such container: ${name}` };
      return { code: 0, stdout: `${label === '' ? '<no value>' : label}\n`, stderr: '' };
    }
    if (argv[0] === 'docker' && argv[1] === 'inspect') return { code: 0, stdout: '4242\n', stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  }),
}));

const { createContainer } = await import('./docker.js');
const { dockerRuntime } = await import('./docker-runtime.js');

const removals = () => docker.calls.filter((c) => c[0] === 'docker' && c[1] === 'rm');

describe('docker runtime - a replaced container keeps its logs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-docker-logs-'));
    docker.calls = [];
    docker.labels.clear();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('docker runtime - the old container output goes to <host dir>/container.log before docker rm -f', async () => {
    const topology = buildTopology({ id: 'dl1', ...NFTABLES_DATA_PATH });
    docker.labels.set('l4f-dl1-node1', 'dl1');
    docker.logs = { code: 0, stdout: 'agent: listening\n', stderr: 'agent: peer down\n' };
    await createContainer(topology, hostOf(topology, 'node1'), (h) => join(dir, h));
    const log = readFileSync(join(dir, 'node1', 'container.log'), 'utf8');
    expect(log).toContain('agent: listening');
    expect(log).toContain('agent: peer down');
    expect(log).toContain('l4f-dl1-node1');
    const order = docker.calls.map((c) => c.slice(0, 2).join(' '));
    expect(order.indexOf('docker logs')).toBeLessThan(order.indexOf('docker rm'));
  });

  test('docker runtime - no old container: no log file', async () => {
    const topology = buildTopology({ id: 'dl2', ...NFTABLES_DATA_PATH });
    docker.logs = { code: 1, stdout: '', stderr: 'Error: No such container: l4f-dl2-node1' };
    await createContainer(topology, hostOf(topology, 'node1'), (h) => join(dir, h));
    expect(() => readFileSync(join(dir, 'node1', 'container.log'), 'utf8')).toThrow(/ENOENT/);
  });

  test('docker runtime - removeHost (a failed add-node) keeps the container output before docker rm -f', async () => {
    const topology = buildTopology({ id: 'dl3', ...NFTABLES_DATA_PATH });
    const lab = { id: 'dl3', topology, hostDir: (h: string) => join(dir, h) } as unknown as LabContext;
    docker.labels.set('l4f-dl3-node1', 'dl3');
    docker.logs = { code: 0, stdout: 'agent: starting\n', stderr: 'agent: config: pools[0]: invalid\n' };
    await dockerRuntime.removeHost(lab, 'node1');
    expect(readFileSync(join(dir, 'node1', 'container.log'), 'utf8')).toContain('agent: config: pools[0]: invalid');
    const order = docker.calls.map((c) => c.slice(0, 2).join(' '));
    expect(order.indexOf('docker logs')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('docker logs')).toBeLessThan(order.indexOf('docker rm'));
  });
});

describe('docker runtime - a container of the same name that is not the lab is left alone', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-docker-foreign-'));
    docker.calls = [];
    docker.labels.clear();
    docker.logs = { code: 0, stdout: 'someone else\n', stderr: '' };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test.each([
    ['', /container "l4f-df1-node1" is not lab "df1"'s \(it has no label l4fleet\.lab\)/],
    ['other', /container "l4f-df1-node1" is not lab "df1"'s \(it has label l4fleet\.lab=other\)/],
  ])('label %j: createContainer refuses, naming it, and removes nothing', async (label, message) => {
    const topology = buildTopology({ id: 'df1', ...NFTABLES_DATA_PATH });
    docker.labels.set('l4f-df1-node1', label);
    await expect(createContainer(topology, hostOf(topology, 'node1'), (h) => join(dir, h))).rejects.toThrow(message);
    expect(removals()).toEqual([]);
  });

  test('docker runtime - removeHost refuses a foreign container of the host name and removes nothing', async () => {
    const topology = buildTopology({ id: 'df2', ...NFTABLES_DATA_PATH });
    const lab = { id: 'df2', topology, hostDir: (h: string) => join(dir, h) } as unknown as LabContext;
    docker.labels.set('l4f-df2-node1', 'other');
    await expect(dockerRuntime.removeHost(lab, 'node1')).rejects.toThrow(/l4f-df2-node1.*l4fleet\.lab=other/);
    expect(removals()).toEqual([]);
  });
});
