/** `l4fleet member` and `l4fleet vip` edits: what they say when the write's outcome is unknown or nothing changes. */
import { MemoryFleetStore, StoreError } from '@l4fleet/store';
import { beforeEach, describe, expect, test } from 'vitest';
import { fleetFiles, memoryCli } from '../cli.test-helper.js';
import { EXIT_OUTCOME_UNKNOWN } from '../io.js';

const file = fleetFiles('edits');

const FLEET = `
hashSeed: 0x5eed
pools:
  - name: web
    members:
      - { name: be1, address: 198.18.0.21, port: 80 }
      - { name: be2, address: 198.18.0.22, port: 80, state: draining }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
`;

let store: MemoryFleetStore;
const cli = memoryCli(() => store);

describe('cli - member and vip edits', () => {
  beforeEach(async () => {
    store = new MemoryFleetStore();
    expect((await cli('apply', '-f', file('f.yaml', FLEET), '--new-fleet')).code).toBe(0);
  });

  test.each([
    [['member', 'drain', 'web', 'be1'], 'l4fleet get members --pool web'],
    [['member', 'weight', 'web', 'be1', '3'], 'l4fleet get members --pool web'],
    [['member', 'add', 'web', '198.18.0.23:80'], 'l4fleet get members --pool web'],
    [['vip', 'disable', '198.51.100.10:80/tcp'], 'l4fleet get vips'],
    [['vip', 'sources', 'add', '198.51.100.10:80/tcp', '10.0.0.0/8'], 'l4fleet get vips'],
  ])('%j whose write has an unknown outcome exits 3 with how to check', async (argv, check) => {
    store.apply = async () => {
      throw new StoreError('OUTCOME_UNKNOWN', 'apply: outcome unknown: the fleet may or may not be live');
    };
    const r = await cli(...argv);
    expect(r.code).toBe(EXIT_OUTCOME_UNKNOWN);
    expect(r.err).toContain('may or may not be live');
    expect(r.err).toContain(`check: \`${check}\``);
  });

  test.each([
    ['enable', 'be1', 'active'],
    ['drain', 'be2', 'draining'],
  ])('member %s %s, %s already: nothing written, exit 0', async (verb, name, state) => {
    const before = (await store.getDesired()).revision;
    const r = await cli('member', verb, 'web', name);
    expect([r.code, r.err, r.out]).toEqual([
      0,
      '',
      `member web/${name} is ${state} already: nothing written (revision ${before})`,
    ]);
    expect((await store.getDesired()).revision).toBe(before);
  });
});
