import { tmpdir } from 'node:os';
import { parseFleet } from '@l4fleet/config';
import { MemoryFleetStore } from '@l4fleet/store';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { fleetFiles, memoryCli } from './cli.test-helper.js';
import type { CliIo } from './io.js';
import { runCli } from './program.js';

const file = fleetFiles('cli');

const FLEET = `
hashSeed: 0x5eed
pools:
  - name: web
    healthCheck: { type: http, port: 8080, path: /healthz }
    members:
      - { name: be1, address: 198.18.0.21, port: 80, weight: 2 }
      - { address: 198.18.0.22, port: 80 }
      - { address: 198.18.0.23, port: 80, state: draining }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
`;

let store: MemoryFleetStore;
const cli = memoryCli(() => store);

describe('cli - fleet commands on the memory store', () => {
  beforeEach(() => {
    store = new MemoryFleetStore();
  });

  test('apply --dry-run writes nothing; apply writes; a second apply reports churn', async () => {
    const f = file('a.yaml', FLEET);
    const dry = await cli('apply', '-f', f, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('+ vip 198.51.100.10:80/tcp');
    expect(dry.out).toContain('dry run: nothing written');
    expect((await store.getDesired()).revision).toBe(0);
    expect((await cli('apply', '-f', f, '--new-fleet')).code).toBe(0);
    const f2 = file('b.yaml', FLEET.replace('weight: 2', 'weight: 1'));
    const r = await cli('apply', '-f', f2, '--dry-run');
    expect(r.out).toContain('~ member web/be1: weight 2 -> 1');
    expect(r.out).toMatch(/churn 198\.51\.100\.10:80\/tcp \(pool web\): \d+\.\d\d% of slots move/);
  });

  test('apply and member weight note a weight that gives a member no slot, and write anyway', async () => {
    const small = FLEET.replace('pool: web }', 'pool: web, tableSize: 251 }');
    const f = file('notes.yaml', small.replace('weight: 2', 'weight: 65535'));
    const r = await cli('apply', '-f', f, '--new-fleet', '-o', 'json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.out) as { notes: string[]; result: { revision: number } };
    expect(plan.notes).toEqual([
      expect.stringMatching(
        /^pools\[0\]\.members\[1\]\.weight: 1 gives member "198\.18\.0\.22:80" no slot of vips\[0\]/,
      ),
    ]);
    expect(plan.result.revision).toBeGreaterThan(0);
    // A member edit prints only the notes it adds: raising the small member's weight leaves none.
    const raise = await cli('member', 'weight', 'web', '198.18.0.22:80', '600');
    expect(raise.code).toBe(0);
    expect(raise.out).not.toContain('note:');
    const lower = await cli('member', 'weight', 'web', '198.18.0.22:80', '1', '--dry-run');
    expect(lower.out).toContain('note: pools[0].members[1].weight: 1 gives member "198.18.0.22:80" no slot');
  });

  test('invalid file: exit 1, one line per problem on stderr, nothing written', async () => {
    const f = file(
      'bad.yaml',
      FLEET.replace('port: 80, protocol', 'port: 70000, protocol').replace('pool: web }', 'pool: nosuchpool }'),
    );
    const r = await cli('apply', '-f', f);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')).toEqual([
      'error: vips[0].port: 70000 is not a port (1-65535)',
      'error: vips[0].pool: "nosuchpool" does not exist',
    ]);
    expect((await store.getDesired()).revision).toBe(0);
  });

  test('a repeated -f is refused, not the last one silently taken', async () => {
    const a = file('twice-a.yaml', FLEET);
    const b = file('twice-b.yaml', FLEET.replace('weight: 2', 'weight: 3'));
    for (const cmd of [['apply'], ['recover'], ['probe', 'web']]) {
      const r = await cli(...cmd, '-f', a, '--file', b);
      expect(r).toMatchObject({ code: 2, out: '' });
      expect(r.err).toBe(
        `error: -f, --file: given twice (${JSON.stringify(a)}, then ${JSON.stringify(b)}); give it once`,
      );
    }
    expect((await store.getDesired()).revision).toBe(0);
  });

  test('usage errors exit 2', async () => {
    expect((await cli('get', 'widgets')).code).toBe(2);
    expect((await cli('get', 'vips', '-o', 'xml')).code).toBe(2);
    expect((await cli('explain', 'flow', 'nonsense', '1.2.3.4:80/tcp')).code).toBe(2);
    expect((await cli('frobnicate')).code).toBe(2);
  });

  // `help nosuch` printed only the usage (exit 2), never saying what was wrong; `nosuch` alone does say it.
  test.each([
    [['help', 'nosuch'], 'Usage: l4fleet [options] [command]'],
    [['member', 'help', 'nosuch'], 'Usage: l4fleet member [options] [command]'],
    [['help', 'member', 'nosuch'], 'Usage: l4fleet member [options] [command]'],
  ])('%j: the unknown command is named first, then the usage, exit 2', async (argv, usage) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.startsWith("error: unknown command 'nosuch'")).toBe(true);
    expect(r.err).toContain(usage);
  });

  test.each([
    [['help'], 'Usage: l4fleet [options] [command]'],
    [['help', 'member'], 'Usage: l4fleet member [options] [command]'],
    [['member', 'help', 'weight'], 'Usage: l4fleet member weight [options] <pool> <member> <weight>'],
    [['help', 'member', 'weight'], 'Usage: l4fleet member weight [options] <pool> <member> <weight>'],
    // The words after a command without subcommands are its arguments, as with commander's built-in help.
    [['help', 'get', 'nodes'], 'Usage: l4fleet get [options] <kind>'],
  ])('%j: the help on stdout, exit 0', async (argv, usage) => {
    const r = await cli(...argv);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out.startsWith(usage)).toBe(true);
  });

  test('get vips -o json has the fields of the file; explain flow names slot and backend', async () => {
    await cli('apply', '-f', file('c.yaml', FLEET), '--new-fleet');
    // Two live nodes, one of them announcing the VIP (its status record), and one whose lease is gone.
    const report = { tables: {}, bgp: {}, failStatic: false, desiredRevision: 1 };
    await (await store.registerNode({ name: 'lb1' })).reportStatus({ ...report, announced: ['198.51.100.10:80/tcp'] });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({ ...report, announced: [] });
    expect((await cli('get', 'vips')).out).toMatch(/198\.51\.100\.10:80\/tcp\s+enabled\s+1\/2\s+web\s/);
    const vips = JSON.parse((await cli('get', 'vips', '-o', 'json')).out);
    expect(vips).toEqual([
      {
        key: '198.51.100.10:80/tcp',
        address: '198.51.100.10',
        port: 80,
        protocol: 'tcp',
        pool: 'web',
        tableSize: 65537,
        hash: '5-tuple',
        profile: { idleTimeoutS: 300, tcpHandshakeTimeoutS: 10, tcpCloseTimeoutS: 10, onTimeout: 'drop' },
        state: 'enabled',
        announcedBy: ['lb1'],
      },
    ]);
    const r = await cli('explain', 'flow', '198.18.113.7:40000', '198.51.100.10:80/tcp', '-o', 'json');
    expect(r.code).toBe(0);
    const ex = JSON.parse(r.out);
    expect(typeof ex.slot).toBe('number');
    expect(['be1', '198.18.0.22:80']).toContain(ex.backend); // the draining member takes no new flows
  });

  // A node whose lease was gone printed `{"name":"lb9","drained":true}`: no record, status or lease key at all.
  test('get nodes -o json: every node has lease, drained, record and status, null when there is none', async () => {
    const report = { tables: {}, bgp: {}, failStatic: false, desiredRevision: 1, announced: [] };
    await (await store.registerNode({ name: 'lb1', address: '198.18.0.1' })).reportStatus(report);
    await store.setNodeDrain('lb9', true);
    const r = await cli('get', 'nodes', '-o', 'json');
    expect(r.code).toBe(0);
    const nodes = JSON.parse(r.out) as Record<string, unknown>[];
    expect(nodes.map((n) => Object.keys(n))).toEqual([
      ['name', 'lease', 'drained', 'record', 'status'],
      ['name', 'lease', 'drained', 'record', 'status'],
    ]);
    expect(nodes[0]).toMatchObject({ name: 'lb1', lease: true, drained: false, record: { address: '198.18.0.1' } });
    expect(nodes[0]?.status).toMatchObject({ desiredRevision: 1, announced: [] });
    expect(nodes[1]).toEqual({ name: 'lb9', lease: false, drained: true, record: null, status: null });
  });

  // A node record is etcd data: one written by hand (or by an older agent) with a newline or an escape sequence in its
  // address forged a row or took over the terminal. The store now refuses such an address (registerNode and its
  // readers); the table escapes anyway (the fake's record is overwritten, as by etcdctl, since the fake reads unchecked).
  test('get nodes: control characters in a cell are shown as \\xNN, never printed raw', async () => {
    await store.registerNode({ name: 'lb1', address: '198.18.0.1', version: '1' });
    store.overwriteNodeRecord('lb1', { address: '198.18.0.1\u001b]0;owned\u0007\nlb9  up' });
    const r = await cli('get', 'nodes');
    expect(r.code).toBe(0);
    expect([...r.out].filter((c) => '\u001b\u009b\u0007'.includes(c))).toEqual([]); // ESC, CSI, BEL
    expect(r.out.split('\n')).toHaveLength(2);
    expect(r.out).toContain('198.18.0.1\\x1b]0;owned\\x07\\x0alb9  up');
  });

  test('member drain/enable/add/remove and node drain', async () => {
    await cli('apply', '-f', file('d.yaml', FLEET), '--new-fleet');
    expect((await cli('member', 'drain', 'web', 'be1')).code).toBe(0);
    expect((await store.getDesired()).fleet.pools[0]!.members[0]!.state).toBe('draining');
    expect((await cli('member', 'enable', 'web', '198.18.0.21:80')).code).toBe(0);
    expect((await store.getDesired()).fleet.pools[0]!.members[0]!.state).toBe('active');
    expect((await cli('member', 'add', 'web', '198.18.0.24:80', '--weight', '3')).code).toBe(0);
    expect((await store.getDesired()).fleet.pools[0]!.members).toHaveLength(4);
    const dup = await cli('member', 'add', 'web', '198.18.0.24:80');
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('duplicates');
    expect((await cli('member', 'remove', 'web', '198.18.0.24:80')).code).toBe(0);
    expect((await cli('member', 'remove', 'web', 'nosuch')).code).toBe(1);
    expect((await cli('node', 'drain', 'lb1')).code).toBe(1); // not registered: a typo until proven otherwise
    expect((await cli('node', 'drain', 'lb1', '--force')).code).toBe(0);
    expect((await store.listNodes())[0]).toMatchObject({ name: 'lb1', drained: true });
  });

  test('member weight: sets the weight and prints the churn; the same weight writes nothing', async () => {
    await cli('apply', '-f', file('w.yaml', FLEET), '--new-fleet');
    const before = (await store.getDesired()).revision;
    const r = await cli('member', 'weight', 'web', '198.18.0.22:80', '5');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('weight web/198.18.0.22:80 1 -> 5: revision');
    expect(r.out).toMatch(/churn 198\.51\.100\.10:80\/tcp: [\d.]+% of slots move/);
    const after = await store.getDesired();
    expect(after.revision).toBeGreaterThan(before);
    expect(after.fleet.pools[0]!.members.find((m) => m.address === '198.18.0.22')?.weight).toBe(5);
    const same = await cli('member', 'weight', 'web', 'be1', '2');
    expect(same).toMatchObject({
      code: 0,
      out: `weight web/be1 is 2 already: nothing written (revision ${after.revision})`,
    });
    expect((await store.getDesired()).revision).toBe(after.revision);
    const preview = await cli('member', 'weight', 'web', 'be1', '7', '--dry-run');
    expect(preview.code).toBe(0);
    expect(preview.out).toContain(`weight web/be1 2 -> 7: dry run, nothing written (revision ${after.revision})`);
    expect(preview.out).toMatch(/churn 198\.51\.100\.10:80\/tcp: [\d.]+% of slots move/);
    const drainPreview = await cli('member', 'drain', 'web', 'be1', '--dry-run');
    expect(drainPreview.out).toContain(`draining web/be1: dry run, nothing written (revision ${after.revision})`);
    expect((await store.getDesired()).revision).toBe(after.revision);
    expect((await store.getDesired()).fleet.pools[0]!.members[0]).toMatchObject({ weight: 2, state: 'active' });
    const bad = await cli('member', 'weight', 'web', 'be1', '1e3');
    expect(bad).toMatchObject({ code: 2, err: 'error: weight: "1e3" is not an integer (0-65535)' });
    expect((await cli('member', 'weight', 'web', 'nosuch', '3')).code).toBe(1);
    expect((await store.getDesired()).revision).toBe(after.revision);
  });

  test('status flags nodes whose table checksum differs', async () => {
    await cli('apply', '-f', file('e.yaml', FLEET), '--new-fleet');
    const good = JSON.parse((await cli('status', '-o', 'json')).out).expectedChecksums['198.51.100.10:80/tcp'];
    const a = await store.registerNode({ name: 'lb1' });
    const b = await store.registerNode({ name: 'lb2' });
    await a.reportStatus({
      tables: { '198.51.100.10:80/tcp': good },
      announced: ['198.51.100.10:80/tcp'],
      bgp: {},
      failStatic: false,
      desiredRevision: 1,
    });
    await b.reportStatus({
      tables: { '198.51.100.10:80/tcp': 'deadbeef' },
      announced: [],
      bgp: {},
      failStatic: true,
      desiredRevision: 1,
    });
    const r = await cli('status');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/lb1\s+up\s+no\s+no\s+-\s+1\s+ok/);
    expect(r.out).toMatch(/lb2\s+up\s+no\s+yes\s+-\s+1\s+DIFFER: 198\.51\.100\.10:80\/tcp/);
    expect(r.out).toContain('1 with differing tables');
  });

  test('member add --backup: written to the fleet, shown by describe vip with no slots while others serve', async () => {
    await cli('apply', '-f', file('g.yaml', FLEET), '--new-fleet');
    expect((await cli('member', 'add', 'web', '198.18.0.29:80', '--name', 'sorry', '--backup')).code).toBe(0);
    const sorry = (await store.getDesired()).fleet.pools[0]!.members.find((m) => m.name === 'sorry');
    expect(sorry).toMatchObject({ backup: true, state: 'active' });
    const r = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(r.out).toMatch(/sorry\s+198\.18\.0\.29:80\s+1\s+active backup\s+undecided\s+0\s+0\.00%/);
    expect(r.out).not.toContain('backups serving');
    // minActiveMembers 3 with two primaries taking flows (the third drains): the backup serves beside them.
    const pga = FLEET.replace('    members:', '    minActiveMembers: 3\n    members:').replace(
      '      - { address: 198.18.0.23, port: 80, state: draining }',
      '      - { address: 198.18.0.23, port: 80, state: draining }\n      - { name: sorry, address: 198.18.0.29, port: 80, backup: true }',
    );
    const dry = await cli('apply', '-f', file('g2.yaml', pga), '--dry-run');
    expect(dry.out).toContain('~ pool web: minActiveMembers 1 -> 3');
    expect((await cli('apply', '-f', file('g2.yaml', pga))).code).toBe(0);
    const d = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(d.out).toContain('Pool:         web (minActiveMembers 3) (backups serving)');
    expect(d.out).toMatch(/sorry\s+198\.18\.0\.29:80\s+1\s+active backup\s+undecided\s+[1-9]\d*\s/);
  });

  // A reason from a node's status record (an older agent's, or written by hand) may hold an escape sequence: the text
  // lines escape it; -o json keeps it as stored, as `status -o json` and `get members -o json` do.
  test('describe vip: a probe failure reason with control characters is escaped in text, as stored in -o json', async () => {
    await cli('apply', '-f', file('pfc.yaml', FLEET), '--new-fleet');
    const status = { tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 };
    const reason = 'down\u001b]0;owned\u0007\u009b2J\nlb9: up';
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...status,
      probeFailures: { 'web/be1': { reason, sinceMs: Date.UTC(2026, 11, 4, 22, 0, 0) } },
    });
    const r = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect([...r.out].filter((c) => c !== '\n' && /\p{Cc}/u.test(c))).toEqual([]);
    expect(r.out).toContain('  be1  lb1: down\\x1b]0;owned\\x07\\x9b2J\\x0alb9: up since 2026-12-04T22:00:00.000Z');
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(json.members[0].probeFailures.lb1.reason).toBe(reason);
  });

  test("describe vip names, per node, why a member is seen down (the status records' probeFailures)", async () => {
    await cli('apply', '-f', file('pf.yaml', FLEET), '--new-fleet');
    const status = { tables: {}, announced: [], bgp: {}, failStatic: false, desiredRevision: 1 };
    const since = Date.UTC(2026, 11, 4, 22, 0, 0);
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      ...status,
      probeFailures: { 'web/be1': { reason: 'status 503 (expected 200)', sinceMs: since } },
    });
    await (await store.registerNode({ name: 'lb2' })).reportStatus({
      ...status,
      probeFailures: {
        'web/be1': { reason: 'timeout', sinceMs: since + 1000 },
        'other/x': { reason: 'timeout', sinceMs: 1 },
      },
    });
    const r = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(r.out).toContain('Probe failures (the node, the reason of the probe that took it down):');
    expect(r.out).toContain(
      '  be1  lb1: status 503 (expected 200) since 2026-12-04T22:00:00.000Z; lb2: timeout since 2026-12-04T22:00:01.000Z',
    );
    expect(r.out).not.toContain('other');
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(json.members[0].probeFailures).toEqual({
      lb1: { reason: 'status 503 (expected 200)', since: '2026-12-04T22:00:00.000Z' },
      lb2: { reason: 'timeout', since: '2026-12-04T22:00:01.000Z' },
    });
    expect(json.members[1]).not.toHaveProperty('probeFailures');
  });

  test('sourceRanges: apply names the change, get vips counts them, describe vip lists them', async () => {
    await cli('apply', '-f', file('s1.yaml', FLEET), '--new-fleet');
    const ranged = FLEET.replace('pool: web }', 'pool: web, sourceRanges: [198.18.0.0/15, 10.1.2.3] }');
    const dry = await cli('apply', '-f', file('s2.yaml', ranged), '--dry-run');
    expect(dry.out).toContain('sourceRanges every client -> 198.18.0.0/15 10.1.2.3/32');
    expect((await cli('apply', '-f', file('s2.yaml', ranged))).code).toBe(0);
    expect((await cli('get', 'vips')).out).toMatch(
      /198\.51\.100\.10:80\/tcp\s+enabled\s+0\/0\s+web\s+65537\s+5-tuple\s+2 prefixes/,
    );
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Sources:      198.18.0.0/15, 10.1.2.3/32; other clients are dropped',
    );
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(json.vip.sourceRanges).toEqual(['198.18.0.0/15', '10.1.2.3/32']);
    const bad = await cli(
      'apply',
      '-f',
      file('s3.yaml', FLEET.replace('pool: web }', 'pool: web, sourceRanges: [10.1.2.3/8] }')),
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('vips[0].sourceRanges[0]: "10.1.2.3/8" has host bits set (the prefix is 10.0.0.0/8)');
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Sources:      198.18.0.0/15, 10.1.2.3/32',
    );
    await cli('apply', '-f', file('s1.yaml', FLEET));
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain('Sources:      any client');
  });

  test('vip sources remove takes out an IPv4-mapped prefix a fleet stored before apply refused them (the repair)', async () => {
    await store.apply(
      parseFleet({
        hashSeed: 7,
        pools: [{ name: 'web6', members: [{ name: 'a', address: '2001:db8:1::21', port: 80 }] }],
        vips: [
          {
            address: '2001:db8:100::10',
            port: 80,
            protocol: 'tcp',
            pool: 'web6',
            sourceRanges: ['2001:db8:5::/48', '::ffff:198.51.100.0/120'],
          },
        ],
      }),
    );
    const r = await cli('vip', 'sources', 'remove', '[2001:db8:100::10]:80/tcp', '::ffff:198.51.100.0/120');
    expect([r.code, r.err]).toEqual([0, '']);
    expect((await store.getDesired()).fleet.vips[0]?.sourceRanges).toEqual(['2001:db8:5::/48']);
  });

  test("vip sources add|remove|clear: the guarded edit of one VIP's prefixes, validated, nothing else changed", async () => {
    await cli('apply', '-f', file('v1.yaml', FLEET), '--new-fleet');
    const vip = '198.51.100.10:80/tcp';
    const ranges = async () => (await store.getDesired()).fleet.vips[0]?.sourceRanges;
    const { pools, hashSeed } = (await store.getDesired()).fleet;
    const dry = await cli('vip', 'sources', 'add', vip, '198.18.0.0/15', '--dry-run');
    expect(dry.out).toBe(`sources add ${vip}: dry run, nothing written (revision 1)\nadmits 1 prefixes: 198.18.0.0/15`);
    expect(await ranges()).toBeUndefined();
    expect((await cli('vip', 'sources', 'add', vip, '198.18.0.0/15', '10.1.2.3')).out).toBe(
      `sources add ${vip}: revision 2\nadmits 2 prefixes: 198.18.0.0/15, 10.1.2.3/32`,
    );
    expect((await cli('vip', 'sources', 'add', vip, '10.1.2.3/32')).out).toBe(
      `vip ${vip} admits them already: nothing written (revision 2)`,
    );
    const bad = await cli('vip', 'sources', 'add', vip, '10.1.2.3/8');
    expect([bad.code, bad.err]).toEqual([2, 'error: prefix "10.1.2.3/8" has host bits set (the prefix is 10.0.0.0/8)']);
    // Refused as apply -f refuses it in a file: an IPv4-mapped prefix admits no client on any VIP.
    const mapped = await cli('vip', 'sources', 'add', vip, '::ffff:198.51.100.0/120');
    expect([mapped.code, mapped.err]).toEqual([
      2,
      'error: prefix "::ffff:198.51.100.0/120" is an IPv4-mapped prefix (::ffff:0:0/96; write the IPv4 prefix, 198.51.100.0/24, on an IPv4 VIP)',
    ]);
    const v6 = await cli('vip', 'sources', 'add', vip, '2001:db8::/32');
    expect([v6.code, v6.err]).toEqual([
      1,
      'error: vips[0].sourceRanges[2]: "2001:db8::/32" is IPv6 but the VIP is IPv4',
    ]);
    expect((await cli('vip', 'sources', 'remove', vip, '10.1.2.3')).out).toContain('admits 1 prefixes: 198.18.0.0/15');
    const last = await cli('vip', 'sources', 'remove', vip, '198.18.0.0/15');
    expect([last.code, last.err]).toEqual([
      1,
      `error: vip ${vip}: removing every prefix would admit no client; \`vip sources clear\` admits every client`,
    ]);
    const absent = await cli('vip', 'sources', 'remove', vip, '10.9.0.0/16');
    expect([absent.code, absent.err]).toEqual([1, `error: vip ${vip}: does not list 10.9.0.0/16`]);
    expect((await cli('vip', 'sources', 'clear', vip)).out).toBe(
      `sources clear ${vip}: revision 4\nadmits every client`,
    );
    expect(await ranges()).toBeUndefined();
    expect((await store.getDesired()).fleet).toMatchObject({ pools, hashSeed });
    const missing = await cli('vip', 'sources', 'clear', '198.51.100.99:80/tcp');
    expect([missing.code, missing.err]).toEqual([1, 'error: vip 198.51.100.99:80/tcp: not in the fleet (revision 4)']);
  });

  test("vip disable|enable: the guarded edit of one VIP's state; get, describe, explain and apply say it", async () => {
    await cli('apply', '-f', file('d1.yaml', FLEET), '--new-fleet');
    const vip = '198.51.100.10:80/tcp';
    const stored = async () => (await store.getDesired()).fleet.vips[0];
    const dry = await cli('vip', 'disable', vip, '--dry-run');
    expect(dry.out).toMatch(/^disable 198\.51\.100\.10:80\/tcp: dry run, nothing written \(revision 1\)\ndisabled: /);
    expect((await stored())?.state).toBeUndefined();
    const off = await cli('vip', 'disable', vip);
    expect([off.code, off.out.split('\n')[0]]).toEqual([0, `disable ${vip}: revision 2`]);
    expect((await stored())?.state).toBe('disabled');
    expect((await cli('vip', 'disable', vip)).out).toBe(`vip ${vip} is disabled already: nothing written (revision 2)`);
    expect((await cli('get', 'vips')).out).toMatch(/198\.51\.100\.10:80\/tcp\s+disabled\s+0\/0\s+web/);
    expect(JSON.parse((await cli('get', 'vips', '-o', 'json')).out)[0].state).toBe('disabled');
    expect((await cli('describe', 'vip', vip)).out).toContain(`VIP:          ${vip} (disabled: no node serves`);
    const explained = JSON.parse((await cli('explain', 'flow', '198.18.5.5:4000', vip, '-o', 'json')).out);
    expect(explained).toMatchObject({ served: false, admitted: true, backend: null });
    expect((await cli('explain', 'flow', '198.18.5.5:4000', vip)).out).toContain(
      'backend:  (none: the VIP is disabled: no node serves or announces it)',
    );
    expect(explained.why[0]).toMatch(
      /^the VIP is disabled \(vips\[\]\.state\): no node serves or announces it; enabled, the flow would go to /,
    );
    // The fleet file round trip keeps it, and an apply of the file without it names the change.
    const got = (await cli('get', 'fleet')).out;
    expect(got).toContain('state: disabled');
    const back = await cli('apply', '-f', file('d1.yaml', FLEET), '--dry-run');
    expect(back.out).toContain('state disabled -> enabled (every node serves it again)');
    const on = await cli('vip', 'enable', vip);
    expect(on.out.split('\n')).toEqual([
      `enable ${vip}: revision 3`,
      'enabled: every node serves it again with its table and announces it while a member is usable',
      `announces ${vip} again`,
    ]);
    // Enabled is the absence of the field: older nodes read the fleet as before.
    expect(await stored()).not.toHaveProperty('state');
    expect((await cli('get', 'fleet')).out).not.toContain('state: disabled');
    const missing = await cli('vip', 'enable', '198.51.100.99:80/tcp');
    expect([missing.code, missing.err]).toEqual([1, 'error: vip 198.51.100.99:80/tcp: not in the fleet (revision 3)']);
    const bad = await cli('apply', '-f', file('d2.yaml', FLEET.replace('pool: web }', 'pool: web, state: off }')));
    expect([bad.code, bad.err]).toEqual([1, 'error: vips[0].state: "off" is not one of enabled | draining | disabled']);
  });

  test('describe vip says what the health check sends: type, port, request, host, whether the certificate is verified', async () => {
    await cli('apply', '-f', file('h.yaml', FLEET), '--new-fleet');
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Health check: http port 8080 GET /healthz expect 200, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
    const https = FLEET.replace(
      '{ type: http, port: 8080, path: /healthz }',
      '{ type: https, port: 8443, path: /healthz, host: www.example.com, verifyCertificate: true }',
    );
    expect(https).not.toBe(FLEET);
    expect((await cli('apply', '-f', file('hs.yaml', https))).code).toBe(0);
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Health check: https port 8443 GET /healthz expect 200 host www.example.com, certificate verified, every 2000 ms',
    );
    const redis = FLEET.replace(
      '{ type: http, port: 8080, path: /healthz }',
      '{ type: tcp, payload: "PING\\r\\n", expect: "+PONG" }',
    );
    expect((await cli('apply', '-f', file('ht.yaml', redis))).code).toBe(0);
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Health check: tcp send "PING\\r\\n" reply contains "+PONG", every 2000 ms',
    );
    const ldaps = FLEET.replace(
      '{ type: http, port: 8080, path: /healthz }',
      '{ type: tcp, tls: true, port: 636, host: ldap.lab.test, verifyCertificate: true }',
    );
    expect((await cli('apply', '-f', file('hl.yaml', ldaps))).code).toBe(0);
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Health check: tcp tls port 636 host ldap.lab.test, certificate verified, every 2000 ms',
    );
    const dns = FLEET.replace(
      '{ type: http, port: 8080, path: /healthz }',
      '{ type: dns, port: 53, query: www.lab.test }',
    );
    expect((await cli('apply', '-f', file('hd.yaml', dns))).code).toBe(0);
    expect((await cli('describe', 'vip', '198.51.100.10:80/tcp')).out).toContain(
      'Health check: dns port 53 A www.lab.test expect NOERROR, every 2000 ms',
    );
  });

  test('describe vip shows a member in slow start with its step, and its ramped share; JSON has the percent', async () => {
    await cli('apply', '-f', file('s.yaml', FLEET), '--new-fleet');
    const leader = await store.campaign('lb1');
    await store.writeDecided(new Map([['web/be1', 'up']]), {
      leadership: leader,
      ramps: new Map([['web/be1', { percent: 20, sinceMs: 1 }]]),
    });
    const r = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(r.out).toMatch(/be1\s+198\.18\.0\.21:80\s+2\s+active\s+up, slow start 20%\s+\d+\s+\d+\.\d+%/);
    const share = Number(/up, slow start 20%\s+\d+\s+(\d+\.\d+)%/.exec(r.out)?.[1]);
    expect(share).toBeGreaterThan(24);
    expect(share).toBeLessThan(33); // weight 2 x 20 % against 1: 0.4 / 1.4 of the slots (66.7 % without the ramp)
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(json.members.map((m: { slowStartPercent?: number }) => m.slowStartPercent ?? null)).toContain(20);
    expect((await cli('status')).out).toMatch(/decided down 0, in slow start 1\)/);
    expect(JSON.parse((await cli('status', '-o', 'json')).out)).toMatchObject({ slowStart: 1 });
  });

  test('member enable in a pool with slow start says how the member will ramp', async () => {
    const slow = FLEET.replace('  - name: web\n', '  - name: web\n    slowStartS: 30\n');
    await cli('apply', '-f', file('ss.yaml', slow), '--new-fleet');
    const r = await cli('member', 'enable', 'web', '198.18.0.23:80');
    expect(r.code).toBe(0);
    expect(r.out).toContain('slow start web/198.18.0.23:80: 20, 40, 60, 80 % of its weight over 30 s, then all of it');
    expect((await cli('member', 'drain', 'web', 'be1')).out).not.toContain('slow start');
  });

  test('minUpMembers: apply names it, describe vip says whether the fleet announces the VIP and which nodes do', async () => {
    await cli('apply', '-f', file('mu.yaml', FLEET), '--new-fleet');
    await (await store.registerNode({ name: 'lb1' })).reportStatus({
      tables: {},
      announced: ['198.51.100.10:80/tcp'],
      bgp: {},
      failStatic: false,
      desiredRevision: 1,
    });
    const plain = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(plain.out).toContain('Announced:    by 1 of 1 live nodes (2 members take new flows)');
    // Two members take new flows (the third drains): 3 withdraws the VIP, 4 could never announce it.
    const withMin = (n: number) => FLEET.replace('    members:', `    minUpMembers: ${n}\n    members:`);
    const four = await cli('apply', '-f', file('mu4.yaml', withMin(4)));
    expect([four.code, four.err]).toEqual([
      1,
      expect.stringContaining(
        "pools[0].minUpMembers: 4 is more than the pool's 3 members: its VIPs would never be announced",
      ),
    ]);
    const dry = await cli('apply', '-f', file('mu3.yaml', withMin(3)), '--dry-run');
    expect(dry.out).toContain(
      '~ pool web: minUpMembers 1 -> 3 (VIPs announced while at least that many members take new flows)',
    );
    expect(dry.out).toContain(
      "withdraws 198.51.100.10:80/tcp on every node: only 2 members take new flows, fewer than the pool's minUpMembers 3",
    );
    expect((await cli('apply', '-f', file('mu3.yaml', withMin(3)))).code).toBe(0);
    const d = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(d.out).toContain('Pool:         web (minUpMembers 3)');
    expect(d.out).toContain(
      "Announced:    by 1 of 1 live nodes: only 2 members take new flows, fewer than the pool's minUpMembers 3",
    );
    const json = JSON.parse((await cli('describe', 'vip', '198.51.100.10:80/tcp', '-o', 'json')).out);
    expect(json).toMatchObject({ membersTakingFlows: 2, minUpMembers: 3, announceable: false, announcedBy: ['lb1'] });
    const back = await cli('apply', '-f', file('mu2.yaml', withMin(2)), '--dry-run', '-o', 'json');
    expect(JSON.parse(back.out).announcements).toEqual([{ vip: '198.51.100.10:80/tcp', announced: true }]);
  });

  test('vip drain: new flows refused, open flows and route kept; get, describe, status, explain say it', async () => {
    await cli('apply', '-f', file('dr.yaml', FLEET), '--new-fleet');
    const key = '198.51.100.10:80/tcp';
    const d = await cli('vip', 'drain', key);
    expect(d.out).toMatch(
      /^drain 198\.51\.100\.10:80\/tcp: revision \d+\ndraining: every node keeps announcing it and forwarding its open flows \(a TCP connection ECMP moves to another node included\), and drops new ones/,
    );
    expect((await store.getDesired()).fleet.vips[0]?.state).toBe('draining');
    expect((await cli('get', 'vips')).out).toMatch(/198\.51\.100\.10:80\/tcp\s+draining\s/);
    const described = (await cli('describe', 'vip', key)).out;
    expect(described).toContain('VIP:          198.51.100.10:80/tcp (draining: every node refuses new flows');
    expect(described).toContain('Announced:    by 0 of 0 live nodes (draining: its open flows only)');
    // The table is kept: a connection ECMP moves finds its backend on any node.
    expect(described).not.toContain('slots have no backend');
    expect((await cli('status')).out).toContain('VIPs: 1 (draining 1)');
    const explained = await cli('explain', 'flow', '198.18.1.1:4000', key);
    expect(explained.out).toContain(
      'the VIP is draining (vips[].state): every node refuses new flows, a TCP SYN and a UDP packet it does not remember',
    );
    expect((await cli('vip', 'drain', key)).out).toContain('is draining already');
    expect((await cli('vip', 'enable', key)).code).toBe(0);
    expect((await store.getDesired()).fleet.vips[0]).not.toHaveProperty('state');
  });

  test('vip drain of a UDP VIP or a NAT pool says what a node change ends meanwhile; a TCP VIP gets no note', async () => {
    const withUdp = `${FLEET}  - { address: 198.51.100.10, port: 80, protocol: udp, pool: web }\n`;
    await cli('apply', '-f', file('dr-udp.yaml', withUdp), '--new-fleet');
    expect((await cli('vip', 'drain', '198.51.100.10:80/tcp')).out).not.toContain('note:');
    expect((await cli('vip', 'drain', '198.51.100.10:80/udp')).out).toContain(
      '\nnote: a UDP flow that ECMP moves to another node while the VIP drains (a node added, drained or lost) ends there',
    );
    const nat = `
hashSeed: 0x5eed
pools:
  - name: app
    forwarding: nat
    members:
      - { address: 198.18.0.31, port: 8080 }
vips:
  - { address: 198.51.100.11, port: 80, protocol: tcp, pool: app }
`;
    await cli('apply', '-f', file('dr-nat.yaml', nat));
    const drained = await cli('vip', 'drain', '198.51.100.11:80/tcp', '--dry-run');
    expect(drained.out).toContain("\nnote: NAT connections live in one node's conntrack");
  });

  test('the last serving member leaving: every slot moves and the VIP is withdrawn, in apply and member edits', async () => {
    const one = `
hashSeed: 0x5eed
pools:
  - name: web
    members:
      - { name: be1, address: 198.18.0.21, port: 80 }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web, tableSize: 251 }
`;
    await cli('apply', '-f', file('last.yaml', one), '--new-fleet');
    const withdrawn = 'withdraws 198.51.100.10:80/tcp on every node: no member takes new flows';
    // A slot owned -> unowned once counted as the same owner: "0.00% of slots move (0/251)".
    const disable = await cli('member', 'disable', 'web', 'be1', '--dry-run');
    expect(disable.out).toContain('churn 198.51.100.10:80/tcp: 100.00% of slots move (251/251)');
    expect(disable.out).toContain(withdrawn);
    const applied = await cli(
      'apply',
      '-f',
      file('last-off.yaml', one.replace('port: 80 }', 'port: 80, state: disabled }')),
      '--dry-run',
    );
    expect(applied.out).toContain('churn 198.51.100.10:80/tcp (pool web): 100.00% of slots move (251/251)');
    expect(applied.out).toContain(withdrawn);
    expect((await cli('member', 'disable', 'web', 'be1')).out).toContain(withdrawn);
    const back = await cli('member', 'enable', 'web', 'be1');
    expect(back.out).toContain('churn 198.51.100.10:80/tcp: 100.00% of slots move (251/251)');
    expect(back.out).toContain('announces 198.51.100.10:80/tcp again');
    expect((await cli('vip', 'disable', '198.51.100.10:80/tcp')).out).toContain(
      'withdraws 198.51.100.10:80/tcp on every node: the VIP is disabled',
    );
  });

  test('apply and recover list at most 100 direct-return problems, count the rest, and end with the --proxy-only hint', async () => {
    // A fleet written for the proxy data plane: 200 pools of 25 loopback members, one VIP each, 5,000 problems.
    const pools = Array.from({ length: 200 }, (_, p) => ({
      name: `p${p}`,
      members: Array.from({ length: 25 }, (_, m) => ({ name: `m${m}`, address: `127.0.${p}.${m + 1}`, port: 80 })),
    }));
    const vips = pools.map((p, k) => ({ address: `198.51.100.${k + 1}`, port: 80, protocol: 'tcp', pool: p.name }));
    const f = file('loopback.json', JSON.stringify({ hashSeed: 7, pools, vips }));
    for (const argv of [
      ['apply', '-f', f, '--dry-run'],
      ['recover', '-f', f],
    ]) {
      const r = await cli(...argv);
      expect(r.code).toBe(1);
      const lines = r.err.split('\n');
      expect(lines.length).toBeLessThanOrEqual(102);
      expect(r.err).toContain('... and 4,900 more problems');
      expect(lines.at(-1)).toContain('may pass --proxy-only');
    }
    expect((await cli('apply', '-f', f, '--dry-run', '--proxy-only')).code).toBe(0);
  });

  test('a member edit lists at most 100 direct-return problems', async () => {
    // One pool behind 150 VIPs on port 80: a member on port 81 breaks each of them.
    const vips = Array.from({ length: 150 }, (_, k) => ({
      address: `198.51.100.${k + 1}`,
      port: 80,
      protocol: 'tcp',
      pool: 'web',
    }));
    const fleet = { hashSeed: 7, pools: [{ name: 'web', members: [{ address: '198.18.0.21', port: 80 }] }], vips };
    expect((await cli('apply', '-f', file('many-vips.json', JSON.stringify(fleet)), '--new-fleet')).code).toBe(0);
    const r = await cli('member', 'add', 'web', '198.18.0.22:81');
    expect(r.code).toBe(1);
    expect(r.err.split('\n').length).toBeLessThanOrEqual(101);
    expect(r.err).toContain('... and 50 more problems');
  });

  test('apply notes the members a table has no slot for in one line per pool and table, with the count', async () => {
    // One heavy member and 1,999 at weight 1 in a 2,003-slot table: nearly all of them own no slot.
    const members = Array.from({ length: 2_000 }, (_, m) => ({
      name: `m${m}`,
      address: `198.18.${m >> 8}.${m & 255}`,
      port: 80,
      weight: m === 0 ? 65_535 : 1,
    }));
    const fleet = {
      hashSeed: 7,
      pools: [{ name: 'web', members }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 2003 }],
    };
    const r = await cli('apply', '-f', file('slotless.json', JSON.stringify(fleet)), '--dry-run');
    expect(r.code).toBe(0);
    const notes = r.out.split('\n').filter((l) => l.startsWith('note: '));
    expect(notes).toEqual([
      expect.stringMatching(
        /^note: pools\[0\]\.members: 1,9\d\d members get no slot of vips\[0\] 198\.51\.100\.10:80\/tcp's 2003-slot table .*: members\[\d+\] "m\d+" \(weight 1\), .* and 1,9\d\d more; they take no new flows/,
      ),
    ]);
  });

  test('apply lists at most 100 notes and counts the rest', async () => {
    // 150 l2 VIPs, each with a handshake timeout nftables and bpf nodes ignore: 150 notes.
    const vips = Array.from({ length: 150 }, (_, k) => ({
      address: `198.51.100.${k + 1}`,
      port: 80,
      protocol: 'tcp',
      pool: 'web',
      profile: { tcpHandshakeTimeoutS: 7 },
    }));
    const fleet = { hashSeed: 7, pools: [{ name: 'web', members: [{ address: '198.18.0.21', port: 80 }] }], vips };
    const r = await cli('apply', '-f', file('many-notes.json', JSON.stringify(fleet)), '--dry-run');
    expect(r.code).toBe(0);
    const notes = r.out.split('\n').filter((l) => l.startsWith('note: '));
    expect(notes).toHaveLength(101);
    expect(notes.at(-1)).toBe('note: ... and 50 more notes');
  });

  test('describe vip shows members with state and share', async () => {
    await cli('apply', '-f', file('f.yaml', FLEET), '--new-fleet');
    const r = await cli('describe', 'vip', '198.51.100.10:80/tcp');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/198\.18\.0\.23:80\s+198\.18\.0\.23:80\s+1\s+draining\s+undecided\s+0\s+0\.00%/);
    expect((await cli('describe', 'vip', '198.51.100.99:80/tcp')).code).toBe(1);
  });
});

