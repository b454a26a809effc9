/**
 * `l4fleet agent`: `--check` never starts anything, whatever the other flags swallow, and an agent.yaml that parses
 * but cannot run on the host fails `--check` with the field and the value. The runner is replaced by one that records
 * the call, and the host is described (HostFacts), so nothing here touches the machine.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostFacts } from '@l4fleet/agent';
import { StoreError } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { afterAll, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';
import type { AgentCommandDeps } from './agent.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-cli-agent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = {
  node: { name: 'lb1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  etcd: { endpoints: ['http://198.18.0.2:2379'] },
  dataplane: { driver: 'nftables' },
  state: { dir: '/var/lib/l4fleet' },
};

/** A host with eth0 (198.18.0.11, 2001:db8::11), nft, CAP_NET_ADMIN, /etc/l4fleet/ca.pem and /var/lib writable. */
function host(change: Partial<HostFacts> = {}): HostFacts {
  return {
    hasInterface: (n) => n === 'eth0' || n === 'lo',
    isLocalAddress: (a) => ['198.18.0.11', '2001:db8::11', '127.0.0.1', '::1'].includes(a),
    canRead: (f) => f === '/etc/l4fleet/ca.pem',
    canWriteDir: (d) => d.startsWith('/var/lib/'),
    onPath: (p) => p === 'nft',
    hasNetAdmin: () => true,
    missingBpfFile: () => undefined,
    forwarding: () => true,
    hasSysAdmin: () => false,
    isBpffs: () => true,
    bpffsPathProblem: () => undefined,
    isSocket: () => true,
    unitStopTimeout: () => ({ shown: '1min' }),
    ...change,
  };
}

function file(name: string, config: unknown): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify(config)); // JSON is YAML
  return f;
}

async function agent(argv: string[], h: HostFacts = host()) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const started: unknown[] = [];
  const code = await runCli(['agent', ...argv], io, {
    agent: {
      host: h,
      runAgent: async (config) => {
        started.push(config);
        throw new Error('the test runner starts nothing');
      },
    },
  });
  return { code, out: out.join('\n'), err: err.join('\n'), started: started.length };
}

describe('cli agent - --check never starts an agent', () => {
  const f = file('good.yaml', GOOD);

  test('control: without --check the runner is called; with it, it is not and the config is printed', async () => {
    expect((await agent(['--config', f])).started).toBe(1);
    const r = await agent(['--config', f, '--check']);
    expect(r).toMatchObject({ code: 0, started: 0 });
    expect(JSON.parse(r.out)).toMatchObject({ node: { name: 'lb1' }, dataplane: { driver: 'nftables' } });
  });

  test.each([
    { argv: ['--config', f, '--node-name', '--check'], flag: '--node-name', value: '--check' },
    { argv: ['--config', '--check'], flag: '--config', value: '--check' },
    { argv: ['-c', f, '--asn', '--check'], flag: '--asn', value: '--check' },
    { argv: ['--config', f, '--interface', '--check=1'], flag: '--interface', value: '--check=1' },
    { argv: ['--config', f, '--node-name=--check'], flag: '--node-name', value: '--check' },
    { argv: ['--config', f, '--dataplane', '-c'], flag: '--dataplane', value: '-c' },
    // a connection flag of the root command, given after `agent`
    { argv: ['--config', f, '--prefix', '--check'], flag: '--prefix', value: '--check' },
  ])('$argv: usage error naming $flag and $value; nothing started', async ({ argv, flag, value }) => {
    const r = await agent(argv);
    expect(r).toMatchObject({ code: 2, started: 0 });
    expect(r.err).toContain(`${flag}: needs a value, got the option "${value}"`);
  });

  test('-c given twice: usage error naming both files (commander kept the last); nothing started', async () => {
    const r = await agent(['-c', f, '--config', '/etc/other.yaml', '--check']);
    expect(r).toMatchObject({ code: 2, started: 0 });
    expect(r.err).toBe(`error: -c, --config: given twice (${JSON.stringify(f)}, then "/etc/other.yaml"); give it once`);
  });

  test('--check with a value-taking flag missing its value: usage error, nothing started', async () => {
    const r = await agent(['--config', f, '--check', '--node-name']);
    expect(r).toMatchObject({ code: 2, started: 0 });
    expect(r.err).toMatch(/--node-name <name>'? argument missing/);
  });

  test('a value that merely starts with a dash is still a value (not one of the flags)', async () => {
    const r = await agent(['--config', f, '--node-name', '-blue', '--check']);
    expect(r).toMatchObject({ code: 2, started: 0 });
    expect(r.err).toMatch(/node\.name: .*"-blue"/);
  });
});

describe('cli agent - --asn takes decimal digits only', () => {
  const f = file('asn.yaml', GOOD);
  // Number() read these as 1000, 16, 65001 and 7, and the agent ran under an AS nobody typed.
  test.each(['1e3', '0x10', '65001.0', ' 7 ', '', '0', '4294967296'])(
    '--asn %j: usage error naming it; nothing started',
    async (value) => {
      const r = await agent(['--config', f, '--asn', value, '--check']);
      expect(r).toMatchObject({ code: 2, started: 0 });
      expect(r.err).toBe(`error: --asn: ${JSON.stringify(value)} is not an integer (1-4294967295)`);
    },
  );

  test('--asn 4200000000 (a 4-byte private AS) overrides the file', async () => {
    const r = await agent(['--config', f, '--asn', '4200000000', '--check']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ bgp: { asn: 4200000000 } });
  });
});

