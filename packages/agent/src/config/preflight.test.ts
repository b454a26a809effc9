/** `l4fleet agent --check` past parsing, against a described host (HostFacts): what this machine lacks. */
import { unitFile, unitValue } from '@l4fleet/test-support/systemd';
import { describe, expect, test } from 'vitest';
import type { HostFacts } from './host.js';
import { parseAgentConfig } from './parse.js';
import { preflightProblems, preflightWarnings } from './preflight.js';
import { parseTimespanMs, UNIT_TIMEOUT_STOP_S } from './stop-budget.js';

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
    unitStopTimeout: () => ({ shown: '1min' }), // the shipped unit, no drop-in
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
          "a SIGTERM drain may take 63000 ms: up to 5000 ms for a reload applying to settle (RELOAD_SETTLE_MS), up to 30000 ms for its first pass to begin (DRAIN_PASS_WAIT_MAX_MS: a data-plane apply or verify holding the reconciler's queue), up to 5000 ms more for gobgpd to take GRACEFUL_SHUTDOWN (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it), bgp.gracefulShutdownMs (10000) twice (taken late, the window starts again, once), then drain.forwardAfterWithdrawMs (3000); more than the 57000 ms a TimeoutStopSec of 60 s leaves a SIGTERM drain (the unit in force: systemctl show l4fleet-agent.service, TimeoutStopUSec=1min): systemd would kill the agent mid-drain; raise TimeoutStopSec (a drop-in) to at least 66 s",
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

  // Before TimeoutStopSec=60, --check advised raising TimeoutStopSec in a drop-in past 12 s (to 18 s, say). install.sh
  // replaces the unit and leaves drop-ins, so that 18 s still overrides the shipped 60 s; --check compared the worst
  // case (47 s with the defaults) with the shipped 60 s, said nothing, and systemd SIGKILLed the agent mid-drain.
  const defaults = () => parseAgentConfig(raw({ enabled: false }));
  test('a drop-in left from the earlier advice (TimeoutStopSec=18 in force): a warning naming 18 s, where it was read, and to remove or raise it', () => {
    expect(preflightWarnings(defaults(), host({ unitStopTimeout: () => ({ shown: '18s' }) }))).toEqual([
      {
        path: 'drain.forwardAfterWithdrawMs',
        message:
          "a SIGTERM drain may take 47000 ms: up to 5000 ms for a reload applying to settle (RELOAD_SETTLE_MS), up to 30000 ms for its first pass to begin (DRAIN_PASS_WAIT_MAX_MS: a data-plane apply or verify holding the reconciler's queue), up to 5000 ms more for gobgpd to take GRACEFUL_SHUTDOWN (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it), bgp.gracefulShutdownMs (2000) twice (taken late, the window starts again, once), then drain.forwardAfterWithdrawMs (3000); more than the 15000 ms a TimeoutStopSec of 18 s leaves a SIGTERM drain (the unit in force: systemctl show l4fleet-agent.service, TimeoutStopUSec=18s; the shipped unit has 60 s, so a drop-in or an edited unit lowers it: systemctl cat l4fleet-agent.service shows which): systemd would kill the agent mid-drain; remove that setting (the shipped 60 s fits) or raise it to at least 50 s",
      },
    ]);
  });

  test.each([
    { shown: '1min 30s', graceful: 10_000, warns: false }, // 63 s at worst, 87 s left by 90 s
    { shown: '1min 5s', graceful: 10_000, warns: true }, // 62 s left by 65 s
    { shown: 'infinity', graceful: 60_000, warns: false },
    { shown: '50s', graceful: 2_000, warns: false }, // the defaults' 47 s, exactly what 50 s leaves
    { shown: '49.999000s', graceful: 2_000, warns: true },
  ])('the unit in force at $shown, graceful $graceful ms: warns $warns', ({ shown, graceful, warns }) => {
    const w = preflightWarnings(timed(graceful, 3_000), host({ unitStopTimeout: () => ({ shown }) }));
    expect(w.map((p) => p.path)).toEqual(warns ? ['drain.forwardAfterWithdrawMs'] : []);
  });

  test('the unit in force unread (not loaded, no systemd): the shipped 60 s is used, and the warning says so and why', () => {
    const notLoaded = host({
      unitStopTimeout: () => ({ unread: 'l4fleet-agent.service is not loaded (LoadState=not-found)' }),
    });
    expect(preflightWarnings(defaults(), notLoaded)).toEqual([]);
    const [w] = preflightWarnings(timed(10_000, 3_000), notLoaded);
    expect(w?.message).toContain(
      "more than the 57000 ms a TimeoutStopSec of 60 s leaves a SIGTERM drain (the shipped unit's; the unit in force could not be read: l4fleet-agent.service is not loaded (LoadState=not-found)): systemd would kill the agent mid-drain; raise TimeoutStopSec (a drop-in) to at least 66 s",
    );
  });

  test('unparsable systemctl output: the shipped value, no crash, and the warning quotes what was printed', () => {
    const odd = host({ unitStopTimeout: () => ({ shown: 'soon' }) });
    expect(preflightWarnings(defaults(), odd)).toEqual([]);
    const [w] = preflightWarnings(timed(10_000, 3_000), odd);
    expect(w?.message).toContain(
      `a TimeoutStopSec of 60 s leaves a SIGTERM drain (the shipped unit's; the unit in force could not be read: systemctl show printed TimeoutStopUSec="soon", no time span)`,
    );
  });
});

