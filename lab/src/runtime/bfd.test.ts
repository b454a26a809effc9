import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { buildTopology } from '../topology/model.js';
import { prepareNodeBfdd } from './bfd.js';
import { bgpdConfig } from './frr.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('lab bfd - router and node config', () => {
  test('with BFD the router peer group uses the profile and each node peers with the router at the lab timers', () => {
    const topology = buildTopology({ id: 'bt', bfd: { intervalMs: 50, multiplier: 4 } });
    expect(bgpdConfig(topology)).toContain(' neighbor NODES bfd profile nodes\n');
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-bfd-test-'));
    dirs.push(dir);
    const paths = prepareNodeBfdd(topology, 'node2', dir);
    const conf = readFileSync(join(paths?.dir ?? '', 'bfdd.conf'), 'utf8');
    expect(conf).toContain(' peer 198.18.2.1 local-address 198.18.2.12\n');
    expect(conf).toContain('  receive-interval 50\n  transmit-interval 50\n  detect-multiplier 4\n');
  });

  test('without BFD: no bfd lines and no node bfdd', () => {
    const topology = buildTopology({ id: 'bt' });
    expect(bgpdConfig(topology)).not.toContain('bfd');
    expect(prepareNodeBfdd(topology, 'node1', tmpdir())).toBeUndefined();
  });

  test.each([
    [{ intervalMs: 5, multiplier: 3 }, 'bfd.intervalMs 5 is not an integer in 10..60000'],
    [{ intervalMs: 100, multiplier: 1 }, 'bfd.multiplier 1 is not an integer in 2..255'],
  ])('timers out of FRR bounds are refused, naming the field and value: %j', (bfd, message) => {
    expect(() => buildTopology({ id: 'bt', bfd })).toThrow(message);
  });
});
