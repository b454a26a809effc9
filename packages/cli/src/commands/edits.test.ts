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

describe('cli - member add refuses a malformed flag or endpoint before the store is read', () => {
  beforeEach(async () => {
    store = new MemoryFleetStore();
    expect((await cli('apply', '-f', file('f.yaml', FLEET), '--new-fleet')).code).toBe(0);
  });

  // Each exited 1 naming the fleet's own path (`pools[0].members[2].state`), not the flag; port 0 said (1-65535)
  // with exit 1 while port 99999 said (0-65535) with exit 2.
  test.each([
    [['198.18.0.23:80', '--state', 'Active'], '--state: "Active" is not one of active | draining | disabled'],
    [
      ['198.18.0.23:80', '--name', ''],
      '--name: "" is not a name (1-128 of A-Z a-z 0-9 . _ - : @ [ ], starting alphanumeric)',
    ],
    [
      ['198.18.0.23:80', '--name', 'a/b'],
      '--name: "a/b" is not a name (1-128 of A-Z a-z 0-9 . _ - : @ [ ], starting alphanumeric)',
    ],
    [['foo:80'], 'endpoint: "foo:80": "foo" is not an IPv4 or IPv6 address'],
    [['198.18.0.23:0'], 'endpoint: port 0 of "198.18.0.23:0" is not a port (1-65535)'],
    [['198.18.0.23:99999'], 'endpoint: port 99999 of "198.18.0.23:99999" is not a port (1-65535)'],
  ])('member add web %j: usage error naming the flag and the value, nothing written', async (argv, message) => {
    let reads = 0;
    const getDesired = store.getDesired.bind(store);
    const before = (await getDesired()).revision;
    store.getDesired = async () => {
      reads += 1;
      return getDesired();
    };
    const r = await cli('member', 'add', 'web', ...argv);
    expect(r).toEqual({ code: 2, out: '', err: `error: ${message}` });
    expect(reads).toBe(0);
    expect((await getDesired()).revision).toBe(before);
  });

  test('control: a well-formed add is written', async () => {
    const r = await cli('member', 'add', 'web', '198.18.0.23:80', '--name', 'be3', '--state', 'draining');
    expect(r.code).toBe(0);
    expect((await store.getDesired()).fleet.pools[0]?.members.map((m) => [m.name, m.state])).toContainEqual([
      'be3',
      'draining',
    ]);
  });
});
