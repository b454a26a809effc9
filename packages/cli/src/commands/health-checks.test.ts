/** A pool's additional health checks in `describe vip` and `get pools`, table and JSON, on the memory store. */
import { MemoryFleetStore } from '@l4fleet/store';
import { beforeEach, describe, expect, test } from 'vitest';
import { fleetFiles, memoryCli } from '../cli.test-helper.js';

const file = fleetFiles('health-checks');

const FLEET = `
hashSeed: 0x5eed
pools:
  - name: web
    healthCheck: { type: http, port: 8080, path: /healthz }
    additionalHealthChecks:
      - { type: tcp, port: 9100 }
      - { type: dns, port: 53, query: www.lab.test }
    members:
      - { name: be1, address: 198.18.0.21, port: 80 }
  - name: either
    healthCheck: { type: http, path: /healthz }
    additionalHealthChecks:
      - { type: http, path: /ready }
    healthChecksRequired: 1
    members:
      - { name: be3, address: 198.18.0.23, port: 80 }
  - name: plain
    healthCheck: { type: tcp }
    members:
      - { name: be2, address: 198.18.0.22, port: 80 }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
  - { address: 198.51.100.11, port: 80, protocol: tcp, pool: plain }
  - { address: 198.51.100.12, port: 80, protocol: tcp, pool: either }
`;

let store: MemoryFleetStore;
const cli = memoryCli(() => store);

describe('cli - additional health checks', () => {
  beforeEach(async () => {
    store = new MemoryFleetStore();
    expect((await cli('apply', '-f', file('f.yaml', FLEET), '--new-fleet')).code).toBe(0);
  });

  test('describe vip - a line per check under the first, and that a member must pass them all', async () => {
    const lines = (await cli('describe', 'vip', '198.51.100.10:80/tcp')).out.split('\n');
    const at = lines.findIndex((l) => l.startsWith('Health check:'));
    expect(lines.slice(at, at + 5)).toEqual([
      'Health check: http port 8080 GET /healthz expect 200, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
      '         and: tcp port 9100, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
      '         and: dns port 53 A www.lab.test expect NOERROR, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
      '              (a member must pass all 3 checks: a node sees it down once one fails, up once all pass)',
      'Sources:      any client',
    ]);
  });

  test('describe vip - healthChecksRequired: how many a member must pass, in the note and in JSON', async () => {
    const lines = (await cli('describe', 'vip', '198.51.100.12:80/tcp')).out.split('\n');
    const at = lines.findIndex((l) => l.startsWith('Health check:'));
    expect(lines.slice(at + 1, at + 3)).toEqual([
      '         and: http GET /ready expect 200, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
      '              (a member must pass at least 1 of the 2 checks: a node sees it up while 1 passes, down once 2 fail)',
    ]);
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.12:80/tcp', '-o', 'json')).out);
    expect(json.healthChecksRequired).toBe(1);
    const web = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(web).not.toHaveProperty('healthChecksRequired');
  });

  test('describe vip - one check: the line it always was, nothing added', async () => {
    const lines = (await cli('describe', 'vip', '198.51.100.11:80/tcp')).out.split('\n');
    const at = lines.findIndex((l) => l.startsWith('Health check:'));
    expect(lines.slice(at, at + 2)).toEqual([
      'Health check: tcp, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
      'Sources:      any client',
    ]);
  });

  test('describe vip -o json - additionalHealthChecks beside healthCheck, only when the pool has some', async () => {
    const web = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(web.healthCheck).toMatchObject({ type: 'http', port: 8080 });
    expect(web.additionalHealthChecks).toMatchObject([
      { type: 'tcp', port: 9100 },
      { type: 'dns', port: 53, query: 'www.lab.test' },
    ]);
    const plain = JSON.parse((await cli('describe', 'vip', '198.51.100.11:80/tcp', '-o', 'json')).out);
    expect(plain.healthCheck).toMatchObject({ type: 'tcp' });
    expect(plain).not.toHaveProperty('additionalHealthChecks');
  });

  test('get pools - CHECK names every check type; JSON carries additionalHealthChecks when set', async () => {
    const out = (await cli('get', 'pools')).out;
    expect(out).toMatch(/^web\s+1\s+1\s+0\s+0\s+http\+tcp\+dns$/m);
    expect(out).toMatch(/^plain\s+1\s+1\s+0\s+0\s+tcp$/m);
    expect(out).toMatch(/^either\s+1\s+1\s+0\s+0\s+1 of http\+http$/m);
    const pools = JSON.parse((await cli('get', 'pools', '-o', 'json')).out);
    expect(pools[0].additionalHealthChecks).toMatchObject([{ type: 'tcp', port: 9100 }, { type: 'dns' }]);
    expect(pools[1].healthChecksRequired).toBe(1);
    expect(pools[2]).not.toHaveProperty('additionalHealthChecks');
  });
});
