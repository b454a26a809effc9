/**
 * Three agents against the real daemons: etcd, NATS, one gobgpd per node (host namespace, each on its own
 * address) and an FRR router in a namespace doing ECMP. Backends are TCP echo servers on loopback; node n2 runs
 * the proxy data plane so a flow through it can be checked across its drain, the others the recording one.
 *
 * Covers the list: a failing member flips on every node within interval x fall + 1 s with identical
 * tables; invalid state written straight into etcd is rejected and the last good state keeps serving; gobgpd
 * killed is re-announced within 5 s; a drained node's route leaves FRR while its flows keep flowing; etcd killed
 * for 60 s changes neither forwarding nor announcements and recovers cleanly.
 */
import { spawn } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AgentEvent, parseAgentConfig, type RunningAgent, runAgent } from '@l4fleet/agent';
import { type Fleet, parseFleet } from '@l4fleet/config';
import { type FrrRouter, type GobgpdHandle, type NatsHandle, startFrr, startGobgpd, startNats } from '@l4fleet/daemons';
import { createProxyDataPlane, createRecordingDataPlane, type DataPlane } from '@l4fleet/dataplane';
import { freePort } from '@l4fleet/process';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { eventually } from '@l4fleet/test-support/eventually';
import { type NatsConnection, connect as natsConnect } from 'nats';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const ROUTER_ASN = 65000;
const NODE_ASN = 65001;
const VIP_ADDRESS = '198.51.100.10';
const VIP_PREFIX = `${VIP_ADDRESS}/32`;
const INTERVAL_MS = 500;
const FALL = 2;
const OUTAGE_MS = Number(process.env.L4FLEET_ETCD_OUTAGE_MS ?? 60_000);

/** What `gobgp neighbor -j` says of a peer (the fields read here). */
interface Neighbor {
  readonly conf: { readonly neighbor_address: string };
  readonly timers?: { readonly state?: { readonly uptime?: { readonly seconds?: number } } };
}

interface TestNode {
  name: string;
  address: string;
  password: string;
  gobgpd: GobgpdHandle;
  dataPlane: DataPlane;
  running: RunningAgent;
}

function echoServer(): Promise<Server> {
  const s = createServer((c) => c.pipe(c));
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}
const portOf = (s: Server) => (s.address() as AddressInfo).port;

function fleetFor(backends: readonly Server[], vipPort: number): Fleet {
  return parseFleet({
    hashSeed: 0x5eed,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'tcp', intervalMs: INTERVAL_MS, timeoutMs: 200, rise: 1, fall: FALL },
        members: backends.map((b, i) => ({ name: `be${i + 1}`, address: '127.0.0.1', port: portOf(b) })),
      },
    ],
    vips: [{ address: VIP_ADDRESS, port: vipPort, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });
}