describe('cli agent - --check refuses an agent.yaml this host cannot run', () => {
  const set = (path: string, value: unknown) => {
    const c = structuredClone(GOOD) as Record<string, Record<string, unknown>>;
    const [section, key] = path.split('.') as [string, string];
    c[section] = { ...c[section], [key]: value };
    return c;
  };
  // A next hop no router forwards to is wrong on any host: the parse refuses it (exit 2), so a start refuses it too.
  test.each([
    {
      name: 'loopback next hop',
      config: set('node.address', '127.0.0.1'),
      message: 'node.address: "127.0.0.1" is a loopback address (127.0.0.0/8): not a next hop',
    },
    {
      name: 'multicast next hop',
      config: set('node.address', '224.0.0.5'),
      message: 'node.address: "224.0.0.5" is a multicast address (224.0.0.0/4)',
    },
    {
      name: 'router id 0.0.0.0',
      config: set('bgp.routerId', '0.0.0.0'),
      message: 'bgp.routerId: "0.0.0.0" is not a BGP identifier (RFC 6286: non-zero)',
    },
  ])('$name: exit 2 (a config problem), the field and the value named', async ({ name, config, message }) => {
    const r = await agent(['--config', file(`${name.replaceAll(' ', '-')}.yaml`, config), '--check']);
    expect(r).toMatchObject({ code: 2, started: 0, out: '' });
    expect(r.err).toContain(message);
  });

  test.each([
    {
      name: 'next hop not on this host',
      config: set('node.address', '198.18.0.99'),
      message: 'node.address: "198.18.0.99" is not assigned to any interface on this host',
    },
    {
      name: 'IPv6 next hop not on this host',
      config: set('node.address6', '2001:db8::99'),
      message: 'node.address6: "2001:db8::99" is not assigned to any interface on this host',
    },
    {
      name: 'interface missing',
      config: set('node.interface', 'eth9'),
      message: 'node.interface: "eth9" does not exist on this host (the nftables data plane hooks it)',
    },
    {
      name: 'probe source not local',
      config: { ...GOOD, health: { sourceAddress: '198.18.0.50' } },
      message: 'health.sourceAddress: "198.18.0.50" is not assigned to any interface on this host',
    },
    {
      name: 'unreadable CA',
      config: set('etcd.tls', { ca: '/etc/l4fleet/missing.pem' }),
      message: 'etcd.tls.ca: "/etc/l4fleet/missing.pem" cannot be read',
    },
    {
      name: 'unreadable health CA',
      config: { ...GOOD, health: { caFile: '/etc/l4fleet/backends-ca.pem' } },
      message: 'health.caFile: "/etc/l4fleet/backends-ca.pem" cannot be read',
    },
    {
      name: 'state dir not writable',
      config: set('state.dir', '/proc/l4fleet'),
      message: 'state.dir: "/proc/l4fleet" cannot be created or written',
    },
    {
      name: 'metrics address not local',
      config: { ...GOOD, metrics: { listen: '198.18.0.77:9469' } },
      message: 'metrics.listen: "198.18.0.77" is not assigned to any interface on this host',
    },
    {
      name: 'multicast peer',
      config: set('bgp.peers', [{ address: '239.1.1.1', asn: 65000 }]),
      message: 'bgp.peers[0].address: "239.1.1.1" is a multicast address',
    },
    {
      name: 'peer session source not local',
      config: set('bgp.peers', [{ address: '198.18.0.1', asn: 65000, localAddress: '198.18.0.12' }]),
      message: 'bgp.peers[0].localAddress: "198.18.0.12" is not assigned to any interface on this host',
    },
    {
      name: 'proxy bind address not local',
      config: set('dataplane.proxyBindAddress', '198.18.0.40'),
      setDriver: 'proxy',
      message: 'dataplane.proxyBindAddress: "198.18.0.40" is not assigned to any interface on this host',
    },
  ])('$name: exit 1, the field and the value named', async ({ name, config, message, setDriver }) => {
    const c = setDriver ? { ...config, dataplane: { ...config.dataplane, driver: setDriver } } : config;
    const r = await agent(['--config', file(`${name.replaceAll(' ', '-')}.yaml`, c), '--check']);
    expect(r).toMatchObject({ code: 1, started: 0, out: '' });
    expect(r.err).toContain(message);
  });

  test.each([
    { name: 'no nft program', change: { onPath: () => false }, message: '"nftables" needs the nft program' },
    { name: 'no CAP_NET_ADMIN', change: { hasNetAdmin: () => false }, message: '"nftables" needs CAP_NET_ADMIN' },
  ])('$name: the data plane driver says what it misses', async ({ change, message }) => {
    const r = await agent(['--config', file('good.yaml', GOOD), '--check'], host(change));
    expect(r).toMatchObject({ code: 1, started: 0 });
    expect(r.err).toContain(`dataplane.driver: ${message}`);
  });

  test('bfd.enabled with bfdd not running: a warning naming bfd.vtyDir, exit 0 (the unit runs --check before every start)', async () => {
    const r = await agent(
      ['--config', file('bfd.yaml', { ...GOOD, bfd: { enabled: true } }), '--check'],
      host({ isSocket: () => false }),
    );
    expect(r).toMatchObject({ code: 0, started: 0 });
    expect(r.err).toContain('warning: bfd.vtyDir: "/var/run/frr" has no bfdd.vty socket: bfdd is not running');
  });

  test('health.caFile that is readable but holds no certificate: --check reads it as the start would', async () => {
    const notPem = join(dir, 'not-a-ca.pem');
    writeFileSync(notPem, 'hello\n');
    const r = await agent(
      ['--config', file('ca.yaml', { ...GOOD, health: { caFile: notPem } }), '--check'],
      host({ canRead: () => true }),
    );
    expect(r).toMatchObject({ code: 1, started: 0, out: '' });
    expect(r.err).toContain(`health.caFile: "${notPem}" holds no PEM certificate`);
  });

  test('every problem at once; dry-run needs no interface and no privileges', async () => {
    const bad = { ...set('node.address', '198.18.0.99'), health: { sourceAddress: '198.18.0.50' } };
    const r = await agent(['--config', file('two.yaml', bad), '--check'], host({ hasNetAdmin: () => false }));
    expect(r.err.split('\n').filter((l) => l.startsWith('error: '))).toHaveLength(3);
    const dry = set('dataplane.driver', 'dry-run');
    const ok = await agent(['--config', file('dry.yaml', dry), '--check'], host({ hasNetAdmin: () => false }));
    expect(ok).toMatchObject({ code: 0, started: 0 });
  });

  test('a config that does not parse stays a usage error (exit 2) and is not checked against the host', async () => {
    const r = await agent(['--config', file('bad.yaml', set('node.address', 'not-an-ip')), '--check']);
    expect(r).toMatchObject({ code: 2, started: 0 });
    expect(r.err).toContain('node.address');
  });
});

