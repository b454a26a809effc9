/**
 * The netns lab against the real components (root): FRR router with ECMP, gobgpd sidecars announcing the VIPs
 * (static mode: the agent is not needed for these), identity backends, etcd and NATS; up, kill, restart, add-node,
 * down leaving nothing behind.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  downLab,
  FlowRun,
  Lab,
  type LabState,
  listLabResources,
  namespacePids,
  routerNextHops,
  run,
  VIP_TCP,
  VIP_TCP6,
  VIP_UDP,
} from '@l4fleet/lab';
import { killAndMeasure } from '@l4fleet/test-support/lab-kill';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const id = `t${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
const stateRoot = process.env.L4FLEET_LAB_STATE_DIR ?? '/run/l4fleet-lab';
let lab: Lab;
let flows: FlowRun | undefined;
const pidsSeen = new Set<number>();

async function exchange(args: string[], input: string): Promise<string> {
  const r = await run(lab.execArgv('client', ['ncat', '-w', '3', ...args]), { input, timeoutMs: 10_000 });
  return r.stdout;
}

function recordPids(): void {
  const state = JSON.parse(stateText()) as LabState;
  for (const roles of Object.values(state.pids)) for (const pid of Object.values(roles)) pidsSeen.add(pid);
}

function stateText(): string {
  return readFileSync(join(stateRoot, id, 'state.json'), 'utf8');
}

describe.sequential(`lab netns - lab ${id}`, () => {
  beforeAll(async () => {
    lab = await Lab.up({ id, controlSlot, nodes: 3, backends: 4, mode: 'static', readyTimeoutMs: 45_000 });
    recordPids();
  }, 90_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('every node has an Established session and the router has 3 ECMP next hops per VIP', async () => {
    const s = await lab.status();
    expect(s.nodes.map((n) => [n.name, n.bgp])).toEqual([
      ['node1', 'Established'],
      ['node2', 'Established'],
      ['node3', 'Established'],
    ]);
    expect(s.router.nextHops[`${VIP_TCP.address}/32`]).toEqual(['198.18.2.11', '198.18.2.12', '198.18.2.13']);
    expect(s.router.nextHops[`${VIP_UDP.address}/32`]).toHaveLength(3);
    expect(s.router.nextHops[`${VIP_TCP6.address}/128`]).toHaveLength(3);
    expect(s.nodes[0]?.announced).toEqual(['198.51.100.10/32', '198.51.100.11/32', '2001:db8:100::10/128']);
    // Three etcd members by default (lab up --etcd-members), each named in the status.
    expect(s.etcd.endpoints).toEqual([2379, 12379, 22379].map((port) => `http://198.19.${controlSlot}.2:${port}`));
    expect(s.etcd.members.map((m) => [m.name, m.killed])).toEqual([
      ['etcd1', false],
      ['etcd2', false],
      ['etcd3', false],
    ]);
    // etcd answers from the host: the control network is reachable from the root namespace.
    const health = await run(['etcdctl', '--endpoints', s.etcd.endpoints.join(','), 'endpoint', 'health']);
    expect(health.stderr + health.stdout).toMatch(/is healthy/);
  });

  test('up again is idempotent: the same lab, the same processes', async () => {
    const again = await Lab.up({ id, controlSlot, nodes: 3, backends: 4, mode: 'static' });
    expect(again.id).toBe(id);
    const before = stateText();
    expect(JSON.parse(before).pids).toEqual(JSON.parse(stateText()).pids);
  }, 30_000);

  test('identity contract through the VIP from the client: TCP greeting then echo, UDP prefix, IPv6', async () => {
    const backends = (await lab.status()).backends.map((b) => b.name);
    const tcp = await exchange([VIP_TCP.address, String(VIP_TCP.port)], 'hello\nworld\n');
    expect(tcp).toMatch(/^backend=(backend[1-4])\nhello\nworld\n$/);
    expect(backends).toContain(/^backend=(\S+)/.exec(tcp)?.[1]);
    // UDP may lose a datagram on a loaded machine: up to 3 tries, then the answer must follow the contract.
    // socat, not `ncat -u`: ncat exits when its stdin ends, on an idle machine before the answer is back.
    let udp = '';
    for (let i = 0; i < 3 && udp === ''; i++) {
      const argv = ['socat', '-T', '3', '-t', '0.5', '-', `UDP:${VIP_UDP.address}:${VIP_UDP.port}`];
      udp = (await run(lab.execArgv('client', argv), { input: 'ping\n', timeoutMs: 10_000 })).stdout;
    }
    expect(udp).toMatch(/^backend=backend[1-4] ping\n$/);
    const tcp6 = await exchange([VIP_TCP6.address, String(VIP_TCP6.port)], 'six\n');
    expect(tcp6).toMatch(/^backend=backend[1-4]\nsix\n$/);
  });

  test('flows from the client spread over every node and every backend', async () => {
    flows = await FlowRun.start(lab, { tcpFlows: 60, udpFlows: 12 });
    await new Promise((r) => setTimeout(r, 1_500));
    const s = await flows.summary();
    expect(s.open).toBe(72);
    expect(Object.keys(s.perNode).sort()).toEqual(['node1', 'node2', 'node3']);
    expect(Object.keys(s.perBackend).sort()).toEqual(['backend1', 'backend2', 'backend3', 'backend4']);
  }, 60_000);

  test('kill a node: link down and processes gone, the router drops it within the hold time + 1 s, no flow breaks, none pauses past its next retransmission after the drop', async () => {
    if (!flows) throw new Error('no flows');
    // Read as soon as the kill returned, not after the settle (>= 1.5 s): `lab kill` itself must leave none.
    let pidsAfterKill: number[] | undefined;
    const k = await killAndMeasure(lab, flows, 'node2', 2, {
      name: 'kill node2',
      timeoutMs: 10_000,
      settleMs: 1_500,
      afterKill: async () => {
        pidsAfterKill = await namespacePids(`l4f-${id}-node2`);
      },
    });
    expect(pidsAfterKill).toEqual([]);
    expect(k.hops).toEqual(['198.18.2.11', '198.18.2.13']);
    // Static mode, no BFD: the hold timer (3 s) + 1 s.
    expect(k.dropBoundMs).toBe(4_000);
    expect(k.dropMs).toBeLessThanOrEqual(k.dropBoundMs);
    expect(k.broken).toEqual([]);
    expect(k.s.broken).toBe(0);
    expect(k.s.longestPauseMs).toBeLessThanOrEqual(k.pauseBoundMs);
    // Still without node2 after the settle: dropped for good, not a flap (a per-node flow count cannot say it: the
    // flow summary never reads a killed node's table).
    expect(await routerNextHops(lab.ns('router'), `${VIP_TCP.address}/32`)).toEqual(['198.18.2.11', '198.18.2.13']);
    expect((await lab.status()).nodes.find((n) => n.name === 'node2')).toMatchObject({ killed: true, announced: [] });
  }, 60_000);

  test('restart brings the node back into ECMP', async () => {
    await lab.restart('node2');
    expect(await lab.waitNextHops(3, 15_000)).toHaveLength(3);
    recordPids();
  }, 60_000);

  test('add-node: the router gets node4 as a neighbor, dials it (MD5), and it becomes a fourth next hop', async () => {
    const started = Date.now();
    const name = await lab.addNode();
    console.log(`add-node: node4 in the router's ECMP group after ${Date.now() - started} ms`);
    expect(name).toBe('node4');
    expect(await lab.waitNextHops(4, 15_000)).toContain('198.18.2.14');
    // The router opened the session (the node's end is port 179): no wait for gobgpd's 5-9 s first connect, and
    // the connection carries the TCP MD5 key (RFC 2385) of the router's address.
    const ss = await run(
      lab.execArgv('node4', ['ss', '-tnie', 'state', 'established', '( sport = :179 or dport = :179 )']),
    );
    expect(ss.stdout).toMatch(/198\.18\.2\.14:179\s+198\.18\.2\.1:\d+/);
    expect(ss.stdout).toContain('md5keys:198.18.2.1/32');
    recordPids();
  }, 60_000);

  test('down, even without its state file (a crashed run), leaves no namespace, process, interface or state', async () => {
    await flows?.stop();
    flows = undefined;
    rmSync(join(stateRoot, id, 'state.json'));
    await downLab(id);
    const left = await listLabResources(id);
    expect(left).toEqual({ namespaces: [], hostInterfaces: [] });
    const ns = await run(['ip', 'netns', 'list']);
    expect(ns.stdout).not.toContain(`l4f-${id}-`);
    const link = await run(['ip', 'link', 'show', `l4f-${id}-h`], { allowFailure: true });
    expect(link.code).not.toBe(0);
    expect(pidsSeen.size).toBeGreaterThan(10);
    for (const pid of pidsSeen) {
      const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
      // gone, or a zombie waiting for its parent to reap it (no namespace, no sockets)
      expect(stat === '' || /\) Z /.test(stat), `pid ${pid}: ${stat}`).toBe(true);
    }
    expect(existsSync(join(stateRoot, id))).toBe(false);
  }, 60_000);
});
