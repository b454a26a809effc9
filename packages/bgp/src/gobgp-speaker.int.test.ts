/**
 * Real daemons: the node's sidecar gobgpd (driven by the Speaker) peers with a second gobgpd standing in for the
 * router (configured by this test from a TOML file, read with the `gobgp` CLI, never through the code under test).
 */
import { randomInt } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { type GobgpdHandle, startGobgpd } from '@l4fleet/daemons';
import { freePort } from '@l4fleet/process';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { toApiPath } from './codec.js';
import { BgpError } from './errors.js';
import { GobgpClient } from './gobgp-client.js';
import { createGobgpSpeaker, type GobgpSpeaker, GRACEFUL_SHUTDOWN_COMMUNITY } from './gobgp-speaker.js';
import { gobgpClientConstructor } from './proto.js';
import type { Advertisement, PeerEvent } from './types.js';
import { canonicalAdvertisement } from './validate.js';

const ROUTER_ASN = 65000;
const NODE_ASN = 65001;
const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

interface RibRoute {
  nexthop: string;
  communities: string[];
  med: number | undefined;
}

/** The router's view of `prefix` (gobgp global rib -j), or undefined when it has no path for it. */
async function routerRoute(router: GobgpdHandle, prefix: string): Promise<RibRoute | undefined> {
  const family = prefix.includes(':') ? 'ipv6' : 'ipv4';
  const rib =
    (await router.cliJson<Record<string, Array<{ attrs: Array<Record<string, unknown>> }>>>(
      'global',
      'rib',
      '-a',
      family,
    )) ?? {};
  const paths = rib[prefix];
  if (!paths || paths.length === 0) return undefined;
  expect(paths).toHaveLength(1);
  const attrs = paths[0]?.attrs ?? [];
  const nextHopAttr = attrs.find((a) => a.type === 3) ?? attrs.find((a) => a.type === 14);
  const nexthop = String(nextHopAttr?.nexthop ?? '');
  const communities = ((attrs.find((a) => a.type === 8)?.communities as number[]) ?? []).map(
    (c) => `${c >>> 16}:${c & 0xffff}`,
  );
  const medAttr = attrs.find((a) => a.type === 4);
  return { nexthop, communities, med: medAttr ? Number(medAttr.metric) : undefined };
}