describe('cli agent - SIGHUP', () => {
  test('is handled from before the start (Node would exit on it) until the command ends; a failed start removes it', async () => {
    const f = file('hup.yaml', { ...GOOD, logLevel: 'silent' });
    const before = process.listenerCount('SIGHUP');
    let during = -1;
    const code = await runCli(
      ['agent', '--config', f],
      { out: () => undefined, err: () => undefined },
      {
        agent: {
          host: host(),
          runAgent: async () => {
            during = process.listenerCount('SIGHUP');
            process.emit('SIGHUP', 'SIGHUP'); // while starting: ignored, logged
            throw new Error('the test runner starts nothing');
          },
        },
      },
    );
    expect(code).toBe(1);
    expect(during).toBe(before + 1);
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });

  test('once SIGTERM starts the drain, a SIGHUP is logged and ignored: the drain is never given a new config', async () => {
    const f = file('hup-drain.yaml', { ...GOOD, logLevel: 'silent' });
    const calls: string[] = [];
    const fake = {
      agent: { reload: async () => void calls.push('reload') },
      metricsAddress: '127.0.0.1:0',
      shutdown: async () => {
        calls.push('shutdown (draining)');
        process.emit('SIGHUP', 'SIGHUP'); // `systemctl reload` during the drain
        await new Promise((r) => setTimeout(r, 10));
        calls.push('drained');
      },
      close: async () => void calls.push('close'),
    };
    const code = await Promise.race([
      runCli(
        ['agent', '--config', f],
        { out: () => undefined, err: () => undefined },
        {
          agent: {
            host: host(),
            exit: () => undefined,
            runAgent: async () => {
              // Once running: a reload (applied), then SIGTERM.
              setTimeout(() => {
                process.emit('SIGHUP', 'SIGHUP');
                process.emit('SIGTERM', 'SIGTERM');
              }, 10);
              return fake as never;
            },
          },
        },
      ),
      new Promise((r) => setTimeout(() => r('no end within 5 s'), 5_000)),
    ]);
    expect(code).toBe(0);
    expect(calls).toEqual(['reload', 'shutdown (draining)', 'drained']);
  });

  test('a burst of SIGHUPs is merged: at most one reload runs and one waits (it reads the file when it starts)', async () => {
    const f = file('hup-burst.yaml', { ...GOOD, logLevel: 'silent' });
    let reloads = 0;
    let release: () => void = () => undefined;
    const fake = {
      agent: {
        reload: () => {
          reloads += 1;
          return new Promise<void>((r) => (release = r));
        },
      },
      metricsAddress: '127.0.0.1:0',
      shutdown: async () => undefined,
      close: async () => undefined,
    };
    let started: () => void = () => undefined;
    const running = new Promise<void>((r) => (started = r));
    const done = runCli(
      ['agent', '--config', f],
      { out: () => undefined, err: () => undefined },
      {
        agent: {
          host: host(),
          exit: () => undefined,
          runAgent: async () => {
            setTimeout(started, 10);
            return fake as never;
          },
        },
      },
    );
    await running;
    for (let i = 0; i < 10; i += 1) process.emit('SIGHUP', 'SIGHUP');
    expect(reloads).toBe(1);
    release(); // the first ends: the one waiting starts, the other eight were merged into it
    await waitUntil('the waiting reload', () => reloads === 2, 5_000, 5);
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(reloads).toBe(2);
    process.emit('SIGHUP', 'SIGHUP'); // none running: one at once
    expect(reloads).toBe(3);
    release();
    process.emit('SIGTERM', 'SIGTERM');
    expect(await Promise.race([done, new Promise((r) => setTimeout(() => r('no end within 5 s'), 5_000))])).toBe(0);
  });
});

