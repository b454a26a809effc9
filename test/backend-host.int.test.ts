/**
 * `l4fleet backend` against the real kernel, in network namespaces (root, under the ns lock): the real CLI sets up
 * a backend; a stand-in node encapsulates a client's TCP connection to the VIP with gue, ipip or gre (IPv4 and
 * IPv6, and across families); the backend decapsulates it and answers from the VIP straight to the client.
 * Strangers, malformed packets, idempotence, exact teardown and bad arguments too. Builds the CLI and the bpf
 * objects first (npm run build would too).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { BackendCounters, FamilyPair } from '@l4fleet/dataplane';
import { run } from '@l4fleet/process';
import { environmentFile, expandCommand, unitFile, unitValue } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  BACKEND,
  type BackendHostBed,
  CLI_BIN,
  createBackendHostBed,
  ECHO_CLIENT_PY,
  ECHO_SERVER_PY,
  type Family,
  FLOOD_ENCAPSULATED_PY,
  GUE_PORT,
  type Mode,
  NODE,
  SEND_ENCAPSULATED_PY,
  STRANGER,
  VIP4,
  VIP4_PREEXISTING,
  VIP6,
} from './backend-host-topology.js';

const root = new URL('..', import.meta.url).pathname;
const TRANSFER_BYTES = 256 * 1024;
const FLOOD = 20_000;
const PAIR = (inner: Family, outer: Family): FamilyPair => `ipv${inner}-in-ipv${outer}`;

let bed: BackendHostBed;
/** The backend host before any setup (teardown must bring it back to exactly this). */
let pristine: string;
const costs: string[] = [];
let statsBefore = '0';

function setupArgs(mode: Mode | string, extra: readonly string[] = []): string[] {
  return ['setup', '--vip', VIP4, VIP6, VIP4_PREEXISTING, '--nodes', NODE[4], NODE[6], '--forwarding', mode].concat([
    '--interface',
    'eth0',
    ...extra,
  ]);
}

async function mustCli(args: readonly string[]): Promise<string> {
  const r = await bed.cli(args);
  if (r.code !== 0) throw new Error(`l4fleet backend ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function status(): Promise<{ progId: number; counters: BackendCounters; attached: boolean }> {
  return JSON.parse(await mustCli(['status', '-o', 'json']));
}

/** Everything setup may touch on the backend, as text: sysctls, lo, tc, pins, allow-list maps, the record. */
async function hostState(): Promise<string> {
  const b = bed.backend;
  const parts = [
    (
      await b.run([
        'sysctl',
        ...['all.arp_ignore', 'all.arp_announce', 'all.rp_filter', 'eth0.rp_filter'].map((k) => `net.ipv4.conf.${k}`),
      ])
    ).stdout,
    (await b.run(['ip', '-br', 'addr', 'show', 'dev', 'lo'])).stdout,
    (await b.run(['tc', 'qdisc', 'show', 'dev', 'eth0'])).stdout,
    (await b.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'], { allowFailure: true })).stdout,
    (await run(['find', bed.bpffs, bed.stateDir], { allowFailure: true })).stdout.split('\n').sort().join('\n'),
  ];
  const maps = (await run(['find', bed.bpffs, '-path', '*/maps/*'], { allowFailure: true })).stdout.split('\n');
  for (const m of maps.filter((p: string) => p && !p.endsWith('l4fb_counters')).sort()) {
    parts.push(m, (await run(['bpftool', 'map', 'dump', 'pinned', m])).stdout);
  }
  return parts.join('\n');
}

function icmpInEchos(snmp: string): number {
  const lines = snmp.split('\n').filter((l) => l.startsWith('Icmp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf('InEchos') ?? -1]);
}

async function backendEchos(): Promise<number> {
  return icmpInEchos(await bed.backend.sh('cat /proc/net/snmp'));
}

/**
 * Builds what this test exercises: @l4fleet/dataplane (the setup code and backend.bpf.o) and, when its command is
 * older than its source, the CLI. The rest of the CLI comes from the built workspace (npm run build).
 */
function buildFirst(): void {
  const step = (argv: string[]) => {
    const r = spawnSync(argv[0] as string, argv.slice(1), { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (build first):\n${r.stdout}${r.stderr}`);
  };
  step(['npx', 'tsc', '--build', 'packages/dataplane/tsconfig.json']);
  step(['node', 'packages/dataplane/scripts/build-bpf.mjs']);
  const built = `${root}packages/cli/dist/commands/backend.js`;
  const src = `${root}packages/cli/src/commands/backend.ts`;
  if (!existsSync(built) || statSync(built).mtimeMs < statSync(src).mtimeMs) {
    step(['npx', 'tsc', '--build', 'packages/cli/tsconfig.json']);
  }
}

