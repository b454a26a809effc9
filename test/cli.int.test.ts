/** `l4fleet` in-process against a real etcd (plain, then TLS + auth). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CliIo, runCli } from '@l4fleet/cli';
import { backendsForPool, parseFleetText } from '@l4fleet/config';
import { buildNamedTable, slotOf } from '@l4fleet/maglev';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const FLEET = `
hashSeed: 0x5eed
pools:
  - name: web
    healthCheck: { type: http, port: 8080, path: /healthz, expectStatus: 200, intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 }
    members:
      - { name: be1, address: 198.18.0.21, port: 80, weight: 2 }
      - { address: 198.18.0.22, port: 80 }
      - { address: 198.18.0.23, port: 80, state: draining }
  - name: dns
    healthCheck: { type: udp, payload: ping }
    members:
      - { address: "2001:db8::1", port: 53 }
      - { address: "2001:db8::2", port: 53 }
vips:
  - { address: 198.51.100.10, port: 80, protocol: tcp, pool: web }
  - { address: "2001:db8::53", port: 53, protocol: udp, pool: dns, tableSize: 4093, hash: source-ip }
`;

/** The command as npm installs it (built by `npm run build`, as CI does before the tests). */
const CLI_BIN = fileURLToPath(new URL('../packages/cli/bin/l4fleet.js', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-cli-int-'));
const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(global: string[], ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli([...argv, ...global], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cli - against a real etcd', () => {
  let etcd: EtcdHandle;
  let g: string[];
  beforeAll(async () => {
    etcd = await startEtcd();
    g = ['--etcd', etcd.endpoints.join(','), '--prefix', `/cli-${Math.random().toString(36).slice(2, 8)}`];
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  test('apply, --dry-run with predicted churn, get -o json, explain flow matching maglev, exit codes', async () => {
    const f1 = file('f1.yaml', FLEET);
    const first = await cli(g, 'apply', '-f', f1, '--new-fleet');
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/applied: revision \d+/);

    // Remove one of 2 equal-weight-ish members: the dry run predicts churn and writes nothing.
    const f2 = file('f2.yaml', FLEET.replace('      - { address: 198.18.0.22, port: 80 }\n', ''));
    const before = JSON.parse((await cli(g, 'status', '-o', 'json')).out).revision;
    const dry = await cli(g, 'apply', '-f', f2, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('- member web/198.18.0.22:80');
    const m = /churn 198\.51\.100\.10:80\/tcp \(pool web\): (\d+\.\d\d)% of slots move/.exec(dry.out);
    expect(m).not.toBeNull();
    // 198.18.0.22 had weight 1 of 3: about a third of the slots move, all of them its own.
    expect(Number(m![1])).toBeGreaterThan(25);
    expect(Number(m![1])).toBeLessThan(40);
    expect(JSON.parse((await cli(g, 'status', '-o', 'json')).out).revision).toBe(before);

    const vips = JSON.parse((await cli(g, 'get', 'vips', '-o', 'json')).out);
    expect(vips).toHaveLength(2);
    for (const v of vips)
      for (const k of ['address', 'port', 'protocol', 'pool', 'tableSize', 'hash']) expect(v).toHaveProperty(k);
    expect(vips[1]).toMatchObject({
      address: '2001:db8::53',
      port: 53,
      protocol: 'udp',
      pool: 'dns',
      tableSize: 4093,
      hash: 'source-ip',
    });

    // explain flow = buildNamedTable + slotOf computed here independently from the file.
    const fleet = parseFleetText(FLEET);
    const web = buildNamedTable(backendsForPool(fleet.pools[0]!, new Map()), 65_537);
    for (const sport of [1000, 2000, 3000, 40_000]) {
      const r = await cli(g, 'explain', 'flow', `198.18.113.7:${sport}`, '198.51.100.10:80/tcp', '-o', 'json');
      expect(r.code).toBe(0);
      const ex = JSON.parse(r.out);
      const slot = slotOf(
        { src: '198.18.113.7', sport, dst: '198.51.100.10', dport: 80, protocol: 'tcp' },
        65_537,
        0x5eed,
      );
      expect(ex.slot).toBe(slot);
      expect(ex.backend).toBe(web.backends[web.slots[slot]!]);
    }
    const v6 = JSON.parse(
      (await cli(g, 'explain', 'flow', '[2001:db8:1::9]:5000', '[2001:db8::53]:53/udp', '-o', 'json')).out,
    );
    expect(v6.slot).toBe(
      slotOf(
        { src: '2001:db8:1::9', sport: 5000, dst: '2001:db8::53', dport: 53, protocol: 'udp' },
        4093,
        0x5eed,
        'source-ip',
      ),
    );
    expect(['[2001:db8::1]:53', '[2001:db8::2]:53']).toContain(v6.backend);

    // Exit codes: invalid file 1 (and nothing changes), usage 2, unknown VIP 1.
    const bad = await cli(g, 'apply', '-f', file('bad.yaml', FLEET.replace('tableSize: 4093', 'tableSize: 4096')));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('error: vips[1].tableSize: 4096 is not prime');
    expect(JSON.parse((await cli(g, 'status', '-o', 'json')).out).revision).toBe(before);
    expect((await cli(g, 'get', 'things')).code).toBe(2);
    expect((await cli(g, 'explain', 'flow', '1.2.3.4:5', '198.51.100.99:80/tcp')).code).toBe(1);
    expect((await cli([], 'get', 'vips', '--etcd', '')).code).toBe(2);
  });

  test('node drain shows in get nodes; status reports the fleet', async () => {
    const typo = await cli(g, 'node', 'drain', 'lb7');
    expect(typo.code).toBe(1); // no agent registered lb7: refused, and no phantom node appears
    expect(typo.err).toContain('node "lb7": no such node');
    expect(JSON.parse((await cli(g, 'get', 'nodes', '-o', 'json')).out)).toEqual([]);
    expect((await cli(g, 'node', 'drain', 'lb7', '--force')).code).toBe(0);
    const nodes = JSON.parse((await cli(g, 'get', 'nodes', '-o', 'json')).out);
    expect(nodes).toEqual([{ name: 'lb7', lease: false, drained: true, record: null, status: null }]);
    const st = await cli(g, 'status');
    expect(st.out).toContain('Desired revision:');
    expect(st.out).toMatch(/lb7\s+gone\s+yes/);
  });

  test('member weight: the new weight is in etcd and in describe vip; the table moves by the predicted churn', async () => {
    const before = JSON.parse((await cli(g, 'status', '-o', 'json')).out).revision;
    const r = await cli(g, 'member', 'weight', 'web', '198.18.0.22:80', '4');
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^weight web\/198\.18\.0\.22:80 1 -> 4: revision \d+\nchurn 198\.51\.100\.10:80\/tcp: /);
    expect(JSON.parse((await cli(g, 'status', '-o', 'json')).out).revision).toBeGreaterThan(before);
    const d = await cli(g, 'describe', 'vip', '198.51.100.10:80/tcp');
    expect(d.out).toMatch(/198\.18\.0\.22:80\s+198\.18\.0\.22:80\s+4\s+active/);
    const same = await cli(g, 'member', 'weight', 'web', '198.18.0.22:80', '4');
    expect(same.out).toContain('weight web/198.18.0.22:80 is 4 already: nothing written');
  });

  test('vip sources add / clear: the prefixes are in etcd, in describe vip and explain flow; the table is the same', async () => {
    const vip = '198.51.100.10:80/tcp';
    const checksum = async () => JSON.parse((await cli(g, 'describe', 'vip', vip, '-o', 'json')).out).checksum;
    const before = await checksum();
    const r = await cli(g, 'vip', 'sources', 'add', vip, '198.18.113.0/24');
    expect(r.err).toBe('');
    expect(r.out).toMatch(
      /^sources add 198\.51\.100\.10:80\/tcp: revision \d+\nadmits 1 prefixes: 198\.18\.113\.0\/24$/,
    );
    expect((await cli(g, 'describe', 'vip', vip)).out).toContain(
      'Sources:      198.18.113.0/24; other clients are dropped',
    );
    expect(await checksum()).toBe(before);
    const outside = JSON.parse((await cli(g, 'explain', 'flow', '198.18.114.7:4000', vip, '-o', 'json')).out);
    expect(outside).toMatchObject({ admitted: false, backend: null });
    const inside = JSON.parse((await cli(g, 'explain', 'flow', '198.18.113.7:4000', vip, '-o', 'json')).out);
    expect(inside.admitted).toBe(true);
    expect((await cli(g, 'vip', 'sources', 'clear', vip)).out).toContain('admits every client');
    expect((await cli(g, 'describe', 'vip', vip)).out).toContain('Sources:      any client');
  });

  test('history lists the writes with their changes; get fleet --revision and rollback read an earlier one; compaction ends the history', async () => {
    const h = JSON.parse((await cli(g, 'history', '-o', 'json')).out);
    const revs = h.revisions.map((r: { revision: number }) => r.revision);
    expect(revs.length).toBeGreaterThanOrEqual(3);
    expect(h.revisions[0]).toMatchObject({ current: true });
    // The weight change of the test above, found by its detail.
    const weighted = h.revisions.find((r: { changes: { detail: string }[] | null }) =>
      r.changes?.some((c) => c.detail === 'weight 1 -> 4'),
    );
    expect(weighted).toBeDefined();
    const before = revs[revs.indexOf(weighted.revision) + 1];
    expect(before).toBeDefined();
    const old = JSON.parse((await cli(g, 'get', 'fleet', '--revision', String(before), '-o', 'json')).out);
    expect(old.pools[0].members.find((m: { address: string }) => m.address === '198.18.0.22').weight).toBe(1);
    const dry = await cli(g, 'rollback', String(before), '--dry-run');
    expect(dry.out).toContain('weight 4 -> 1');
    const done = await cli(g, 'rollback', String(before));
    expect(done.err).toBe('');
    expect(done.out).toMatch(/applied: revision \d+/);
    const now = JSON.parse((await cli(g, 'get', 'fleet', '-o', 'json')).out);
    expect(now).toEqual(old);

    // etcdctl compact at the newest write: the history is that write alone, and says why.
    const newest = JSON.parse((await cli(g, 'history', '-o', 'json')).out).revisions[0].revision;
    await etcd.etcdctl('compact', String(newest));
    const left = JSON.parse((await cli(g, 'history', '-o', 'json')).out);
    expect(left).toMatchObject({ compacted: true, more: false });
    expect(left.revisions).toHaveLength(1);
    const gone = await cli(g, 'rollback', String(before));
    expect(gone.code).toBe(1);
    expect(gone.err).toContain(`desired state at revision ${before}: etcd compacted its history past it`);
  });

  test('etcd unreachable: exit 1 with one error line that names the endpoint', async () => {
    for (const argv of [['get', 'vips'], ['status'], ['member', 'drain', 'web', 'be1']]) {
      const r = await cli(['--etcd', 'http://127.0.0.1:1'], ...argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err.split('\n'), argv.join(' ')).toHaveLength(1);
      expect(r.err, argv.join(' ')).toMatch(
        /^error: etcd at http:\/\/127\.0\.0\.1:1 does not answer \(is it running, and is that its client URL, https:\/\/ if it serves TLS\?\); etcd read [a-z ]+: 14 UNAVAILABLE: .*ECONNREFUSED 127\.0\.0\.1:1$/,
      );
      expect(r.err, argv.join(' ')).not.toContain('Resolution note');
    }
  });
});

describe('cli - TLS and auth flags end to end', () => {
  let etcd: EtcdHandle;
  beforeAll(async () => {
    etcd = await startEtcd({ tls: true, rootPassword: 'pw1' });
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  const tlsFlags = () => {
    const t = etcd.tls!;
    return [
      '--etcd',
      etcd.endpoints[0]!,
      '--cacert',
      t.caFile,
      '--cert',
      t.certFile,
      '--key',
      t.keyFile,
      '--user',
      'root',
      '--password',
      'pw1',
    ];
  };

  test('--cacert --cert --key --user --password', async () => {
    const g = tlsFlags();
    expect((await cli(g, 'apply', '-f', file('tls.yaml', FLEET), '--new-fleet')).code).toBe(0);
    expect(JSON.parse((await cli(g, 'get', 'pools', '-o', 'json')).out).map((p: { name: string }) => p.name)).toEqual([
      'web',
      'dns',
    ]);
    const wrong = await cli([...g.slice(0, -1), 'nope'], 'get', 'vips');
    expect(wrong.code).toBe(1);
    expect((await cli(g.slice(0, 8), 'get', 'vips', '--user', 'root')).code).toBe(2);
  });

  test('a TLS mistake says which: http:// to it, no CA, no client certificate', async () => {
    const t = etcd.tls!;
    const url = etcd.endpoints[0]!;
    const plain = await cli(['--etcd', url.replace('https:', 'http:')], 'get', 'vips');
    expect(plain.code).toBe(1);
    expect(plain.err).toContain(
      `etcd at ${url.replace('https:', 'http:')} does not answer (is it running, and is that`,
    );
    const handshake = `etcd at ${url}: the TLS handshake failed (check the CA that signed its certificate`;
    for (const flags of [[], ['--cacert', t.caFile]]) {
      const r = await cli(['--etcd', url, ...flags], 'get', 'vips');
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.err.split('\n'), flags.join(' ')).toHaveLength(1);
      expect(r.err, flags.join(' ')).toContain(handshake);
    }
  });

  test('the l4fleet command to https://127.0.0.1: nothing on stderr (no DEP0123 "TLS ServerName" warning)', () => {
    // grpc-js sends the endpoint's address as the TLS server name; Node warned on every command (warnings.ts).
    const r = spawnSync('node', [CLI_BIN, ...tlsFlags(), 'get', 'pools', '-o', 'json'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:/);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
