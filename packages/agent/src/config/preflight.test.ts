/** `l4fleet agent --check` past parsing, against a described host (HostFacts): what this machine lacks. */
import { unitFile, unitValue } from '@l4fleet/test-support/systemd';
import { describe, expect, test } from 'vitest';
import type { HostFacts } from './host.js';
import { parseAgentConfig } from './parse.js';
import { preflightProblems, preflightWarnings } from './preflight.js';
import { UNIT_TIMEOUT_STOP_S } from './stop-budget.js';

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

  test('a SIGTERM drain whose worst case passes the shipped unit (over 57 s of TimeoutStopSec=60): a warning naming every wait and both fields', () => {
    expect(preflightWarnings(timed(10_000, 3_000), host())).toEqual([
      {
        path: 'drain.forwardAfterWithdrawMs',
        message:
          "a SIGTERM drain may take 63000 ms: up to 5000 ms for a reload applying to settle (RELOAD_SETTLE_MS), up to 30000 ms for its first pass to begin (DRAIN_PASS_WAIT_MAX_MS: a data-plane apply or verify holding the reconciler's queue), up to 5000 ms more for gobgpd to take GRACEFUL_SHUTDOWN (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it), bgp.gracefulShutdownMs (10000) twice (taken late, the window starts again, once), then drain.forwardAfterWithdrawMs (3000); more than the 57000 ms the shipped unit leaves a SIGTERM drain (TimeoutStopSec=60): systemd would kill the agent mid-drain; raise TimeoutStopSec (a drop-in) to at least 66 s",
      },
    ]);
    expect(preflightProblems(timed(10_000, 3_000), host())).toEqual([]);
  });

  // Only the two fields and DRAIN_ANNOUNCE_WAIT_MS were summed (2 s + 3 s + 5 s against TimeoutStopSec=15), but a
  // drain waits up to DRAIN_PASS_WAIT_MAX_MS (30 s) for a verify or apply holding the queue before its 5 s start, and
  // GRACEFUL_SHUTDOWN taken after the fallback started the window starts it again: the defaults may take 42 s, and
  // --check said the stop fit a unit that SIGKILLs at 15 s.
  // A reload applying when SIGTERM came is let settle first, up to RELOAD_SETTLE_MS (5 s): 47 s.
  test('the shipped unit takes the default drain at its worst (5 s + 30 s + 5 s + 2 x 2 s + 3 s, and the 3 s margin), and --check compares against its TimeoutStopSec', () => {
    const timeoutStopS = Number(unitValue(unitFile('l4fleet-agent.service'), 'TimeoutStopSec'));
    expect(timeoutStopS).toBe(UNIT_TIMEOUT_STOP_S);
    expect(timeoutStopS).toBeGreaterThanOrEqual(5 + 30 + 5 + 2 * 2 + 3 + 3);
    expect(preflightWarnings(parseAgentConfig(raw({ enabled: false })), host())).toEqual([]);
  });

  test.each([
    { gracefulShutdownMs: 7_000, forwardAfterWithdrawMs: 3_000, warns: false }, // exactly 57 s at worst
    { gracefulShutdownMs: 7_000, forwardAfterWithdrawMs: 3_001, warns: true },
    // The same sum of the two fields, but the window may run twice: 1 ms more of it is 2 ms more of the stop.
    { gracefulShutdownMs: 7_001, forwardAfterWithdrawMs: 2_999, warns: true },
  ])(
    'graceful $gracefulShutdownMs ms + forward $forwardAfterWithdrawMs ms: warns $warns',
    ({ gracefulShutdownMs, forwardAfterWithdrawMs, warns }) => {
      expect(preflightWarnings(timed(gracefulShutdownMs, forwardAfterWithdrawMs), host()).map((w) => w.path)).toEqual(
        warns ? ['drain.forwardAfterWithdrawMs'] : [],
      );
    },
  );
});
