/**
 * `l4fleet agent` when runAgent says the node's name is another node's (onNameTaken): the agent is shut down and the
 * command fails (1), whenever it is told, and a SIGHUP from then on reloads nothing. The runner is a fake; the host is
 * described (HostFacts), so nothing here touches the machine. agent.test.ts holds the other signal cases.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostFacts } from '@l4fleet/agent';
import { StoreError } from '@l4fleet/store';
import { afterAll, describe, expect, test } from 'vitest';
import { runCli } from '../program.js';
import type { AgentCommandDeps } from './agent.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-cli-agent-taken-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = join(dir, 'agent.yaml');
// JSON is YAML.
writeFileSync(
  config,
  JSON.stringify({
    node: { name: 'lb1', interface: 'eth0', address: '198.18.0.11' },
    bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
    etcd: { endpoints: ['http://198.18.0.2:2379'] },
    dataplane: { driver: 'nftables' },
    state: { dir: '/var/lib/l4fleet' },
    logLevel: 'silent',
  }),
);

/** A host with eth0 (198.18.0.11), nft, CAP_NET_ADMIN and /var/lib writable. */
const host: HostFacts = {
  hasInterface: (n) => n === 'eth0' || n === 'lo',
  isLocalAddress: (a) => ['198.18.0.11', '127.0.0.1', '::1'].includes(a),
  canRead: () => false,
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
};

const takenBy = (holder: string) =>
  new StoreError('CONFLICT', `node.name "lb1" is already registered by ${holder}; node names must be unique`);

/** The command's exit code (or 'no end within 5 s'), and what went to stderr; process.exitCode left as it was. */
async function run(runAgent: NonNullable<AgentCommandDeps['runAgent']>) {
  const err: string[] = [];
  const saved = process.exitCode;
  try {
    const code = await Promise.race([
      runCli(
        ['agent', '--config', config],
        { out: () => undefined, err: (t) => void err.push(t) },
        { agent: { host, exit: () => undefined, runAgent } },
      ),
      new Promise((r) => setTimeout(() => r('no end within 5 s'), 5_000)),
    ]);
    return { code, err: err.join('\n') };
  } finally {
    process.exitCode = saved;
  }
}

describe('cli agent - node.name taken', () => {
  // Told before runAgent returned (the agent exists for the command only after): nothing drained it, and the command
  // waited for a signal, serving unannounced under a name another node holds.
  test('told while runAgent has not returned yet: the agent is shut down once it has, exit 1', async () => {
    const calls: string[] = [];
    const r = await run(async (_config, opts) => {
      opts.onNameTaken?.(takenBy('198.18.0.12'));
      return {
        agent: {} as never,
        metricsAddress: '127.0.0.1:0',
        shutdown: async () => void calls.push('shutdown'),
        close: async () => void calls.push('close'),
      };
    });
    expect(r.code).toBe(1);
    expect(calls).toEqual(['shutdown']);
    expect(r.err).toMatch(/already registered by 198\.18\.0\.12/);
  });

  // The drain runs on the config it started with: a reload mid-drain would hand gobgpd new peers, or reach the
  // closed agent.
  test('a SIGHUP once the name is taken reloads nothing', async () => {
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
    const r = await run(async (_config, opts) => {
      setTimeout(() => opts.onNameTaken?.(takenBy('198.18.0.12')), 10);
      return fake as never;
    });
    expect(r.code).toBe(1);
    expect(calls).toEqual(['shutdown (draining)', 'drained']);
  });
});
