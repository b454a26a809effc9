/** `l4fleet agent --check` past parsing, against a described host (HostFacts): what this machine lacks. */
import { describe, expect, test } from 'vitest';
import type { HostFacts } from './host.js';
import { parseAgentConfig } from './parse.js';
import { preflightProblems, preflightWarnings } from './preflight.js';

const raw = (bfd: object) => ({
  node: { name: 'lb1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  etcd: { endpoints: ['http://198.18.0.2:2379'] },
  state: { enabled: false },
  dataplane: { driver: 'dry-run' },
  bfd,
});

function host(change: Partial<HostFacts> = {}): HostFacts {
  return {
    hasInterface: (n) => n === 'eth0',
    isLocalAddress: (a) => a === '198.18.0.11' || a === '127.0.0.1',
    canRead: () => true,
    canWriteDir: () => true,
    onPath: () => true,
    hasNetAdmin: () => true,
    missingBpfFile: () => undefined,
    forwarding: () => true,
    hasSysAdmin: () => false,
    isBpffs: () => true,
    bpffsPathProblem: () => undefined,
    isSocket: () => true,
    ...change,
  };
}

describe('agent preflight - bfd', () => {
  test('bfd.enabled without bfdd running (no bfdd.vty in bfd.vtyDir): a warning naming it, with how to start it; no problem', () => {
    const noBfdd = host({ isSocket: () => false });
    const config = parseAgentConfig(raw({ enabled: true }));
    // The unit runs --check before every start: an agent (re)started while frr restarts must start (0010).
    expect(preflightProblems(config, noBfdd)).toEqual([]);
    expect(preflightWarnings(config, noBfdd)).toEqual([
      {
        path: 'bfd.vtyDir',
        message:
          '"/var/run/frr" has no bfdd.vty socket: bfdd is not running (Debian\'s frr starts it with bfdd=yes in /etc/frr/daemons, then systemctl restart frr); the agent runs BGP without BFD until it answers',
      },
    ]);
    const asked: string[] = [];
    const seen = host({
      isSocket: (p) => {
        asked.push(p);
        return true;
      },
    });
    expect(preflightWarnings(parseAgentConfig(raw({ enabled: true, vtyDir: '/run/frr' })), seen)).toEqual([]);
    expect(asked).toEqual(['/run/frr/bfdd.vty']);
  });

  test('bfd off: bfdd is not asked for', () => {
    expect(preflightWarnings(parseAgentConfig(raw({ enabled: false })), host({ isSocket: () => false }))).toEqual([]);
  });
});

describe('agent preflight - stop timing', () => {
  const timed = (gracefulShutdownMs: number, forwardAfterWithdrawMs: number) =>
    parseAgentConfig({
      ...raw({ enabled: false }),
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs },
      drain: { forwardAfterWithdrawMs },
    });

  test('a SIGTERM drain longer than the shipped unit allows (over 12 s of TimeoutStopSec=15): a warning naming both fields', () => {
    expect(preflightWarnings(timed(10_000, 3_000), host())).toEqual([
      {
        path: 'drain.forwardAfterWithdrawMs',
        message:
          'bgp.gracefulShutdownMs (10000) + drain.forwardAfterWithdrawMs (3000) + the 5000 ms a drain waits for GRACEFUL_SHUTDOWN to go out (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it) is 18000 ms, more than the 12000 ms the shipped unit leaves a SIGTERM drain (TimeoutStopSec=15): systemd would kill the agent mid-drain; raise TimeoutStopSec (a drop-in) to at least 21 s',
      },
    ]);
    expect(preflightProblems(timed(10_000, 3_000), host())).toEqual([]);
  });

  // Only the two fields were summed: a drain whose announcement is refused or deferred starts its window
  // DRAIN_ANNOUNCE_WAIT_MS late, so 7 s + 5 s passed --check and took some 17 s, past TimeoutStopSec=15.
  test('the wait for the announcement counts: 7 s + 5 s warns', () => {
    expect(preflightWarnings(timed(7_000, 5_000), host()).map((w) => w.path)).toEqual(['drain.forwardAfterWithdrawMs']);
  });

  test('the defaults and a drain of exactly 12 s (the announcement wait included): no warning', () => {
    expect(preflightWarnings(parseAgentConfig(raw({ enabled: false })), host())).toEqual([]);
    expect(preflightWarnings(timed(4_000, 3_000), host())).toEqual([]);
  });
});