beforeAll(async () => {
  buildFirst();
  bed = await createBackendHostBed();
  // A host with opinions: strict reverse-path filtering, and one of the VIPs already on lo.
  await bed.backend.sysctl('net.ipv4.conf.eth0.rp_filter', 1);
  await bed.backend.sh(`ip addr add ${VIP4_PREEXISTING}/32 dev lo`);
  pristine = await hostState();
  const server = bed.backend.spawn(['python3', '-c', ECHO_SERVER_PY]);
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
  });
  statsBefore = (await run(['sysctl', '-n', 'kernel.bpf_stats_enabled'])).stdout.trim();
  await run(['sysctl', '-qw', 'kernel.bpf_stats_enabled=1']);
}, 180_000);

afterAll(async () => {
  await run(['sysctl', '-qw', `kernel.bpf_stats_enabled=${statsBefore}`], { allowFailure: true });
  if (costs.length > 0) console.log(`backend program cost (bpf_stats, run_time_ns / run_cnt):\n${costs.join('\n')}`);
  await bed?.cleanup();
});

async function progStats(id: number): Promise<{ ns: number; runs: number }> {
  const p = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'id', String(id)])).stdout);
  return { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 };
}

describe('backend host - l4fleet backend on a real kernel', () => {
  const cases: [Mode, Family, Family][] = [
    ['gue', 4, 4],
    ['gue', 6, 6],
    ['ipip', 4, 4],
    ['ipip', 6, 6],
    ['gre', 4, 4],
    ['gre', 6, 6],
    ['gue', 6, 4],
    ['ipip', 4, 6],
    ['gre', 6, 4],
  ];
  test.each(cases)(
    'backend host - a TCP connection to the VIP over %s (inner IPv%i, outer IPv%i) is answered from the VIP directly',
    async (mode, inner, outer) => {
      await mustCli(setupArgs(mode));
      await bed.encapAt(mode, outer);
      const before = await status();
      const node0 = await bed.nodeCounters();
      const cost0 = await progStats(before.progId);
      const r = await bed.client.run([
        'python3',
        '-c',
        ECHO_CLIENT_PY,
        inner === 4 ? VIP4 : VIP6,
        String(TRANSFER_BYTES),
      ]);
      expect(r.stdout.trim()).toBe(`ok ${TRANSFER_BYTES}`);
      const after = await status();
      const node1 = await bed.nodeCounters();
      const cost1 = await progStats(after.progId);
      const encapsulated = node1.encapsulated - node0.encapsulated;
      const decapsulated =
        after.counters.decapsulated[mode][PAIR(inner, outer)].packets -
        before.counters.decapsulated[mode][PAIR(inner, outer)].packets;
      expect(encapsulated).toBeGreaterThan(0);
      // Every packet the node wrapped was unwrapped here (the router may split one into several, never fewer).
      expect(decapsulated).toBeGreaterThanOrEqual(encapsulated);
      // Direct server return: the replies (as many bytes as the requests) never reached the node.
      expect(node1.fromVip).toBe(0);
      expect(after.counters.droppedStranger.packets).toBe(before.counters.droppedStranger.packets);
      expect(after.counters.malformed.packets).toBe(before.counters.malformed.packets);
      const runs = cost1.runs - cost0.runs;
      costs.push(
        `  ${mode} ipv${inner}-in-ipv${outer}: ${((cost1.ns - cost0.ns) / runs).toFixed(0)} ns/packet over ${runs} ` +
          `runs (${decapsulated} decapsulated, the rest passed)`,
      );
    },
  );

  test.each([['gue'], ['ipip'], ['gre']] as [Mode][])(
    "backend host - a stranger's %s packet is dropped and counted; the same from a node is decapsulated",
    async (mode) => {
      await mustCli(setupArgs(mode));
      const c0 = (await status()).counters;
      const echos0 = await backendEchos();
      await bed.stranger.run(['python3', '-c', SEND_ENCAPSULATED_PY, mode, BACKEND[4], STRANGER[4], VIP4]);
      await bed.stranger.run(['python3', '-c', SEND_ENCAPSULATED_PY, mode, BACKEND[6], STRANGER[4], VIP4]);
      await new Promise((r) => setTimeout(r, 200));
      const c1 = (await status()).counters;
      expect(c1.droppedStranger.packets - c0.droppedStranger.packets).toBe(2);
      expect(await backendEchos()).toBe(echos0);
      await bed.node.run(['python3', '-c', SEND_ENCAPSULATED_PY, mode, BACKEND[4], NODE[4], VIP4]);
      await new Promise((r) => setTimeout(r, 200));
      const c2 = (await status()).counters;
      expect(c2.decapsulated[mode]['ipv4-in-ipv4'].packets - c1.decapsulated[mode]['ipv4-in-ipv4'].packets).toBe(1);
      expect(await backendEchos()).toBe(echos0 + 1);
    },
  );

  test("backend host - a non-first IPv4 fragment of a stranger's UDP whose payload reads like the GUE port passes to the stack", async () => {
    await mustCli(setupArgs('gue'));
    const c0 = (await status()).counters;
    // Offset 1480 (185 x 8), MF clear: the last piece of a datagram; its bytes 2-3 are payload, not a port.
    const py = `
import socket, struct, sys
dst, src, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
payload = struct.pack('!HHHH', 40000, port, 16, 0) + b'x' * 8
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for ident in (7, 8, 9):
    hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, 185, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(hdr + payload, (dst, 0))
`;
    await bed.stranger.run(['python3', '-c', py, BACKEND[4], STRANGER[4], String(GUE_PORT)]);
    await new Promise((r) => setTimeout(r, 200));
    const c1 = (await status()).counters;
    expect(c1.droppedStranger.packets - c0.droppedStranger.packets).toBe(0);
    expect(c1.passed.packets - c0.passed.packets).toBeGreaterThanOrEqual(3);
  });

  test('backend host - malformed and not-a-VIP packets from a node are dropped and counted; other modes pass', async () => {
    await mustCli(setupArgs('gue,gre'));
    const c0 = (await status()).counters;
    const send = (...args: string[]) => bed.node.run(['python3', '-c', SEND_ENCAPSULATED_PY, ...args]);
    await send('gre', BACKEND[4], NODE[4], VIP4, 'gre-key');
    await send('gue', BACKEND[4], NODE[4], VIP4, 'gue-v0');
    await send('gue', BACKEND[4], NODE[4], '198.51.100.99');
    await send('ipip', BACKEND[4], NODE[4], VIP4); // ipip is not enabled: not ours, goes up the stack
    await new Promise((r) => setTimeout(r, 200));
    const c1 = (await status()).counters;
    expect(c1.malformed.packets - c0.malformed.packets).toBe(2);
    expect(c1.droppedNotVip.packets - c0.droppedNotVip.packets).toBe(1);
    expect(c1.decapsulated.ipip['ipv4-in-ipv4'].packets).toBe(c0.decapsulated.ipip['ipv4-in-ipv4'].packets);
    expect(c1.passed.packets).toBeGreaterThan(c0.passed.packets);
  });

  test.each([['gue'], ['ipip'], ['gre']] as [Mode][])(
    'backend host - cost per small packet over %s (bpf_stats run_time_ns / run_cnt, logged)',
    async (mode) => {
      await mustCli(setupArgs(mode));
      const s0 = await status();
      const p0 = await progStats(s0.progId);
      await bed.node.run(['python3', '-c', FLOOD_ENCAPSULATED_PY, mode, BACKEND[4], NODE[4], VIP4, String(FLOOD)]);
      await new Promise((r) => setTimeout(r, 300));
      const s1 = await status();
      const p1 = await progStats(s1.progId);
      const decapsulated =
        s1.counters.decapsulated[mode]['ipv4-in-ipv4'].packets - s0.counters.decapsulated[mode]['ipv4-in-ipv4'].packets;
      // Packets the veth backlog dropped never reach the program; nearly all must have been decapsulated.
      expect(decapsulated).toBeGreaterThan(FLOOD * 0.9);
      expect(decapsulated).toBeLessThanOrEqual(FLOOD);
      const runs = p1.runs - p0.runs;
      costs.push(
        `  ${mode} ipv4-in-ipv4, ${FLOOD} small packets: ${((p1.ns - p0.ns) / runs).toFixed(0)} ns/packet over ` +
          `${runs} runs`,
      );
    },
  );

  test('backend host - setup twice is idempotent', async () => {
    await mustCli(setupArgs('gue'));
    const state = await hostState();
    const again = JSON.parse(await mustCli(setupArgs('gue', ['-o', 'json'])));
    expect(again.changes).toEqual([]);
    expect(await hostState()).toBe(state);
  });

  test('backend host - bad arguments give a clear error naming the field and value and change nothing', async () => {
    await mustCli(setupArgs('gue'));
    const state = await hostState();
    const bad: [string[], number, RegExp][] = [
      [setupArgs('gue').map((a) => (a === VIP6 ? '2001:db8::zz' : a)), 2, /--vip "2001:db8::zz": not an IPv4 or IPv6/],
      [setupArgs('vxlan'), 2, /--forwarding "vxlan": not one of gue \| ipip \| gre/],
      [setupArgs('gue', ['--gue-port', '70000']), 2, /--gue-port "70000": not a port/],
      [setupArgs('ipip', ['--gue-port', '6081']), 2, /--gue-port 6081: only meaningful with --forwarding gue/],
      [setupArgs('gue').map((a) => (a === NODE[4] ? 'node-1' : a)), 2, /--nodes "node-1": not an IPv4 or IPv6/],
      [setupArgs('gue').map((a) => (a === 'eth0' ? 'nope0' : a)), 1, /--interface nope0: no such interface/],
      [
        setupArgs('gue', ['--object', '/nonexistent/backend.bpf.o']),
        1,
        /bpf object \/nonexistent\/backend.bpf.o: missing/,
      ],
    ];
    for (const [args, code, message] of bad) {
      const r = await bed.cli(args);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
    }
    const noBpffs = await bed.backend.run(
      ['node', ...[`${root}packages/cli/bin/l4fleet.js`, 'backend', ...setupArgs('gue')]].concat([
        '--bpffs',
        bed.stateDir,
        '--state-dir',
        bed.stateDir,
      ]),
      { allowFailure: true },
    );
    expect(noBpffs.code).toBe(1);
    expect(noBpffs.stderr).toMatch(/--bpffs .*: is \S+, not a bpf file system \(mount one: mount -t bpf bpf/);
    expect(await hostState()).toBe(state);
    expect((await status()).attached).toBe(true);
  });

  test('backend host - teardown restores the previous sysctls, addresses and filters exactly; a failed setup too', async () => {
    await mustCli(setupArgs('gue'));
    const out = await mustCli(['teardown']);
    expect(out).toMatch(/torn down/);
    expect(await hostState()).toBe(pristine);
    expect((await bed.cli(['teardown'])).stdout).toMatch(/nothing to tear down/);
    // A setup that fails part-way (after the sysctls and VIPs, at the program load) undoes its own steps.
    const broken = await bed.cli(setupArgs('gue', ['--object', `${root}test/backend-host-encap.bpf.c`]));
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/bpftool prog load .*backend-host-encap.bpf.c/);
    expect(await hostState()).toBe(pristine);
    const st = await bed.cli(['status']);
    expect(st.code).toBe(1);
    expect(st.stderr).toMatch(/not set up/);
  });

  test('backend host - teardown finishes when the clsact qdisc was removed by hand, saying so; the host is as before', async () => {
    await mustCli(setupArgs('gue'));
    await bed.backend.run(['tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact']);
    const out = await mustCli(['teardown']);
    expect(out).toMatch(/torn down/);
    expect(out).toContain('left alone: clsact on eth0 already removed');
    expect(await hostState()).toBe(pristine);
  });

  test('backend host - a setup whose mkdir of the pins fails (a read-only bpf file system) undoes its changes, keeps no record', async () => {
    const ro = mkdtempSync(`${tmpdir()}/l4bh-ro-`);
    try {
      await run(['mount', '-t', 'bpf', '-o', 'ro', 'bpf', ro]);
      const args = [...setupArgs('gue'), '--bpffs', ro, '--state-dir', bed.stateDir];
      const r = await bed.backend.run(['node', CLI_BIN, 'backend', ...args], { allowFailure: true });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/mkdir -p .*: exit 1: .*Read-only file system/);
      expect(r.stderr).not.toMatch(/rollback failed/);
      expect(await hostState()).toBe(pristine);
    } finally {
      await run(['umount', ro], { allowFailure: true });
      rmSync(ro, { recursive: true, force: true });
    }
  });

  test('backend host - deploy/systemd/l4fleet-backend.service: its ExecStart, ExecReload and ExecStop with deploy/examples/backend.env', async () => {
    const env = environmentFile(readFileSync(`${root}deploy/examples/backend.env`, 'utf8'));
    const unit = unitFile('l4fleet-backend.service');
    /** The `l4fleet backend` arguments of the unit's `key=` line, its `$VAR`s expanded as systemd does. */
    const command = (key: string): string[] => {
      const words = expandCommand(unitValue(unit, key), env);
      expect(words.slice(0, 3)).toEqual(['/opt/l4fleet/bin/node', '/opt/l4fleet/packages/cli/dist/bin.js', 'backend']);
      return words.slice(3);
    };
    const start = await bed.cli(command('ExecStart'));
    expect(start.code, start.stderr).toBe(0);
    expect((await status()).attached).toBe(true);
    const lo = (await bed.backend.run(['ip', '-br', 'addr', 'show', 'dev', 'lo'])).stdout;
    for (const vip of ['198.51.100.10/32', '198.51.100.11/32', '2001:db8:100::10/128']) expect(lo).toContain(vip);
    expect(await mustCli(command('ExecReload'))).toMatch(/no changes/);
    expect(await mustCli(command('ExecStop'))).toMatch(/torn down/);
    expect(await hostState()).toBe(pristine);
  });
});