describe('cli - --etcd is checked before etcd is dialled', () => {
  /** The real store opener: a bad --etcd must fail before any connection is tried. */
  async function etcdCli(...argv: string[]) {
    const err: string[] = [];
    const io: CliIo = { out: () => undefined, err: (t) => err.push(t) };
    return { code: await runCli(argv, io), err: err.join('\n') };
  }

  test.each([
    // No port dialled 443 over plain http; 99999 reached the socket layer.
    ['http://127.0.0.1', '"http://127.0.0.1" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)'],
    [
      'http://127.0.0.1:99999',
      '"http://127.0.0.1:99999" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    ['http://127.0.0.1:0', '"http://127.0.0.1:0" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)'],
    ['https://[::1]', '"https://[::1]" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)'],
    // A path failed DNS at the first call; a user is not etcd auth.
    [
      'http://127.0.0.1:2379/v3/',
      '"http://127.0.0.1:2379/v3/" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    // ... shown masked (a user alone may be a token), with or without a scheme.
    [
      'http://u@127.0.0.1:2379',
      '"http://***@127.0.0.1:2379" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    [
      'root:S3cret@127.0.0.1:2379',
      '"***@127.0.0.1:2379" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    // A comma in the password split the URL before masking: the first half, without the '@', was shown as it was.
    [
      'http://root:Xy9,Tq7@127.0.0.1:2379',
      '"http://***@127.0.0.1:2379" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    [
      'http://127.0.0.1:2379,http://root:Xy9,Tq7@127.0.0.2:2379',
      '"http://***@127.0.0.2:2379" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
    ],
    // etcd3's constructor threw "a mix of secure and insecure hosts": exit 1, --etcd not named.
    [
      'https://127.0.0.1:2379,http://127.0.0.1:2479',
      '"http://127.0.0.1:2479" is http:// but "https://127.0.0.1:2379" is https://: all endpoints use one scheme (the etcd client dials them all alike)',
    ],
    // An empty list reached the etcd client: "Cannot construct an etcd client with no hosts specified", exit 1.
    [',', 'no endpoints in ","'],
    [' , ', 'no endpoints in " , "'],
  ])('--etcd %j: usage error', async (value, message) => {
    expect(await etcdCli('--etcd', value, 'get', 'vips')).toEqual({ code: 2, err: `error: --etcd: ${message}` });
  });

  // A named file that cannot be read is exit 1 everywhere (apply -f was; --cacert, --cert, --key and
  // dashboard --token-file were 2): the command line was right, the file is not. The etcd TLS files in the agent's
  // words (readTlsFile, as probe --ca-file); more in commands/context.test.ts.
  test.each([
    [['--cacert', '/nonexistent/ca.pem', 'get', 'vips'], '--cacert: "/nonexistent/ca.pem" cannot be read (ENOENT)'],
    [['--key', tmpdir(), 'get', 'vips'], `--key: "${tmpdir()}" is not a regular file`],
    [['dashboard', '--token-file', '/nonexistent/token'], '--token-file: cannot read /nonexistent/token: ENOENT'],
    [['apply', '-f', '/nonexistent/fleet.yaml'], '-f: cannot read /nonexistent/fleet.yaml: ENOENT'],
  ])('%j: exit 1 naming the flag and the file', async (argv, message) => {
    const r = await etcdCli('--etcd', 'http://127.0.0.1:1', ...argv);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: ${message}`);
  });

  test.each([
    [['--fleet', 'a.b'], '--fleet'],
    [['--subject-prefix', 'x y'], '--subject-prefix'],
  ])('dashboard %j: a usage error naming the flag, before etcd is dialled', async (flags, flag) => {
    const r = await etcdCli('--etcd', 'http://127.0.0.1:1', 'dashboard', '--listen', '127.0.0.1:0', ...flags);
    expect(r.code).toBe(2);
    expect(r.err).toContain(flag);
  });

  test('L4FLEET_ETCD of only commas or blanks: the same usage error', async () => {
    vi.stubEnv('L4FLEET_ETCD', ' ');
    try {
      expect(await etcdCli('get', 'vips')).toEqual({ code: 2, err: 'error: --etcd: no endpoints in " "' });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
