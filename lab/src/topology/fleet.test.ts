import { readFileSync } from 'node:fs';
import { parseFleet, parseFleetText } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { labFleet, labFleetYaml } from './fleet.js';
import { buildTopology } from './model.js';

describe('lab fleet file', () => {
  test('the generated fleet is valid: one TCP, one UDP and one IPv6 VIP, members named like the backends', () => {
    const fleet = parseFleet(labFleet(buildTopology({ backends: 4 })));
    expect(fleet.vips.map((v) => `${v.protocol} ${v.address}:${v.port}`)).toEqual([
      'tcp 198.51.100.10:80',
      'udp 198.51.100.11:7000',
      'tcp 2001:db8:100::10:80',
    ]);
    for (const pool of fleet.pools) {
      expect(pool.members.map((m) => m.name)).toEqual(['backend1', 'backend2', 'backend3', 'backend4']);
    }
    expect(fleet.pools.find((p) => p.name === 'echo-udp')?.healthCheck.type).toBe('udp');
  });

  test('deploy/examples/lab-fleet.yaml is the generator output for the default lab', () => {
    const file = readFileSync(new URL('../../../deploy/examples/lab-fleet.yaml', import.meta.url), 'utf8');
    expect(file).toBe(labFleetYaml(buildTopology()));
    expect(parseFleetText(file).vips).toHaveLength(3);
  });
});