describe('cli agent - SIGTERM while starting', () => {
  const f = file('term.yaml', { ...GOOD, logLevel: 'silent' });
  const run = (deps: AgentCommandDeps) =>
    runCli(['agent', '--config', f], { out: () => undefined, err: () => undefined }, { agent: deps });

  test('is handled from before the start: the agent drains once started (not Node killing it half-started)', async () => {
    const before = process.listenerCount('SIGTERM');
    let during = -1;
    const calls: string[] = [];
    const exits: number[] = [];
    const fake = {
      agent: {} as never,
      metricsAddress: '127.0.0.1:0',
      shutdown: async () => void calls.push('shutdown'),
      close: async () => void calls.push('close'),
    };
    const code = await Promise.race([
      run({
        host: host(),
        exit: (c: number) => void exits.push(c),
        runAgent: async () => {
          during = process.listenerCount('SIGTERM');
          process.emit('SIGTERM', 'SIGTERM');
          return fake;
        },
      }),
      new Promise((r) => setTimeout(() => r('no exit within 5 s'), 5_000)),
    ]);
    expect(code).toBe(0);
    expect(during).toBe(before + 1);
    expect(calls).toEqual(['shutdown']);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  // The agent was told only once runAgent resolved: by then start() had made the node serve and announce without the
  // graceful-shutdown community, then drained. The first signal now aborts runAgent's signal, while it starts.
  test('the first signal aborts the start (runAgent begins the shutdown at once); the agent is then shut down', async () => {
    const calls: string[] = [];
    let abortedDuringStart: boolean | undefined;
    const fake = {
      agent: {} as never,
      metricsAddress: '127.0.0.1:0',
      shutdown: async () => void calls.push('shutdown'),
      close: async () => void calls.push('close'),
    };
    const code = await Promise.race([
      run({
        host: host(),
        exit: () => undefined,
        runAgent: async (_config, opts) => {
          expect(opts.signal?.aborted).toBe(false);
          process.emit('SIGTERM', 'SIGTERM');
          abortedDuringStart = opts.signal?.aborted;
          return fake;
        },
      }),
      new Promise((r) => setTimeout(() => r('no exit within 5 s'), 5_000)),
    ]);
    expect(code).toBe(0);
    expect(abortedDuringStart).toBe(true);
    expect(calls).toEqual(['shutdown']);
  });

  // The node's name turned out another address's while it served: runAgent began the drain and says so; the command
  // finished it and exited 0, so systemd's Restart=on-failure never started the agent again.
  test('a node.name taken while serving: the agent is shut down and the command fails (1) naming the holder', async () => {
    const calls: string[] = [];
    const err: string[] = [];
    let taken: unknown;
    const fake = {
      agent: {} as never,
      metricsAddress: '127.0.0.1:0',
      shutdown: async () => void calls.push('shutdown'),
      close: async () => void calls.push('close'),
    };
    const saved = process.exitCode;
    const code = await Promise.race([
      runCli(
        ['agent', '--config', f],
        { out: () => undefined, err: (t) => void err.push(t) },
        {
          agent: {
            host: host(),
            exit: () => undefined,
            runAgent: async (_config, opts) => {
              taken = opts.onNameTaken;
              setTimeout(
                () =>
                  opts.onNameTaken?.(
                    new StoreError('CONFLICT', 'node.name "lb1" is already registered by 198.18.0.12'),
                  ),
                10,
              );
              return fake;
            },
          },
        },
      ),
      new Promise((r) => setTimeout(() => r('no exit within 5 s'), 5_000)),
    ]);
    process.exitCode = saved;
    expect(taken).toBeTypeOf('function');
    expect(code).toBe(1);
    expect(calls).toEqual(['shutdown']);
    expect(err.join('\n')).toMatch(/already registered by 198\.18\.0\.12/);
  });

  // A shutdown() that rejected was logged and the command exited 0: systemd's Restart=on-failure and the operator saw
  // a clean stop. A close() rejecting on the second signal was an unhandled rejection (a crash with a stack).
  const failing = async (fake: { shutdown: () => Promise<void>; close: () => Promise<void> }) => {
    const err: string[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const saved = process.exitCode;
    try {
      const code = await Promise.race([
        runCli(
          ['agent', '--config', f],
          { out: () => undefined, err: (t) => void err.push(t) },
          {
            agent: {
              host: host(),
              exit: () => undefined,
              runAgent: async () => {
                process.emit('SIGTERM', 'SIGTERM');
                return { agent: {} as never, metricsAddress: '127.0.0.1:0', ...fake };
              },
            },
          },
        ),
        new Promise((r) => setTimeout(() => r('no exit within 5 s'), 5_000)),
      ]);
      // A rejection left unhandled is reported on a later turn.
      await new Promise((r) => setTimeout(r, 50));
      return { code, err: err.join('\n'), unhandled, exitCode: process.exitCode };
    } finally {
      process.off('unhandledRejection', onUnhandled);
      process.exitCode = saved;
    }
  };

  test('shutdown() rejecting: the command fails (1) saying so', async () => {
    const r = await failing({
      shutdown: async () => {
        throw new Error('gobgpd refused the withdraw');
      },
      close: async () => undefined,
    });
    expect(r.code).toBe(1);
    expect(r.exitCode).toBe(1);
    expect(r.err).toMatch(/shutdown failed: gobgpd refused the withdraw/);
    expect(r.unhandled).toEqual([]);
  });

  test('a second signal whose close() rejects: no unhandled rejection, the command fails (1) saying so', async () => {
    const r = await failing({
      shutdown: () => {
        process.emit('SIGTERM', 'SIGTERM'); // the second signal while the drain runs
        return new Promise<void>(() => undefined);
      },
      close: async () => {
        throw new Error('gobgpd unreachable');
      },
    });
    expect(r.unhandled).toEqual([]);
    expect(r.code).toBe(1);
    expect(r.exitCode).toBe(1);
    expect(r.err).toMatch(/close failed: gobgpd unreachable/);
  });

  test('a start that does not finish: a second signal exits at once; a failed start removes the handlers', async () => {
    const before = process.listenerCount('SIGINT');
    const exits: number[] = [];
    let fail: (e: Error) => void = () => undefined;
    const running = run({
      host: host(),
      exit: (c: number) => {
        exits.push(c);
        fail(new Error('exited'));
      },
      runAgent: () =>
        new Promise((_resolve, reject) => {
          fail = reject;
          process.emit('SIGINT', 'SIGINT');
          process.emit('SIGINT', 'SIGINT');
        }),
    });
    expect(await Promise.race([running, new Promise((r) => setTimeout(() => r('no end within 5 s'), 5_000))])).toBe(1);
    expect(exits).toEqual([0]);
    expect(process.listenerCount('SIGINT')).toBe(before);
  });
});
