import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFleetStore, StoreError } from '@l4fleet/store';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { type CliIo, EXIT_FAILURE, EXIT_OUTCOME_UNKNOWN } from './io.js';
import { runCli } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-cli-recover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fleetFile = (name: string, members: number, seed = '') => {
  const f = join(dir, name);
  const list = Array.from({ length: members }, (_, i) => `      - { address: 198.18.0.${i + 1}, port: 80 }`);
  writeFileSync(
    f,
    `${seed}pools:\n  - name: web\n    members:\n${list.join('\n')}\nvips:\n  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }\n`,
  );
  return f;
};

let store: MemoryFleetStore;
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(argv, io, { openStore: () => Object.assign(store, { close: async () => undefined }) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cli - recovery from a corrupt desired state', () => {
  beforeEach(async () => {
    store = new MemoryFleetStore();
    await store.apply((await import('@l4fleet/config')).parseFleet({ hashSeed: 0x5eed, pools: [], vips: [] }));
  });

  test('a corrupt pointer blocks apply with the key and the way to recover; recover needs --yes', async () => {
    store.corruptDesired(0x5eed); // broken elsewhere: its hashSeed field still reads, so recovery keeps it
    const f = fleetFile('two.yaml', 2);
    const blocked = await cli('apply', '-f', f);
    expect(blocked.code).toBe(EXIT_FAILURE);
    expect(blocked.err).toContain('desired/current: ');
    expect(blocked.err).toContain('l4fleet recover -f FLEET_FILE');
    const unconfirmed = await cli('recover', '-f', f);
    expect(unconfirmed.code).toBe(EXIT_FAILURE);
    expect(unconfirmed.err).toContain('pass --yes to do it');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    const done = await cli('recover', '-f', f, '--yes');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(done.out).toContain('hash seed 0x5eed (the one the nodes serve; the file sets none)');
    const now = await store.getDesired();
    expect(now.fleet.pools[0]?.members.length).toBe(2);
    expect(now.fleet.hashSeed).toBe(0x5eed);
    expect((await cli('apply', '-f', fleetFile('three.yaml', 3))).code).toBe(0);
  });

  test.each([
    ['no readable seed', undefined],
    ['another seed', 0x9999],
  ])('a corrupt pointer with %s and a file with none: recover stores the seed the nodes serve', async (_, broken) => {
    // The broken pointer's own field (gone, or another value) is not what the nodes hold: the last write that reads
    // is, and storing anything else would move nearly every flow without --change-seed.
    store.corruptDesired(broken);
    const f = fleetFile('two-noseed.yaml', 2);
    const preview = await cli('recover', '-f', f);
    expect(preview.code).toBe(EXIT_FAILURE);
    expect(preview.err).toContain('hash seed: the file sets none, so 0x5eed, the seed the nodes serve, is stored');
    expect(preview.err).not.toContain('--change-seed');
    const done = await cli('recover', '-f', f, '--yes');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(done.out).toContain('hash seed 0x5eed (the one the nodes serve; the file sets none)');
    expect(done.out).not.toContain('note:');
    const now = await store.getDesired();
    expect(now.fleet.hashSeed).toBe(0x5eed);
    expect(now.fleet.pools[0]?.members).toHaveLength(2);
    store.corruptDesired(broken); // again, for the JSON form
    const json = await cli('recover', '-f', f, '--yes', '-o', 'json');
    expect(json.code).toBe(0);
    // result.seedSource said 'fleet' (the store was handed the served seed in the fleet) beside a top-level 'served'.
    expect(JSON.parse(json.out)).toMatchObject({
      seedSource: 'served',
      result: { hashSeed: 0x5eed, seedSource: 'served' },
    });
  });

  test('a file with no seed where etcd compacted every write that reads: the served seed is unknown, and recover says so', async () => {
    store.corruptDesired(0x9999);
    store.compactDesiredHistory(2); // only the broken write (revision 2) is left
    const f = fleetFile('noseed-compacted.yaml', 2);
    const preview = await cli('recover', '-f', f);
    expect(preview.err).toContain("the broken pointer's own hashSeed is kept where it still reads");
    expect(preview.err).toContain('the seed the nodes serve cannot be checked');
    const done = await cli('recover', '-f', f, '--yes');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(done.out).toContain('hash seed 0x9999 (kept from the broken pointer)');
    expect(done.out).toContain('note: the seed the nodes serve could not be read');
    expect((await store.getDesired()).fleet.hashSeed).toBe(0x9999);
  });

  test('a corrupt pointer with no readable seed, a file with none and no write that reads: the seed is new', async () => {
    store.corruptDesired();
    store.compactDesiredHistory(2);
    const done = await cli('recover', '-f', fleetFile('two-new.yaml', 2), '--yes');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(done.out).toMatch(/hash seed 0x[0-9a-f]+ \(NEW: .*every flow moves\)/);
    expect(done.out).toContain('note: the seed the nodes serve could not be read');
    expect((await store.getDesired()).fleet.pools[0]?.members).toHaveLength(2);
  });

  test('recover over a fleet that served another hash seed needs --change-seed, naming both seeds', async () => {
    // Another fleet's backup (or a hand-edited file): its seed rebuilds every table, as an apply's would.
    store.corruptDesired(0x5eed);
    const f = fleetFile('other-seed.yaml', 2, 'hashSeed: 0x1234\n');
    const preview = await cli('recover', '-f', f);
    expect(preview.code).toBe(EXIT_FAILURE);
    expect(preview.err).toContain('hashSeed: 0x5eed -> 0x1234');
    expect(preview.err).toContain('needs --change-seed');
    const refused = await cli('recover', '-f', f, '--yes');
    expect(refused.code).toBe(EXIT_FAILURE);
    expect(refused.err).toContain('hashSeed: 0x5eed -> 0x1234');
    expect(refused.err).toContain('every flow moves');
    expect(refused.err).toContain('pass --change-seed to do it');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    const done = await cli('recover', '-f', f, '--yes', '--change-seed');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(done.out).toContain('hash seed 0x1234 (from the file)');
    expect((await store.getDesired()).fleet.hashSeed).toBe(0x1234);
  });

  // 635be16: an outage while reading the last write that reads was taken like a write that does not read (skipped):
  // the walk found no served seed, and a file with another fleet's seed was stored without --change-seed.
  test('recover whose read of the last write that reads fails (etcd unavailable) fails and writes nothing', async () => {
    store.corruptDesired(0x5eed);
    const readAt = store.getDesiredAt.bind(store);
    const asked: number[] = [];
    store.getDesiredAt = async (revision) => {
      asked.push(revision);
      if (revision === 1) throw new StoreError('UNAVAILABLE', 'get desired at revision 1: etcd request timed out');
      return readAt(revision);
    };
    const f = fleetFile('other-seed-unavailable.yaml', 2, 'hashSeed: 0x1234\n');
    const r = await cli('recover', '-f', f, '--yes');
    expect(asked).toEqual([1]);
    expect(r.code).toBe(EXIT_FAILURE);
    expect(r.err).toContain('etcd request timed out');
    expect(r.out).toBe('');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
  });

  test('recover with the hash seed the fleet served needs no --change-seed; the preview shows both', async () => {
    store.corruptDesired(0x5eed);
    const f = fleetFile('same-seed.yaml', 2, 'hashSeed: 0x5eed\n');
    const preview = await cli('recover', '-f', f);
    expect(preview.code).toBe(EXIT_FAILURE);
    expect(preview.err).toContain('hash seed: the file sets 0x5eed; the last write that reads (revision 1) has 0x5eed');
    const done = await cli('recover', '-f', f, '--yes');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect((await store.getDesired()).fleet.hashSeed).toBe(0x5eed);
  });

  test('recover where etcd compacted every write that reads says the served seed cannot be checked', async () => {
    store.corruptDesired(0x5eed);
    store.compactDesiredHistory(2); // only the broken write (revision 2) is left
    const f = fleetFile('compacted.yaml', 2, 'hashSeed: 0x1234\n');
    const preview = await cli('recover', '-f', f);
    expect(preview.err).toContain('the seed the nodes serve cannot be checked');
    const done = await cli('recover', '-f', f, '--yes', '-o', 'json');
    expect(done.err).toBe('');
    expect(done.code).toBe(0);
    expect(JSON.parse(done.out)).toMatchObject({
      lastReadable: null,
      result: { hashSeed: 0x1234, seedSource: 'fleet' },
    });
  });

  test('recover refuses a fleet the nftables and eBPF data planes refuse, as apply does; --proxy-only allows it', async () => {
    store.corruptDesired();
    const f = join(dir, 'loopback.yaml');
    writeFileSync(
      f,
      'pools:\n  - name: web\n    members:\n      - { address: 127.0.0.1, port: 80 }\nvips:\n  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }\n',
    );
    const applied = await cli('apply', '-f', f);
    expect(applied.code).toBe(EXIT_FAILURE);
    const refused = await cli('recover', '-f', f, '--yes');
    expect(refused.code).toBe(EXIT_FAILURE);
    expect(refused.err).toContain('127.0.0.1');
    expect(refused.err).toContain('--proxy-only');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    const proxy = await cli('recover', '-f', f, '--yes', '--proxy-only');
    expect(proxy.err).toBe('');
    expect(proxy.code).toBe(0);
    expect((await store.getDesired()).fleet.pools[0]?.members[0]?.address).toBe('127.0.0.1');
  });

  // -o json without --yes printed no JSON: the preview went to stderr as an error, and a script could not read it.
  test('-o json without --yes: the preview as one JSON object on stdout, exit 1, nothing written', async () => {
    store.corruptDesired(0x5eed);
    const f = fleetFile('json-preview.yaml', 2, 'hashSeed: 0x1234\n');
    const preview = await cli('recover', '-f', f, '-o', 'json');
    expect(preview.code).toBe(EXIT_FAILURE);
    expect(JSON.parse(preview.out)).toEqual({
      done: false,
      problem: expect.stringContaining('desired/current: '),
      lastReadable: { revision: 1, hashSeed: 0x5eed },
      seed: expect.stringContaining('hash seed: the file sets 0x1234'),
      seedChange: expect.stringContaining('hashSeed: 0x5eed -> 0x1234'),
      needsChangeSeed: true,
      wouldReplaceWith: { file: f, vips: 1, pools: 1 },
    });
    expect(preview.err).toContain('pass --yes to do it');
    await expect(store.getDesired()).rejects.toMatchObject({ code: 'INVALID_RECORD' });
    const allowed = await cli('recover', '-f', f, '-o', 'json', '--change-seed');
    expect(JSON.parse(allowed.out)).toMatchObject({ done: false, needsChangeSeed: false });
  });

  test('-o json --yes: the notes said after a table write are in `notes`', async () => {
    store.corruptDesired(0x5eed);
    const f = fleetFile('json-notes.yaml', 2, 'hashSeed: 0x1234\n');
    const done = await cli('recover', '-f', f, '--yes', '--change-seed', '-o', 'json');
    expect(done.code).toBe(0);
    expect(JSON.parse(done.out)).toMatchObject({
      done: true,
      result: { hashSeed: 0x1234 },
      // without the `note: ` of the text, as apply's JSON `notes`
      notes: ['the nodes served hash seed 0x5eed (revision 1): nearly every flow moves to another backend'],
    });
  });

  test('recover refuses a desired state that reads fine', async () => {
    const r = await cli('recover', '-f', fleetFile('one.yaml', 1), '--yes');
    expect(r.code).toBe(EXIT_FAILURE);
    expect(r.err).toContain('nothing to recover');
    expect((await store.getDesired()).fleet.pools).toEqual([]);
  });

  test('an apply whose outcome is unknown says so, how to check, and exits with its own code', async () => {
    store.apply = async () => {
      throw new StoreError('OUTCOME_UNKNOWN', 'apply: outcome unknown: the fleet may or may not be live');
    };
    const f = fleetFile('four.yaml', 4);
    const r = await cli('apply', '-f', f);
    expect(r.code).toBe(EXIT_OUTCOME_UNKNOWN);
    expect(r.err).toContain('may or may not be live');
    expect(r.err).toContain(`l4fleet apply -f ${f} --dry-run`);
  });
});