describe('agent preflight - systemd time spans', () => {
  // systemd's format_timespan(): units y, month, w, d, h, min, s, ms, us; fractions below a minute; `infinity`.
  test.each([
    ['18s', 18_000],
    ['1min', 60_000],
    ['1min 30s', 90_000],
    ['1h 2min 3s', 3_723_000],
    ['1d', 86_400_000],
    ['1w 1d', 691_200_000],
    ['1.500000s', 1_500],
    ['500ms', 500],
    ['1s 250ms', 1_250],
    ['100us', 0.1],
    ['infinity', Number.POSITIVE_INFINITY],
    ['0', Number.POSITIVE_INFINITY], // TimeoutStopSec=0 turns the timeout off
  ])('%s is %d ms', (shown, ms) => {
    expect(parseTimespanMs(shown)).toBe(ms);
  });

  test.each(['', 'soon', '18', '18 s', '-1s', '1min 1min', 's', '1.s', '1e3s'])('"%s" is no time span', (shown) => {
    expect(parseTimespanMs(shown)).toBeUndefined();
  });
});

// gobgpd opens an IPv4-mapped listen address (::ffff:a.b.c.d) as an IPv4 listener on a.b.c.d (bgp-listen.ts), and
// os.networkInterfaces() lists a.b.c.d, never its mapped spelling: --check (the unit's ExecStartPre) asks about a.b.c.d.
describe('agent preflight - bgp.listenAddresses', () => {
  const listening = (listenAddresses: string[]) =>
    parseAgentConfig({ ...raw({}), bgp: { ...raw({}).bgp, listenPort: 179, listenAddresses } });

  test('an IPv4-mapped address is checked as the IPv4 address gobgpd binds: local, so no problem', () => {
    expect(preflightProblems(listening(['::', '::ffff:198.18.0.11']), host())).toEqual([]);
  });

  test('::ffff:0.0.0.0 is bound as 0.0.0.0, the unspecified address: not "not assigned"', () => {
    const problems = preflightProblems(listening(['::ffff:0.0.0.0']), host());
    expect(problems.filter((p) => p.message.includes('not assigned'))).toEqual([]);
  });

  test('an IPv4-mapped address the host does not own is named as written, with the address bound', () => {
    expect(preflightProblems(listening(['::ffff:198.18.0.99']), host())).toEqual([
      {
        path: 'bgp.listenAddresses[0]',
        message:
          '"::ffff:c612:63" (IPv4-mapped 198.18.0.99) is not assigned to any interface on this host (gobgpd\'s listener binds it)',
      },
    ]);
  });
});

describe('agent preflight - health.sourceAddress', () => {
  test('an IPv4-mapped source never reaches --check as "not assigned": parse refuses it, naming why', () => {
    expect(() => parseAgentConfig({ ...raw({}), health: { sourceAddress: '::ffff:198.18.0.11' } })).toThrow(
      'health.sourceAddress: "::ffff:198.18.0.11" is an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)',
    );
  });

  test('a source the host owns passes; one it does not is named', () => {
    const source = (sourceAddress: string) => parseAgentConfig({ ...raw({}), health: { sourceAddress } });
    expect(preflightProblems(source('198.18.0.11'), host())).toEqual([]);
    expect(preflightProblems(source('198.18.0.12'), host())).toEqual([
      {
        path: 'health.sourceAddress',
        message: '"198.18.0.12" is not assigned to any interface on this host (health probes bind it)',
      },
    ]);
  });
});