describe('agents with etcd, NATS, gobgpd and FRR', () => {
  let etcd: EtcdHandle;
  let nats: NatsHandle;
  let router: FrrRouter;
  let store: EtcdFleetStore;
  let nc: NatsConnection;
  let vipPort = 0;
  let fleet: Fleet;
  const backends: Server[] = [];
  const nodes: TestNode[] = [];
  const events: AgentEvent[] = [];
  let routerAddress = '';
  let n4 = { name: 'n4', address: '', password: '' };
  /** A second router for n4's reload test: configured, never answering. */
  let n4ExtraPeer = '';

  const hops = async () => (await router.kernelRoute(VIP_PREFIX))?.nexthops.join(',') ?? '';
  const allHops = () =>
    nodes
      .map((n) => n.address)
      .sort()
      .join(',');
  const agentOf = (name: string) => (nodes.find((n) => n.name === name) as TestNode).running.agent;

  let stateDir = '';

  /** Node `s`'s agent file, beside its gobgpd, with the suite's router, NATS and the dry-run data plane. */
  const agentFile = (
    s: { name: string; address: string; password: string },
    gobgpdAddress: string,
    gracefulShutdownMs: number,
    rest: Record<string, unknown>,
  ): Record<string, unknown> => ({
    fleet: 'itest',
    node: { name: s.name, interface: 'lo', address: s.address },
    bgp: {
      asn: NODE_ASN,
      listenPort: 179,
      listenAddresses: [s.address],
      gobgpdAddress,
      gracefulShutdownMs,
      peers: [{ address: routerAddress, asn: ROUTER_ASN, password: s.password, localAddress: s.address }],
    },
    nats: { servers: [nats.url] },
    dataplane: { driver: 'dry-run' },
    ...rest,
  });

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'l4fleet-agent-state-'));
    etcd = await startEtcd();
    nats = await startNats();
    nc = await natsConnect({ servers: nats.url });
    const sub = nc.subscribe('l4fleet.itest.>');
    void (async () => {
      for await (const m of sub) events.push(JSON.parse(new TextDecoder().decode(m.data)) as AgentEvent);
    })();
    for (let i = 0; i < 3; i++) backends.push(await echoServer());
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    vipPort = portOf(probe);
    await new Promise((r) => probe.close(r));
    fleet = fleetFor(backends, vipPort);
    store = new EtcdFleetStore({ endpoints: etcd.endpoints, logger });
    await store.apply(fleet);

    const base = `100.${randomInt(64, 128)}.${randomInt(0, 256)}.${randomInt(0, 32) * 8}`.split('.').map(Number);
    const addr = (host: number) => `${base[0]}.${base[1]}.${base[2]}.${(base[3] as number) + host}`;
    routerAddress = addr(2);
    const specs = [
      { name: 'n1', address: addr(1), password: 'pw-n1' },
      { name: 'n2', address: addr(3), password: 'pw-n2' },
      { name: 'n3', address: addr(4), password: 'pw-n3' },
    ];
    // n4 runs as the real `l4fleet agent` process (the lab's way) in the last test.
    n4 = { name: 'n4', address: addr(5), password: 'pw-n4' };
    n4ExtraPeer = addr(6);
    router = await startFrr({
      asn: ROUTER_ASN,
      routerId: routerAddress,
      maximumPaths: 8,
      neighbors: [...specs, n4].map((s) => ({ address: s.address, asn: NODE_ASN, password: s.password })),
    });
    await router.linkToHost({
      routerAddress: `${routerAddress}/29`,
      hostAddresses: [...specs, n4].map((s) => `${s.address}/29`),
    });

    for (const s of specs) {
      const gobgpd = await startGobgpd({ name: `agent-${s.name}` });
      const config = parseAgentConfig(
        agentFile(s, gobgpd.apiAddress, 1_000, {
          etcd: { endpoints: etcd.endpoints, leaseTtlS: 5, dialTimeoutMs: 1_000 },
          metrics: { listen: '127.0.0.1:0' },
          state: { dir: stateDir },
        }),
      );
      // n2 forwards for real (userspace proxy on loopback): its flow must survive its drain.
      const dataPlane: DataPlane =
        s.name === 'n2'
          ? createProxyDataPlane({ logger, listenAddress: '127.0.0.1' })
          : createRecordingDataPlane({ requireSamePort: false });
      const running = await runAgent(config, { logger, dataPlane });
      nodes.push({ ...s, gobgpd, dataPlane, running });
    }
    await Promise.all(nodes.map((n) => n.running.agent.whenReady(20_000)));
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes) {
      await n.running.close().catch(() => undefined);
      await n.gobgpd.close().catch(() => undefined);
    }
    await router?.stop();
    await nc?.close();
    await store?.close();
    await nats?.stop();
    await etcd?.stop();
    for (const b of backends) b.close();
    await rm(stateDir, { recursive: true, force: true });
  }, 60_000);

  test('every node announces the VIP: FRR installs three next hops; status records agree', async () => {
    await eventually('ECMP over 3 nodes', hops, (h) => h === allHops(), 30_000);
    const views = await eventually(
      'status records',
      () => store.listNodes(),
      (v) => v.length === 3 && v.every((n) => n.status?.announced.length === 1),
    );
    const sums = new Set(views.map((v) => Object.values(v.status?.tables ?? {}).join()));
    expect(sums.size).toBe(1);
    // /metrics and /readyz answer
    const res = await fetch(`http://${nodes[0]?.running.metricsAddress}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/l4fleet_vip_announced\{[^}]*vip="198\.51\.100\.10:\d+\/tcp"[^}]*\} 1/);
    expect(text).toMatch(/l4fleet_bgp_session_state\{[^}]*state="established"[^}]*\} 1/);
    expect((await fetch(`http://${nodes[0]?.running.metricsAddress}/readyz`)).status).toBe(200);
    expect(events.some((e) => e.kind === 'vip.announced')).toBe(true);
  }, 60_000);

  test('a failing member flips on every node within interval x fall + 1 s, tables identical', async () => {
    const victim = backends[0] as Server;
    const port = portOf(victim);
    const before = agentOf('n1').status().tables;
    const started = Date.now();
    await new Promise((r) => victim.close(r));
    await eventually(
      'be1 down on every node',
      () => nodes.map((n) => n.running.agent.status()),
      (ss) => ss.every((s) => s.decided['web/be1'] === 'down' && JSON.stringify(s.tables) !== JSON.stringify(before)),
      10_000,
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThanOrEqual(INTERVAL_MS * FALL + 1_000);
    const tables = nodes.map((n) => JSON.stringify(n.running.agent.status().tables));
    expect(new Set(tables).size).toBe(1);
    // bring it back on the same port: it rises on every node again
    const again = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => again.listen(port, '127.0.0.1', r));
    backends[0] = again;
    await eventually(
      'be1 up again',
      () => nodes.map((n) => n.running.agent.status()),
      (ss) => ss.every((s) => s.decided['web/be1'] === 'up' && JSON.stringify(s.tables) === JSON.stringify(before)),
      10_000,
    );
  }, 30_000);

  test('invalid state written straight into etcd is rejected; the last good state keeps serving', async () => {
    const tables = agentOf('n1').status().tables;
    const rejectedBefore = events.filter((e) => e.kind === 'state.rejected').length;
    const original = await etcd.etcdctl('get', '/l4fleet/v1/desired/current', '--print-value-only');
    // A well-formed document whose fleet breaks a rule the CLI enforces (table size not prime).
    const bad = Buffer.from(
      JSON.stringify({
        schema: 1,
        fleet: {
          hashSeed: 0x5eed,
          pools: [{ name: 'web', members: [{ address: '127.0.0.1', port: 1 }] }],
          vips: [{ address: VIP_ADDRESS, port: vipPort, protocol: 'tcp', pool: 'web', tableSize: 250 }],
        },
      }),
    );
    const pointer = {
      schema: 1,
      generation: 'handwritten-1',
      chunks: 1,
      bytes: bad.length,
      encoding: 'json',
      sha256: createHash('sha256').update(bad).digest('hex'),
      hashSeed: 0x5eed,
      appliedAt: new Date().toISOString(),
    };
    await etcd.etcdctl('put', '/l4fleet/v1/desired/gen/handwritten-1/000000', bad.toString());
    await etcd.etcdctl('put', '/l4fleet/v1/desired/current', JSON.stringify(pointer));
    await eventually(
      'every node rejects it',
      () => events.filter((e) => e.kind === 'state.rejected').slice(rejectedBefore),
      (ev) => new Set(ev.map((e) => e.node)).size === 3,
      10_000,
    );
    const rejected = events.filter((e) => e.kind === 'state.rejected').at(-1) as AgentEvent<'state.rejected'>;
    expect(rejected.data.error).toMatch(/tableSize/);
    const metrics = await (await fetch(`http://${nodes[0]?.running.metricsAddress}/metrics`)).text();
    expect(metrics).toMatch(/l4fleet_state_rejected_total\{[^}]*\} [1-9]/);
    for (const n of nodes) expect(n.running.agent.status().tables).toEqual(tables);
    expect(await hops()).toBe(allHops());
    // The operator repairs it: the good pointer back.
    await etcd.etcdctl('put', '/l4fleet/v1/desired/current', original.trim());
    await eventually(
      'nodes serve the repaired state',
      () => nodes.map((n) => n.running.agent.status().desiredRevision),
      (r) => new Set(r).size === 1 && (r[0] ?? 0) > 0,
    );
  }, 30_000);

  test('gobgpd killed and restarted: the VIP is announced again within 5 s', async () => {
    const n1 = nodes[0] as TestNode;
    await n1.gobgpd.kill();
    await eventually('n1 gone from FRR', hops, (h) => !h.split(',').includes(n1.address), 15_000);
    const restarted = Date.now();
    await n1.gobgpd.restart();
    await eventually('n1 back in FRR', hops, (h) => h === allHops(), 10_000);
    expect(Date.now() - restarted).toBeLessThanOrEqual(5_000);
  }, 40_000);

  test("a drained node's route leaves FRR while its flows keep flowing; undrain re-announces", async () => {
    const n2 = nodes[1] as TestNode;
    // A long-lived flow through n2's data plane (the proxy on loopback) to a backend.
    const flow: Socket = await new Promise((resolve, reject) => {
      const s = connect(vipPort, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    const echo = (msg: string) =>
      new Promise<string>((resolve, reject) => {
        flow.once('data', (d) => resolve(d.toString()));
        flow.once('error', reject);
        flow.write(msg);
      });
    expect(await echo('before')).toBe('before');
    await store.setNodeDrain('n2', true);
    await eventually('n2 withdrawn from FRR', hops, (h) => h !== '' && !h.split(',').includes(n2.address), 10_000);
    // The state turns drained first; the pass that withdraws (and empties `announced`) runs right after it.
    await eventually(
      'n2 drained, nothing announced',
      () => n2.running.agent.status(),
      (s) => s.state === 'drained' && s.announced.length === 0,
      10_000,
    );
    expect(await echo('during')).toBe('during');
    expect(events.some((e) => e.kind === 'vip.withdrawn' && e.node === 'n2')).toBe(true);
    await store.setNodeDrain('n2', false);
    await eventually('n2 back in FRR', hops, (h) => h === allHops(), 10_000);
    expect(await echo('after')).toBe('after');
    flow.destroy();
  }, 40_000);

  test(
    `etcd killed for ${OUTAGE_MS / 1000} s: forwarding and announcements unchanged, clean recovery`,
    async () => {
      await eventually('ECMP over 3 nodes', hops, (h) => h === allHops(), 30_000);
      const tables = nodes.map((n) => n.running.agent.status().tables);
      const killedAt = Date.now();
      await etcd.kill();
      await eventually(
        'fail-static on every node',
        () => nodes.map((n) => n.running.agent.status().failStatic),
        (f) => f.every(Boolean),
        10_000,
      );
      const metrics = await (await fetch(`http://${nodes[0]?.running.metricsAddress}/metrics`)).text();
      expect(metrics).toMatch(/l4fleet_fail_static\{[^}]*\} 1/);
      const deadline = Date.now() + OUTAGE_MS;
      let checks = 0;
      while (Date.now() < deadline) {
        expect(await hops()).toBe(allHops());
        checks += 1;
        await new Promise((r) => setTimeout(r, 2_000));
      }
      expect(checks).toBeGreaterThan(0);
      await etcd.start();
      await eventually(
        'fail-static over',
        () => nodes.map((n) => n.running.agent.status().failStatic),
        (f) => f.every((x) => !x),
        30_000,
      );
      expect(await hops()).toBe(allHops());
      for (const [i, n] of nodes.entries()) expect(n.running.agent.status().tables).toEqual(tables[i]);
      const flaps = events
        .filter((e) => Date.parse(e.at) >= killedAt)
        .filter((e) => e.kind === 'vip.withdrawn' || e.kind === 'vip.announced' || e.kind === 'table.applied');
      expect(flaps).toEqual([]);
      // The fleet is live again: a change applied now reaches every node.
      // Registered again, and the status records no longer say fail-static.
      await eventually(
        'nodes registered again with fresh status records',
        () => store.listNodes(),
        (v) => v.filter((n) => n.record && n.status?.failStatic === false).length === 3,
        30_000,
      );
      const changed = parseFleet({
        ...fleet,
        pools: fleet.pools.map((p) => ({
          ...p,
          members: p.members.map((m, i) => (i === 2 ? { ...m, weight: 3 } : m)),
        })),
      });
      await store.apply(changed);
      await eventually(
        'change applied everywhere',
        () => nodes.map((n) => JSON.stringify(n.running.agent.status().tables)),
        (t) => new Set(t).size === 1 && t[0] !== JSON.stringify(tables[0]),
        15_000,
      );
    },
    OUTAGE_MS + 90_000,
  );

  test('the l4fleet agent process: announces; SIGHUP adds a peer live and refuses what needs a restart; SIGTERM drains, withdraws and exits 0', async () => {
    await eventually('ECMP over 3 nodes', hops, (h) => h === allHops(), 30_000);
    const gobgpd = await startGobgpd({ name: 'agent-n4' });
    const dir = await mkdtemp(join(tmpdir(), 'l4fleet-agent-n4-'));
    const metricsPort = await freePort();
    const file = join(dir, 'agent.yaml');
    const n4File = () =>
      agentFile(n4, gobgpd.apiAddress, 500, {
        etcd: { endpoints: etcd.endpoints },
        metrics: { listen: `127.0.0.1:${metricsPort}` },
        state: { dir },
        drain: { forwardAfterWithdrawMs: 500 },
      });
    await writeFile(file, stringify(n4File()));
    const bin = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'agent', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const four = [...nodes.map((n) => n.address), n4.address].sort().join(',');
      await eventually('n4 announced', hops, (h) => h === four, 30_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\nagent log:\n${log}`);
      });
      expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);

      // SIGHUP (systemctl reload): a peer added reaches gobgpd; the router's session is not reset, the route stays.
      const neighbors = async () => (await gobgpd.cliJson<Neighbor[]>('neighbor')) ?? ([] as Neighbor[]);
      const routerUptime = async () =>
        (await neighbors()).find((n) => n.conf.neighbor_address === routerAddress)?.timers?.state?.uptime?.seconds;
      const uptimeBefore = await routerUptime();
      expect(uptimeBefore).toBeDefined();
      const extraPeer = { address: n4ExtraPeer, asn: ROUTER_ASN + 10, password: 'pw-extra', localAddress: n4.address };
      const fileWith = (bgp: Record<string, unknown>) => {
        const base = n4File();
        return stringify({ ...base, bgp: { ...(base.bgp as Record<string, unknown>), ...bgp } });
      };
      const peersNow = (n4File().bgp as { peers: unknown[] }).peers;
      await writeFile(file, fileWith({ peers: [...peersNow, extraPeer] }));
      child.kill('SIGHUP');
      await eventually('the added peer in gobgpd', neighbors, (ns) =>
        ns.some((n) => n.conf.neighbor_address === n4ExtraPeer),
      );
      // gobgpd lists the peer as soon as it is added; the agent logs the reload once the whole reload is done.
      await eventually(
        'the reload logged',
        () => log,
        (l) => /"event":"configReloaded","changed":\["bgp.peers"/.test(l),
      );
      expect(await routerUptime()).toBe(uptimeBefore);
      expect(await hops()).toBe(four);
      // A field only a restart applies: refused whole, named; gobgpd keeps both peers.
      await writeFile(file, fileWith({ asn: NODE_ASN + 1, peers: [...peersNow] }));
      child.kill('SIGHUP');
      await eventually(
        'the refusal logged',
        () => log,
        (l) => /"event":"configReloadRefused"/.test(l),
      );
      expect(log).toMatch(/reload refused, nothing changed: bgp\.asn changed, which only a restart applies/);
      // A peer this host cannot open a session from: refused by the host's checks, naming the field.
      await writeFile(file, fileWith({ peers: [...peersNow, { ...extraPeer, localAddress: '198.18.255.254' }] }));
      child.kill('SIGHUP');
      await eventually(
        'the foreign localAddress refused',
        () => log,
        (l) => /bgp\.peers\[1\]\.localAddress: \\"198\.18\.255\.254\\" is not assigned to any interface/.test(l),
      );
      // An invalid file: refused with the field and the value.
      await writeFile(file, fileWith({ peers: [{ ...extraPeer, asn: 0 }] }));
      child.kill('SIGHUP');
      await eventually(
        'the invalid file refused',
        () => log,
        (l) => /bgp\.peers\[0\]\.asn/.test(l),
      );
      expect((await neighbors()).map((n) => n.conf.neighbor_address).sort()).toEqual(
        [routerAddress, n4ExtraPeer].sort(),
      );
      expect(await routerUptime()).toBe(uptimeBefore);
      // The log level, live: debug from now on, also in the component loggers (the speaker's `speakerClosed` at the
      // end is a debug line of its child logger).
      const applied = {
        ...n4File(),
        bgp: { ...(n4File().bgp as Record<string, unknown>), peers: [...peersNow, extraPeer] },
      };
      await writeFile(file, stringify({ ...applied, logLevel: 'debug' }));
      child.kill('SIGHUP');
      await eventually(
        'the log level reloaded',
        () => log,
        (l) => /"event":"configReloaded","changed":\["logLevel"\]/.test(l),
      );
      expect(log).not.toMatch(/"event":"speakerClosed"/);
      const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(scraped).toMatch(/l4fleet_config_reloads_total\{[^}]*result="applied"[^}]*\} 2/);
      expect(scraped).toMatch(/l4fleet_config_reloads_total\{[^}]*result="refused"[^}]*\} 3/);
      // Each reload is an event on NATS (the dashboard's timeline).
      await eventually(
        "n4's config.reload events",
        () => events.filter((e) => e.kind === 'config.reload' && e.node === 'n4').map((e) => e.data),
        (d) => d.length === 5,
      );
      expect(events.filter((e) => e.kind === 'config.reload' && e.node === 'n4').map((e) => e.data)).toEqual([
        { result: 'applied', changed: ['bgp.peers', 'bfd.peers'] }, // BFD is off: its peers follow, nothing reads them
        expect.objectContaining({ result: 'refused', changed: ['bgp.asn'] }),
        expect.objectContaining({ result: 'refused', changed: ['bgp.peers[1].localAddress'] }),
        expect.objectContaining({ result: 'refused', changed: ['bgp.peers[0].asn'] }),
        { result: 'applied', changed: ['logLevel'] },
      ]);

      const stopped = Date.now();
      child.kill('SIGTERM');
      await eventually('n4 withdrawn', hops, (h) => h === allHops(), 10_000);
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))])).toBe(0);
      expect(Date.now() - stopped).toBeLessThan(10_000);
      expect(log).toMatch(/"event":"shutdownStarted"/);
      expect(log).toMatch(/"event":"vipWithdrawn"/);
      expect(log).toMatch(/"level":20[^\n]*"event":"speakerClosed"/);
    } finally {
      child.kill('SIGKILL');
      await gobgpd.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
