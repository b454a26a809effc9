/**
 * docs/operator-guide.md is checked, not trusted: every block marked `<!-- example: NAME -->` goes to the real
 * parser, generator or program it claims to match, and every field the fleet and agent parsers know must be in the
 * guide's reference tables. The shell examples run in a throwaway network namespace (run under the ns lock:
 * `flock /tmp/l4fleet-lab.lock npx vitest run test/dashboard-operator-guide.test.ts`).
 * The READMEs' marked blocks (README.md, packages/agent/README.md) go to the same parsers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAgentConfig, parseAgentConfigText } from '@l4fleet/agent';
import { ConfigError, directReturnProblems, healthChecksOf, parseFleet, parseFleetText } from '@l4fleet/config';
import { frrBgpdConfig, ROUTER_SYSCTLS } from '@l4fleet/daemons';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
const GUIDE = new URL('../docs/operator-guide.md', import.meta.url);
const AGENT_README = new URL('../packages/agent/README.md', import.meta.url);
const README = new URL('../README.md', import.meta.url);

async function examples(file: URL = GUIDE): Promise<Map<string, string>> {
  const text = await readFile(file, 'utf8');
  const out = new Map<string, string>();
  for (const m of text.matchAll(/<!-- example: ([a-z0-9-]+) -->\n```[a-z]*\n([\s\S]*?)```/g)) {
    out.set(m[1] as string, m[2] as string);
  }
  return out;
}

async function example(name: string, file: URL = GUIDE): Promise<string> {
  const text = (await examples(file)).get(name);
  if (text === undefined) throw new Error(`${file.pathname}: no example "${name}"`);
  return text;
}

/** The text of `text` from the heading `heading` to the next heading of the same or a higher level. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}`);
  if (start < 0) throw new Error(`docs/operator-guide.md: no heading "${heading}"`);
  const level = /^#+/.exec(heading)?.[0] ?? '##';
  const rest = text.slice(start + heading.length + 1);
  const end = rest.search(new RegExp(`\n#{1,${level.length}} `));
  return end < 0 ? rest : rest.slice(0, end);
}

/** Known fields per section, read from the parsers' own "is not a known field (known: ...)" problems. */
function knownFields(parse: () => unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  try {
    parse();
  } catch (err) {
    for (const p of (err as { problems: { path: string; message: string }[] }).problems) {
      const m = /^is not a known field \(known: (.*)\)$/.exec(p.message);
      if (m) out.set(p.path.replace(/\[0\]/g, '[]').replace(/\.?bogus$/, ''), (m[1] as string).split(', '));
    }
  }
  return out;
}

/** Runs `script` with sh in a fresh network namespace, then `check` there; the namespace is always removed. */
async function inNamespace(script: string, check: string[]): Promise<string> {
  const ns = `l4f-guide-${process.pid % 100_000}`;
  await run('ip', ['netns', 'add', ns]);
  try {
    await run('ip', ['netns', 'exec', ns, 'sh', '-e', '-c', script]);
    return (await run('ip', ['netns', 'exec', ns, ...check])).stdout;
  } finally {
    await run('ip', ['netns', 'del', ns]);
  }
}

