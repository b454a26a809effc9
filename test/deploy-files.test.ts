/**
 * deploy/compose/control.yaml must load in the compose that Debian 12 ships (docker-compose 1.29.2, whose schema has
 * no top-level `name`: "Additional properties are not allowed ('name' was unexpected)") as in Compose v2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const COMPOSE = join(import.meta.dirname, '..', 'deploy/compose/control.yaml');

describe('deploy/compose/control.yaml', () => {
  test('compose file - only the top-level keys docker-compose 1.29 accepts (version, services, volumes, networks, x-*)', () => {
    const doc = parse(readFileSync(COMPOSE, 'utf8')) as Record<string, unknown>;
    const allowed = new Set(['version', 'services', 'volumes', 'networks', 'secrets', 'configs']);
    expect(Object.keys(doc).filter((k) => !allowed.has(k) && !k.startsWith('x-'))).toEqual([]);
    expect(Object.keys(doc.services as object).sort()).toEqual(['etcd', 'nats']);
  });

  test('compose file - its header says how to give the project its name (-p), as the file cannot', () => {
    const header = readFileSync(COMPOSE, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    expect(header).toContain('-p l4fleet-control');
  });
});