describe('gobgp speaker against two gobgpd', () => {
  let router: GobgpdHandle | undefined;
  let sidecar: GobgpdHandle | undefined;
  let speaker: GobgpSpeaker | undefined;
  let routerAddress = '';
  let nodeAddress = '';
  let routerBgpPort = 0;

  beforeEach(async () => {
    // Random 127/8 addresses and a free port: other test runs on this machine use loopback too.
    const net = `127.${randomInt(1, 255)}.${randomInt(0, 256)}`;
    routerAddress = `${net}.1`;
    nodeAddress = `${net}.2`;
    routerBgpPort = await freePort(routerAddress);
    router = await startGobgpd({
      name: 'router',
      config: `
[global.config]
  as = ${ROUTER_ASN}
  router-id = "${routerAddress}"
  port = ${routerBgpPort}
  local-address-list = ["${routerAddress}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "${nodeAddress}"
    peer-as = ${NODE_ASN}
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.timers.config]
    hold-time = 3
    keepalive-interval = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`,
    });
    sidecar = await startGobgpd({ name: 'sidecar' });
    speaker = createGobgpSpeaker({
      address: sidecar.apiAddress,
      logger,
      resyncIntervalMs: 1_000,
      backoff: { initialMs: 50, maxMs: 500 },
    });
  });

  afterEach(async () => {
    await speaker?.close();
    await sidecar?.close();
    await router?.close();
    speaker = undefined;
    sidecar = undefined;
    router = undefined;
  });

  async function connect(s: GobgpSpeaker): Promise<void> {
    await s.ensureGlobal({ asn: NODE_ASN, routerId: nodeAddress, listenPort: -1 });
    await s.setPeers([{ address: routerAddress, asn: ROUTER_ASN, port: routerBgpPort, localAddress: nodeAddress }]);
  }

  const v4: Advertisement = { prefix: '198.51.100.10/32', nextHop: '198.18.0.11', communities: ['65001:100'], med: 10 };
  const v6: Advertisement = { prefix: '2001:db8::10/128', nextHop: '2001:db8:ffff::11', communities: ['65001:600'] };

  test('announce, withdraw, and re-announce by itself after the sidecar gobgpd restarts', async () => {
    const s = speaker as GobgpSpeaker;
    const events: PeerEvent[] = [];
    const collecting = (async () => {
      for await (const ev of s.peerEvents()) events.push(ev);
    })();
    await connect(s);
    await eventually(
      'session up',
      () => s.peerStates(),
      (p) => p[0]?.state === 'established',
    );
    const status = (await s.peerStates())[0];
    expect(status).toMatchObject({ address: routerAddress, asn: ROUTER_ASN, negotiatedHoldTimeS: 3 });

    await s.setAdvertisements([v4, v6]);
    const r = router as GobgpdHandle;
    expect(
      await eventually(
        'v4 at router',
        () => routerRoute(r, v4.prefix),
        (x) => x !== undefined,
      ),
    ).toEqual({
      nexthop: '198.18.0.11',
      communities: ['65001:100'],
      med: 10,
    });
    expect(
      await eventually(
        'v6 at router',
        () => routerRoute(r, v6.prefix),
        (x) => x !== undefined,
      ),
    ).toEqual({
      nexthop: '2001:db8:ffff::11',
      communities: ['65001:600'],
      med: undefined,
    });

    await s.setAdvertisements([v6]);
    await eventually(
      'v4 withdrawn',
      () => routerRoute(r, v4.prefix),
      (x) => x === undefined,
    );
    expect(await routerRoute(r, v6.prefix)).toBeDefined();
    await s.setAdvertisements([v4, v6]);
    await eventually(
      'v4 back',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );

    // The sidecar crashes and comes back bare: the speaker must StartBgp, AddPeer and AddPath again by itself.
    await sidecar?.kill();
    await eventually(
      'route gone with the session',
      () => routerRoute(r, v4.prefix),
      (x) => x === undefined,
    );
    await sidecar?.restart();
    const back = await eventually(
      'v4 re-announced',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
      20_000,
    );
    expect(back).toEqual({ nexthop: '198.18.0.11', communities: ['65001:100'], med: 10 });
    expect(await routerRoute(r, v6.prefix)).toMatchObject({ nexthop: '2001:db8:ffff::11' });
    expect(s.reconnects).toBe(1);
    await eventually(
      'session up again',
      () => s.peerStates(),
      (p) => p[0]?.state === 'established',
    );

    await s.close();
    await collecting;
    const states = events.filter((e) => e.address === routerAddress).map((e) => e.state);
    expect(states).toContain('established');
    expect(events.some((e) => e.reason === 'gobgpdUnreachable' && e.state === 'unknown')).toBe(true);
    expect(states.lastIndexOf('established')).toBeGreaterThan(states.indexOf('unknown'));
  });

  test('a hung gobgpd (SIGSTOP) is found by the liveness ping, long before the resync; SIGCONT: one reconnect', async () => {
    await speaker?.close();
    const side = sidecar as GobgpdHandle;
    // A resync a minute away: only the liveness ping can find the hang within the bound below.
    const s = createGobgpSpeaker({
      address: side.apiAddress,
      logger,
      resyncIntervalMs: 60_000,
      livenessIntervalMs: 500,
      livenessTimeoutMs: 1_000,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    speaker = s;
    const events: PeerEvent[] = [];
    void (async () => {
      for await (const ev of s.peerEvents()) events.push(ev);
    })();
    await connect(s);
    await eventually(
      'session up',
      () => s.peerStates(),
      (p) => p[0]?.state === 'established',
    );
    const pid = side.pid as number;
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    try {
      await eventually(
        'the hang reported',
        async () => events,
        (e) => e.some((x) => x.reason === 'gobgpdUnreachable' && x.state === 'unknown'),
        10_000,
      );
      console.log(`gobgpd SIGSTOP: reported after ${Date.now() - stoppedAt} ms (ping every 500 ms, deadline 1,000 ms)`);
      expect(s.connected).toBe(false);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await eventually(
      'connected again',
      async () => s.connected,
      (c) => c,
      15_000,
    );
    expect(s.reconnects).toBe(1);
    await eventually(
      'session up again',
      () => s.peerStates(),
      (p) => p[0]?.state === 'established',
      20_000,
    );
    expect(events.filter((e) => e.reason === 'gobgpdUnreachable')).toHaveLength(1);
  });

  test('reconcile leaves unchanged paths alone: a second speaker (agent restart) does not flap the route', async () => {
    const s = speaker as GobgpSpeaker;
    await connect(s);
    await s.setAdvertisements([v4]);
    const r = router as GobgpdHandle;
    await eventually(
      'v4 at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );
    const ageBefore = await routeAge(r, v4.prefix);
    await s.close();

    const again = createGobgpSpeaker({ address: (sidecar as GobgpdHandle).apiAddress, logger });
    speaker = again;
    await connect(again);
    await again.setAdvertisements([v4]);
    // A re-announcement would show as a newer path at the router; the age is in seconds, so wait past one.
    await new Promise((res) => setTimeout(res, 1_200));
    expect(await routeAge(r, v4.prefix)).toBe(ageBefore);

    // A changed attribute is announced in place (one path, new community).
    await again.setAdvertisements([{ ...v4, communities: ['65535:0'] }]);
    await eventually(
      'community changed',
      () => routerRoute(r, v4.prefix),
      (x) => x?.communities.join() === '65535:0',
    );
  });

  // Someone's `gobgp global rib add` on the node's gobgpd: a second local path for our prefix (identifier 5) must
  // go by its identifier, leaving ours alone (a DeletePath without it removed ours and the route flapped at every
  // resync); a path in our place with our next hop and communities but an AS path, origin or large community we
  // never send must be announced over (it was kept forever: the node left ECMP).
  test('stray local paths for our prefix: another identifier withdrawn, foreign attributes announced over', async () => {
    await speaker?.close();
    const side = sidecar as GobgpdHandle;
    // No resync while the test looks: each reconcile is the setAdvertisements call below (a resync runs the same).
    const s = createGobgpSpeaker({ address: side.apiAddress, logger, resyncIntervalMs: 600_000 });
    speaker = s;
    await connect(s);
    await s.setAdvertisements([v4]);
    const r = router as GobgpdHandle;
    await eventually(
      'v4 at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );
    // Read through the gobgp CLI, not the code under test. The CLI's own default origin is incomplete (2).
    const onlyOurs = (paths: LocalPath[]) =>
      paths.length === 1 && paths[0]?.nexthop === v4.nextHop && paths[0]?.origin === 0 && paths[0]?.types === '1,3,4,8';
    await side.cli('global', 'rib', 'add', v4.prefix, 'identifier', '5', 'nexthop', '198.18.0.99', '-a', 'ipv4');
    expect(await localPaths(side, v4.prefix)).toHaveLength(2);
    await s.setAdvertisements([v4]);
    expect(await localPaths(side, v4.prefix)).toSatisfy(onlyOurs);
    // Reconciled again and again: ours stays put (no flap; the age is in seconds, so wait past one).
    const ageBefore = await routeAge(r, v4.prefix);
    for (let i = 0; i < 3; i++) await s.setAdvertisements([v4]);
    await new Promise((res) => setTimeout(res, 1_200));
    expect(await localPaths(side, v4.prefix)).toSatisfy(onlyOurs);
    expect(await routeAge(r, v4.prefix)).toBe(ageBefore);
    expect(await routerRoute(r, v4.prefix)).toMatchObject({ nexthop: v4.nextHop });

    // Same next hop, communities and MED, in our place (identifier 0), with attributes we never send.
    await side.cli(
      'global',
      'rib',
      'add',
      v4.prefix,
      'origin',
      'incomplete',
      'aspath',
      '64999',
      'nexthop',
      String(v4.nextHop),
      'med',
      '10',
      'community',
      '65001:100',
      'large-community',
      '65001:1:1',
      '-a',
      'ipv4',
    );
    expect(await localPaths(side, v4.prefix)).toMatchObject([
      { nexthop: v4.nextHop, origin: 2, types: '1,2,3,4,8,32' },
    ]);
    await s.setAdvertisements([v4]);
    expect(await localPaths(side, v4.prefix)).toSatisfy(onlyOurs);
  });

  // Another gRPC client's AddPath with no_implicit_withdraw: gobgpd keeps it beside ours, both identifier 0. No
  // withdrawal can pick it (gobgpd matches by source and identifier; ListPath gives no UUID): ours stays, the
  // speaker says so once.
  test('a second identifier-0 local path (no_implicit_withdraw) beside ours: ours kept, reported once', async () => {
    await speaker?.close();
    const side = sidecar as GobgpdHandle;
    const lines: Array<Record<string, unknown>> = [];
    const capture = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const s = createGobgpSpeaker({ address: side.apiAddress, logger: capture, resyncIntervalMs: 600_000 });
    speaker = s;
    await connect(s);
    await s.setAdvertisements([v4]);
    const Ctor = gobgpClientConstructor();
    const other = new Ctor(side.apiAddress, credentials.createInsecure());
    try {
      const path = {
        ...toApiPath(canonicalAdvertisement({ ...v4, nextHop: '198.18.0.99' })),
        no_implicit_withdraw: true,
      };
      await new Promise<void>((resolve, reject) =>
        other.AddPath({ table_type: 'GLOBAL', path }, (err: Error | null) => (err ? reject(err) : resolve())),
      );
    } finally {
      other.close();
    }
    expect((await localPaths(side, v4.prefix)).map((p) => p.nexthop).sort()).toEqual(['198.18.0.11', '198.18.0.99']);
    await s.setAdvertisements([v4]);
    await s.setAdvertisements([v4]);
    expect((await localPaths(side, v4.prefix)).map((p) => p.nexthop).sort()).toEqual(['198.18.0.11', '198.18.0.99']);
    const reports = lines.filter((l) => l.event === 'foreignLocalPath');
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ vip: v4.prefix, nextHop: '198.18.0.99', foreign: ['no_implicit_withdraw'] });
    // Not desired any more: both go (each withdrawal takes one of them).
    await s.setAdvertisements([]);
    expect(await localPaths(side, v4.prefix)).toEqual([]);
  });

  // A router sending its table (a full one is ~1M paths): gobgpd put every path in the sidecar's global RIB, and
  // each reconcile (every setter, every resync) listed and decoded them all to find ours, past the 5 s deadline on
  // a full table: gobgpd counted as unreachable, VIP changes never applied. The global import policy keeps them out.
  test("the router's routes stay out of the sidecar's RIB: a reconcile reads only ours, also after a hand edit", async () => {
    const s = speaker as GobgpSpeaker;
    const side = sidecar as GobgpdHandle;
    const r = router as GobgpdHandle;
    await connect(s);
    await s.setAdvertisements([v4]);
    const ROUTER_PATHS = 2_000;
    const routerApi = new GobgpClient({ address: r.apiAddress });
    try {
      // Built by hand: these are the router's own routes, not advertisements this package validates.
      const paths = Array.from({ length: ROUTER_PATHS }, (_, i) => ({
        prefix: `100.64.${i >> 8}.${i & 255}/32`,
        family: 4 as const,
        nextHop: '198.18.0.1',
        communities: [],
        med: undefined,
        localPref: undefined,
      }));
      for (let i = 0; i < paths.length; i += 200) {
        await Promise.all(paths.slice(i, i + 200).map((p) => routerApi.addPath(p)));
      }
    } finally {
      routerApi.close();
    }
    // Read through the gobgp CLI, not the code under test: the session delivered all of them...
    const received = async () => {
      const n = await side.cliJson<Array<{ afi_safis?: Array<{ state?: { received?: number } }> }>>('neighbor');
      return (n?.[0]?.afi_safis ?? []).reduce((sum, af) => sum + Number(af.state?.received ?? 0), 0);
    };
    await eventually('the router table received', received, (n) => n === ROUTER_PATHS, 30_000, 200);
    // ...and the sidecar's global RIB holds our path alone.
    const ribPaths = async () => {
      const out = await side.cli('global', 'rib', 'summary', '-a', 'ipv4');
      return Number(/Path: (\d+)/.exec(out)?.[1] ?? Number.NaN);
    };
    expect(await ribPaths()).toBe(1);
    const client = new GobgpClient({ address: side.apiAddress });
    try {
      expect((await client.listLocalPaths(4)).map((p) => p.prefix)).toEqual([v4.prefix]);
    } finally {
      client.close();
    }

    // Someone takes the policy off and re-reads the router's table: the resync (1 s here) puts it back and
    // clears the table out of the RIB again.
    await side.cli('global', 'policy', 'import', 'del', 'l4fleet-reject-learnt');
    await side.cli('neighbor', 'all', 'softresetin');
    await eventually('the resync restores the policy', ribPaths, (n) => n === 1, 15_000, 200);
    expect(await side.cli('global', 'policy', 'import')).toContain('l4fleet-reject-learnt');
    // ...or turns one of its statements into an accept: the resync replaces the policy with ours.
    await side.cli('policy', 'statement', 'l4fleet-reject-learnt-external', 'del', 'action', 'reject');
    await side.cli('policy', 'statement', 'l4fleet-reject-learnt-external', 'add', 'action', 'accept');
    const action = async () =>
      /Actions:\s+(\w+)/.exec(await side.cli('policy', 'statement', 'l4fleet-reject-learnt-external'))?.[1];
    await side.cli('neighbor', 'all', 'softresetin');
    await eventually('the resync repairs the policy', action, (a) => a === 'reject', 15_000, 200);
    await eventually('the table out of the RIB again', ribPaths, (n) => n === 1, 15_000, 200);
    expect(await routerRoute(r, v4.prefix)).toMatchObject({ nexthop: v4.nextHop });
  }, 60_000);

  // `gobgp policy del` keeps the policy's statements (the CLI sends PreserveStatements) and gobgpd keeps the deleted
  // policy in the global import assignment: re-adding the policy met "statement ... already defined", ensureGlobal
  // threw GOBGP_REJECTED for ever (an agent restart never announced) and every resync failed before peers and paths.
  test('hand edits of the import policy: policy del, a statement taken out, default reject; each put back', async () => {
    await speaker?.close();
    const side = sidecar as GobgpdHandle;
    const r = router as GobgpdHandle;
    const first = createGobgpSpeaker({ address: side.apiAddress, logger, resyncIntervalMs: 600_000 });
    speaker = first;
    await connect(first);
    expect(await importPolicy(side)).toEqual(INTACT_POLICY);
    await side.cli('policy', 'del', LEARNT);
    expect((await importPolicy(side)).statements).toEqual([]);
    // The agent restarts: a new speaker on the same gobgpd, its setup as the agent runs it.
    await first.close();
    const again = createGobgpSpeaker({ address: side.apiAddress, logger, resyncIntervalMs: 500 });
    speaker = again;
    await connect(again);
    expect(await importPolicy(side)).toEqual(INTACT_POLICY);
    await again.setAdvertisements([v4]);
    await eventually(
      'v4 at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );

    // Each hand edit below is repaired by the next resync (every 500 ms here).
    const edits: string[][][] = [
      [['policy', 'del', LEARNT]],
      // The policy keeps going without one statement; the statement stays (the CLI preserves it).
      [['policy', 'del', LEARNT, `${LEARNT}-internal`]],
      [['global', 'policy', 'import', 'set', LEARNT, 'default', 'reject']],
      [['global', 'policy', 'import', 'del']],
      [
        ['policy', 'del', LEARNT],
        ['policy', 'statement', `${LEARNT}-external`, 'del'],
      ],
    ];
    for (const edit of edits) {
      for (const args of edit) await side.cli(...args);
      await eventually(`repaired after ${JSON.stringify(edit)}`, () => importPolicy(side), isIntact, 10_000, 100);
    }
    await eventually(
      'v4 still at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );
  }, 60_000);

  // A hand edit the speaker cannot undo (another policy uses one of our statements): the policy step fails, is logged
  // once, and is retried at each resync, while peers and paths are still reconciled.
  test('a policy the speaker cannot repair does not stop peers and paths; repaired once it can be', async () => {
    await speaker?.close();
    const side = sidecar as GobgpdHandle;
    const r = router as GobgpdHandle;
    const lines: Array<Record<string, unknown>> = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const s = createGobgpSpeaker({ address: side.apiAddress, logger: capture, resyncIntervalMs: 300 });
    speaker = s;
    await connect(s);
    await s.setAdvertisements([v4]);
    await eventually(
      'v4 at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );
    // The other policy first: a resync between the two edits then sees ours intact and does nothing. In the other
    // order a resync could repair ours between them, and the failure under test never came (seen once in CI).
    await side.cli('policy', 'add', 'by-hand', `${LEARNT}-internal`);
    await side.cli('policy', 'del', LEARNT);
    // Withdrawn by hand, twice, while the policy step fails: each time a resync must still announce it again.
    for (let i = 0; i < 2; i++) {
      await side.cli('global', 'rib', 'del', v4.prefix, '-a', 'ipv4');
      expect(await localPaths(side, v4.prefix)).toEqual([]);
      await eventually(
        're-announced by a resync',
        () => localPaths(side, v4.prefix),
        (p) => p.length === 1,
        10_000,
        100,
      );
    }
    const failures = lines.filter((l) => l.event === 'importPolicyFailed');
    expect(failures).toHaveLength(1);
    expect(String(failures[0]?.err)).toContain(`${LEARNT}-internal`);
    expect(lines.filter((l) => l.event === 'resyncFailed')).toEqual([]);
    expect(await routerRoute(r, v4.prefix)).toMatchObject({ nexthop: v4.nextHop });

    await side.cli('policy', 'del', 'by-hand');
    await eventually('repaired', () => importPolicy(side), isIntact, 10_000, 100);
    expect(lines.some((l) => l.event === 'importPolicyRecovered')).toBe(true);
  }, 60_000);

  test('an RFC 8326 drain as the agent makes it: the paths with GRACEFUL_SHUTDOWN, then none', async () => {
    const s = speaker as GobgpSpeaker;
    await connect(s);
    await s.setAdvertisements([v4]);
    const r = router as GobgpdHandle;
    await eventually(
      'v4 at router',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
    );
    await s.setAdvertisements([{ ...v4, communities: [...(v4.communities ?? []), GRACEFUL_SHUTDOWN_COMMUNITY] }]);
    const marked = await eventually(
      'gshut community',
      () => routerRoute(r, v4.prefix),
      (x) => x?.communities.includes('65535:0') === true,
    );
    expect(marked?.communities).toEqual(['65001:100', '65535:0']);
    await s.setAdvertisements([]);
    await eventually(
      'v4 withdrawn',
      () => routerRoute(r, v4.prefix),
      (x) => x === undefined,
    );
  });

  test('gobgpd refusals and a dead sidecar are typed errors; the desired set is applied when it is back', async () => {
    const s = speaker as GobgpSpeaker;
    await s.ensureGlobal({ asn: NODE_ASN, routerId: nodeAddress, listenPort: -1 });
    await expect(s.ensureGlobal({ asn: 65099, routerId: nodeAddress, listenPort: -1 })).rejects.toMatchObject({
      code: 'GLOBAL_CONFLICT',
    });
    await expect(s.setAdvertisements([{ prefix: '198.51.100.1/24', nextHop: '198.18.0.1' }])).rejects.toMatchObject({
      code: 'PREFIX_INVALID',
    });
    await s.setPeers([{ address: routerAddress, asn: ROUTER_ASN, port: routerBgpPort, localAddress: nodeAddress }]);

    await sidecar?.kill();
    const err = await s.setAdvertisements([v4]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BgpError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', retryable: true, grpcStatus: 14 });
    await sidecar?.restart();
    const r = router as GobgpdHandle;
    await eventually(
      'v4 applied after restart',
      () => routerRoute(r, v4.prefix),
      (x) => x !== undefined,
      20_000,
    );
  });
});

describe('gobgp speaker over a unix socket', () => {
  let gobgpd: GobgpdHandle | undefined;
  afterEach(async () => {
    await gobgpd?.close();
    gobgpd = undefined;
  });

  test('announces through unix:/path and re-applies after gobgpd restarts on the same socket', async () => {
    gobgpd = await startGobgpd({ name: 'unix', apiUnixSocket: true });
    expect(gobgpd.apiAddress).toMatch(/^unix:\//);
    const speaker = createGobgpSpeaker({ address: gobgpd.apiAddress, logger, backoff: { initialMs: 50, maxMs: 300 } });
    const client = new GobgpClient({ address: gobgpd.apiAddress });
    try {
      await speaker.ensureGlobal({ asn: NODE_ASN, routerId: '198.18.0.11', listenPort: -1 });
      await speaker.setAdvertisements([{ prefix: '198.51.100.20/32', nextHop: '198.18.0.11' }]);
      expect((await client.listLocalPaths(4)).map((p) => p.prefix)).toEqual(['198.51.100.20/32']);
      await gobgpd.kill();
      await gobgpd.restart();
      const paths = await eventually(
        'paths re-applied',
        () => client.listLocalPaths(4),
        (p) => p.length === 1,
      );
      expect(paths[0]).toMatchObject({ prefix: '198.51.100.20/32', nextHop: '198.18.0.11' });
      expect((await client.getGlobal()).asn).toBe(NODE_ASN);
    } finally {
      client.close();
      await speaker.close();
    }
  });
});

interface LocalPath {
  nexthop: string;
  origin: number;
  /** The path attribute type codes, sorted and joined: 1 ORIGIN, 2 AS_PATH, 3 NEXT_HOP, 4 MED, 8 COMMUNITIES, 32 LARGE. */
  types: string;
}

/** The node gobgpd's own paths for `prefix` (gobgp global rib -j on the sidecar: no neighbours send it any). */
async function localPaths(gobgpd: GobgpdHandle, prefix: string): Promise<LocalPath[]> {
  const rib = await gobgpd.cliJson<Record<string, Array<{ attrs: Array<Record<string, unknown>> }>>>(
    'global',
    'rib',
    '-a',
    'ipv4',
  );
  return (rib?.[prefix] ?? []).map((p) => ({
    nexthop: String(p.attrs.find((a) => a.type === 3)?.nexthop ?? ''),
    origin: Number(p.attrs.find((a) => a.type === 1)?.value ?? -1),
    types: p.attrs
      .map((a) => Number(a.type))
      .sort((a, b) => a - b)
      .join(),
  }));
}

async function routeAge(router: GobgpdHandle, prefix: string): Promise<number> {
  const rib = await router.cliJson<Record<string, Array<{ age: number }>>>('global', 'rib', '-a', 'ipv4');
  return Number(rib?.[prefix]?.[0]?.age);
}

const LEARNT = 'l4fleet-reject-learnt';

interface ImportPolicy {
  /** [name, route type, route action] of each statement of the policy gobgpd lists (ListPolicy). */
  statements: Array<[string, number, number]>;
  /** Names of the policies in the global import assignment and its default action (1 accept, 2 reject). */
  assigned: string[];
  defaultAction: number;
}

/** Ours, as gobgp -j prints it: route type 1 internal, 2 external; route action 2 reject. */
const INTACT_POLICY: ImportPolicy = {
  statements: [
    [`${LEARNT}-internal`, 1, 2],
    [`${LEARNT}-external`, 2, 2],
  ],
  assigned: [LEARNT],
  defaultAction: 1,
};

function isIntact(p: ImportPolicy): boolean {
  return JSON.stringify(p) === JSON.stringify(INTACT_POLICY);
}

/** The node gobgpd's policy of our name and its global import assignment, read with the gobgp CLI. */
async function importPolicy(gobgpd: GobgpdHandle): Promise<ImportPolicy> {
  type Statement = { name: string; conditions?: { route_type?: number }; actions?: { route_action?: number } };
  const policies = (await gobgpd.cliJson<Array<{ name: string; statements?: Statement[] }>>('policy')) ?? [];
  const ours = policies.find((p) => p.name === LEARNT);
  const assignment = await gobgpd.cliJson<{ policies?: Array<{ name: string }>; default_action?: number }>(
    'global',
    'policy',
    'import',
  );
  return {
    statements: (ours?.statements ?? []).map((st) => [
      st.name,
      st.conditions?.route_type ?? 0,
      st.actions?.route_action ?? 0,
    ]),
    assigned: (assignment?.policies ?? []).map((p) => p.name),
    defaultAction: assignment?.default_action ?? 0,
  };
}