describe('docs/operator-guide.md', () => {
  test('guide - every field of the fleet file and agent.yaml is in the reference tables', async () => {
    const text = await readFile(GUIDE, 'utf8');
    const bogus = { bogus: 1 };
    const fleet = knownFields(() =>
      parseFleet({
        ...bogus,
        pools: [{ ...bogus, name: 'p', healthCheck: bogus, members: [{ ...bogus, address: '198.18.0.1', port: 1 }] }],
        vips: [{ ...bogus, address: '198.51.100.1', port: 1, protocol: 'tcp', pool: 'p' }],
      }),
    );
    const agent = knownFields(() =>
      parseAgentConfig({
        ...bogus,
        node: { ...bogus, name: 'n', interface: 'lo', address: '198.18.0.1' },
        bgp: { ...bogus, asn: 1, peers: [{ ...bogus, address: '198.18.0.2', asn: 2 }] },
        etcd: { ...bogus, endpoints: ['http://127.0.0.1:2379'], tls: bogus },
        nats: { ...bogus, tls: bogus },
        metrics: bogus,
        dataplane: bogus,
        health: bogus,
        drain: bogus,
        state: bogus,
        bfd: bogus,
      }),
    );
    expect([...fleet.keys()].sort()).toEqual(['', 'pools[]', 'pools[].healthCheck', 'pools[].members[]', 'vips[]']);
    expect(agent.size).toBe(14);
    const missing: string[] = [];
    const sections = new Set([...fleet.keys(), ...agent.keys()]);
    for (const [section, fields] of [...fleet, ...agent]) {
      for (const f of fields) {
        const path = section ? `${section}.${f}` : f;
        // An object field is documented by its own fields' rows (`etcd.tls.ca`), not a row of its own.
        if (sections.has(path)) continue;
        if (!text.includes(`| \`${path}\` |`)) missing.push(path);
      }
    }
    expect(missing).toEqual([]);
  });

  test('guide - the fleet-checks example parses: three checks, the agent one on its own port', async () => {
    const web = parseFleetText(await example('fleet-checks'), 'yaml').pools[0];
    expect(web?.healthCheck.type).toBe('http');
    expect(web?.additionalHealthChecks?.map((c) => `${c.type}:${c.port}`)).toEqual(['tcp:6432', 'agent:9777']);
  });

  test('guide - the fleet-dependency example parses: the second check probes the database, not the members', async () => {
    const web = parseFleetText(await example('fleet-dependency'), 'yaml').pools[0];
    expect(web?.additionalHealthChecks?.map((c) => `${c.type} ${c.address}:${c.port}`)).toEqual([
      'tcp 198.18.3.50:5432',
    ]);
    expect(web?.minUpMembers).toBe(2);
  });

  test('guide - the fleet-either example parses: one of its two checks is enough', async () => {
    const web = parseFleetText(await example('fleet-either'), 'yaml').pools[0];
    expect(web && healthChecksOf(web).map((c) => c.path)).toEqual(['/healthz', '/status']);
    expect(web?.healthChecksRequired).toBe(1);
  });

  test('guide - the fleet example parses, and the defaults the table states are what parseFleet fills', async () => {
    const fleet = parseFleetText(await example('fleet'), 'yaml');
    expect(fleet.hashSeed).toBe(0x5eed);
    const dns = fleet.pools.find((p) => p.name === 'dns');
    expect(dns?.members[0]?.name).toBe('198.18.3.31:53');
    expect(dns?.healthCheck).toMatchObject({ type: 'udp', rise: 2, fall: 4 });
    const web6 = fleet.pools.find((p) => p.name === 'web6');
    expect(web6).toMatchObject({
      forwarding: 'l2',
      guePort: 6080,
      healthCheck: { type: 'tcp', intervalMs: 2_000, timeoutMs: 1_000 },
    });
    expect(web6?.members[0]).toMatchObject({ weight: 1, state: 'active' });
    expect(fleet.vips[0]).toMatchObject({ tableSize: 65_537, hash: '5-tuple' });
    expect(() => parseFleetText('pools: []\nvips: []\nbogus: 1\n', 'yaml')).toThrow(ConfigError);
  });

  test.each([['agent'], ['agent-secure']])('guide - the %s example is a valid agent.yaml', async (name) => {
    const config = parseAgentConfigText(await example(name));
    expect(config.bgp.gobgpdAddress).toBe('127.0.0.1:50051');
    expect(config.bgp.peers[0]?.password).toBeDefined();
    if (name === 'agent-secure') {
      expect(config.etcd.tls?.cert).toBe('/etc/l4fleet/node1.pem');
      expect(config.metrics.listen).toBe('127.0.0.1:9469');
    } else {
      expect(config).toMatchObject({
        fleet: 'default',
        logLevel: 'info',
        etcd: { leaseTtlS: 10, dialTimeoutMs: 2_000 },
      });
      expect(config.state).toEqual({ enabled: true, dir: '/var/lib/l4fleet', maxBytes: 67_108_864, maxAgeS: 604_800 });
    }
  });

  test('guide - the FRR example is what frrBgpdConfig writes for the lab router', async () => {
    const expected = frrBgpdConfig({
      asn: 65000,
      routerId: '198.18.2.1',
      hostname: 'router',
      extraBgpConfig: ['no bgp network import-check', 'bgp bestpath as-path multipath-relax'],
      peerGroup: {
        name: 'NODES',
        asn: 65001,
        password: 'l4fleet-lab',
        keepaliveS: 1,
        holdTimeS: 3,
        members: ['198.18.2.11', '198.18.2.12', '198.18.2.13'],
      },
      maximumPaths: 64,
    });
    expect(await example('frr')).toBe(expected);
  });

  test("guide - the BIRD example passes BIRD's own parser (bird -p)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'l4fleet-guide-bird-'));
    try {
      const file = join(dir, 'bird.conf');
      await writeFile(file, await example('bird'));
      await run('/usr/sbin/bird', ['-p', '-c', file]);
      await writeFile(file, `${await example('bird')}\nprotocol bgp broken from nodes { neighbour 198.18.2.14; }\n`);
      await expect(run('/usr/sbin/bird', ['-p', '-c', file])).rejects.toThrow(/syntax error/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('guide - adding a node: encapsulating backends take its addresses in --nodes before it starts (they drop strangers)', async () => {
    const add = section(await readFile(GUIDE, 'utf8'), '## 3. Adding a node');
    // docs/backend-host.md: a packet whose outer source is not in --nodes is dropped; the lab's add-node does the same
    // (lab-nodes.ts: setupBackends before the host starts).
    const backends = add.search(
      /`--nodes`[\s\S]*\/etc\/l4fleet\/backend\.env[\s\S]*`systemctl reload l4fleet-backend`/,
    );
    expect(backends).toBeGreaterThan(-1);
    expect(backends).toBeLessThan(add.indexOf('Start it'));
    expect(add).toMatch(/`node\.address`[^.]*`node\.address6`/);
  });

  test("guide - removing a node: its addresses leave the backends' --nodes only after the node is gone", async () => {
    const remove = section(await readFile(GUIDE, 'utf8'), '### Removing a node');
    const gone = remove.indexOf('systemctl disable --now l4fleet-agent l4fleet-gobgpd');
    expect(gone).toBeGreaterThan(-1);
    expect(remove.indexOf('l4fleet node drain')).toBeLessThan(gone);
    const backends = remove.search(/`--nodes`[\s\S]*`systemctl reload l4fleet-backend`/);
    expect(backends).toBeGreaterThan(gone);
    expect(remove).toContain("-c 'write memory'");
  });

  test('guide - adding a node survives a reboot: units enabled (install.sh enables none), the router config written', async () => {
    const install = await readFile(new URL('../scripts/install.sh', import.meta.url), 'utf8');
    expect(install.split('\n').filter((l) => !l.startsWith('#') && /systemctl (enable|start)/.test(l))).toEqual([]);
    const add = section(await readFile(GUIDE, 'utf8'), '## 3. Adding a node');
    expect(add).toContain('`systemctl enable --now l4fleet-gobgpd l4fleet-agent`');
    expect(add).not.toMatch(/systemctl start l4fleet/);
    const vtysh = /`(vtysh -c [^`]*)`/.exec(add)?.[1] ?? '';
    expect(vtysh).toMatch(/-c 'neighbor 198\.18\.2\.14 peer-group NODES' -c 'end' -c 'write memory'$/);
    // BIRD reads its file at `birdc configure`: the new protocol goes into it, so a restart keeps it too.
    expect(add).toMatch(/BIRD: [^.]*\/etc\/bird\/bird\.conf/);
  });

  test("guide - the router sysctls are the test routers' and take effect in a namespace", async () => {
    const script = await example('router-sysctls');
    for (const s of ROUTER_SYSCTLS.filter((x) => !x.includes('rp_filter'))) expect(script).toContain(`sysctl -w ${s}`);
    const out = await inNamespace(script, [
      'sysctl',
      '-n',
      'net.ipv4.fib_multipath_hash_policy',
      'net.ipv4.ip_forward',
    ]);
    expect(out.split('\n').slice(0, 2)).toEqual(['1', '1']);
  });

  // Under nat a disabled member keeps its open connections (conntrack); the row's command must cut exactly those.
  test("guide - a disabled member's NAT connections: the state row's conntrack command deletes that member's only", async () => {
    const row = (await readFile(GUIDE, 'utf8')).split('\n').find((l) => l.startsWith('| `pools[].members[].state` |'));
    expect(row).toContain('under `forwarding: nat` a disabled or removed member');
    const cut = /`(conntrack -D [^`]*)`/.exec(row ?? '')?.[1];
    expect(cut).toBe('conntrack -D -p tcp --orig-dst VIP --orig-port-dst PORT --reply-src MEMBER');
    // A connection's entry as the NAT rules leave it: client -> VIP:80, answered by the member's port 8080.
    const entry = (client: string, vip: string, member: string, sport: number) =>
      `conntrack -I -p tcp -s ${client} -d ${vip} --sport ${sport} --dport 80 -r ${member} -q ${client} ` +
      `--reply-port-src 8080 --reply-port-dst ${sport} --state ESTABLISHED -u SEEN_REPLY -t 300`;
    const v4 = (cut as string).replace('VIP', '198.51.100.10').replace('PORT', '80').replace('MEMBER', '198.18.0.21');
    // The family follows the addresses: the same command cuts an IPv6 VIP's connections.
    const v6 = (cut as string)
      .replace('VIP', '2001:db8:100::10')
      .replace('PORT', '80')
      .replace('MEMBER', '2001:db8:1::21');
    const script = [
      entry('198.18.1.7', '198.51.100.10', '198.18.0.21', 40_000),
      entry('198.18.1.7', '198.51.100.10', '198.18.0.22', 40_001),
      entry('2001:db8:2::7', '2001:db8:100::10', '2001:db8:1::21', 40_000),
      entry('2001:db8:2::7', '2001:db8:100::10', '2001:db8:1::22', 40_001),
      v4,
      v6,
    ].join('\n');
    const out = await inNamespace(script, [
      'sh',
      '-c',
      'conntrack -L -f ipv4 2>/dev/null; conntrack -L -f ipv6 2>/dev/null',
    ]);
    const left = out.split('\n').filter((l) => l.startsWith('tcp'));
    expect(left).toHaveLength(2);
    expect(left.join('\n')).toMatch(/src=198\.18\.0\.22 /);
    expect(left.join('\n')).toMatch(/src=2001:db8:1::22 /);
  });

  test('guide - the l2 backend setup runs in a namespace: ARP quiet for the VIPs, VIPs on lo', async () => {
    const out = await inNamespace(await example('backend-l2'), [
      'sh',
      '-c',
      'sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce; ip -o addr show dev lo',
    ]);
    const [ignore, announce] = out.split('\n');
    expect([ignore, announce]).toEqual(['1', '2']);
    expect(out).toMatch(/inet 198\.51\.100\.10\/32/);
    expect(out).toMatch(/inet6 2001:db8:100::10\/128/);
  });
});

describe('packages/agent/README.md', () => {
  test('agent README - the reference agent.yaml parses with the real parser, every section of it set', async () => {
    const config = parseAgentConfigText(await example('agent-reference', AGENT_README));
    expect(config).toMatchObject({ fleet: 'default', node: { name: 'node1' }, dataplane: { driver: 'nftables' } });
    expect(config.bgp.peers[0]).toMatchObject({ holdTimeS: 3, keepaliveS: 1, ebgpMultihopTtl: 2 });
  });

  test("agent README - the bpf dataplane block, in place of the reference's, parses: every bpf option", async () => {
    const reference = parseYaml(await example('agent-reference', AGENT_README)) as Record<string, unknown>;
    const bpf = parseYaml(await example('agent-reference-bpf', AGENT_README)) as { dataplane: unknown };
    const config = parseAgentConfig({ ...reference, dataplane: bpf.dataplane });
    expect(config.dataplane).toMatchObject({
      driver: 'bpf',
      encapSourceAddress: '198.18.0.11',
      encapSourceAddress6: '2001:db8:1::11',
      pinName: 'l4fleet',
      xdp: 'off',
    });
  });
});

describe('README.md', () => {
  test('readme - the Configuration fleet file parses, every VIP on a pool of its own file, and apply takes it', async () => {
    const fleet = parseFleetText(await example('fleet', README), 'yaml');
    const pools = new Set(fleet.pools.map((p) => p.name));
    expect(fleet.vips.filter((v) => !pools.has(v.pool)).map((v) => v.pool)).toEqual([]);
    // `apply` (without --proxy-only) also refuses what direct server return cannot do.
    expect(directReturnProblems(fleet)).toEqual([]);
  });
});
