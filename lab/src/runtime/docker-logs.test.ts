import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology, hostOf } from '../topology/model.js';

// No container is made: `run` answers `docker logs` with the old container's output and `inspect` with a pid.
const docker = vi.hoisted(() => ({ calls: [] as string[][], logs: { code: 0, stdout: '', stderr: '' } }));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    docker.calls.push(argv);
    if (argv[0] === 'docker' && argv[1] === 'logs') return docker.logs;
    if (argv[0] === 'docker' && argv[1] === 'inspect') return { code: 0, stdout: '4242\n', stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  }),
}));

const { createContainer } = await import('./docker.js');

describe('docker runtime - a replaced container keeps its logs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-docker-logs-'));
    docker.calls = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('docker runtime - the old container output goes to <host dir>/container.log before docker rm -f', async () => {
    const topology = buildTopology({ id: 'dl1', ...NFTABLES_DATA_PATH });
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
});
