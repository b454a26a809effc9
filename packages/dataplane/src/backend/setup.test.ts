import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { Exec } from '../exec.js';
import { readRecord, recordPath, writeRecord } from './record.js';
import { setupBackend } from './setup.js';
import { DEAD_PID, fakeHost, hostDeps as fakeHostDeps, INPUT, NETNS, PRISTINE } from './setup-fake-host.test-helper.js';
import { backendStatus, teardownBackend } from './teardown.js';

// The record's writes as the real ones, but for the one a test makes fail (a full disk under the state directory).
const recordWrites = vi.hoisted(() => ({ failNext: false }));
vi.mock('./record.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./record.js')>();
  return {
    ...real,
    writeRecord: async (...args: Parameters<typeof real.writeRecord>) => {
      if (recordWrites.failNext) {
        recordWrites.failNext = false;
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${args[0]}'`), { code: 'ENOSPC' });
      }
      return real.writeRecord(...args);
    },
  };
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  recordWrites.failNext = false;
  for (const c of cleanups.splice(0).reverse()) await c();
});
const hostDeps = (exec: Exec) => fakeHostDeps(exec, cleanups);

describe('backend host', () => {
  test('backend host - a VIP given as non-canonical IPv6 text is recorded as the kernel prints it, kept by a second setup, removed by teardown', async () => {
    const host = fakeHost();
    const deps = await hostDeps(host.exec);
    const input = { vips: ['2001:DB8::1', '198.18.2.1'], nodes: ['198.18.0.1'], forwarding: 'ipip', interface: 'eth0' };
    await setupBackend(input, deps);
    expect([...host.lo.values()].sort()).toEqual(['198.18.2.1/32', '2001:db8::1/128']);
    const path = recordPath(deps.stateDir, NETNS);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128', '198.18.2.1/32']);
    // Again, as given: the address it added stays its own.
    await setupBackend(input, deps);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128', '198.18.2.1/32']);
    const down = await teardownBackend(deps);
    expect(down.leftAlone).toEqual([]);
    expect([...host.lo.values()]).toEqual([]);
  });

  test('backend host - a record from before canonical text (2001:DB8::1/128) still matches lo: setup keeps it, teardown removes it', async () => {
    const host = fakeHost();
    const deps = await hostDeps(host.exec);
    const input = { vips: ['2001:DB8::1'], nodes: ['198.18.0.1'], forwarding: 'ipip', interface: 'eth0' };
    await setupBackend(input, deps);
    const path = recordPath(deps.stateDir, NETNS);
    const old = await readRecord(path);
    if (!old) throw new Error('no record');
    await writeRecord(path, { ...old, addedVips: ['2001:DB8::1/128'] });
    await setupBackend(input, deps);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128']);
    await writeRecord(path, { ...old, addedVips: ['2001:DB8::1/128'] });
    await teardownBackend(deps);
    expect([...host.lo.values()]).toEqual([]);
  });

  test('backend host - a second setup (or teardown) while one runs is refused naming its pid; the first ends with its state intact', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const stop = host.hang('bpftool prog load');
    const first = setupBackend(INPUT, deps);
    await stop.reached;
    const lock = `${deps.stateDir}/backend-net4026531840.lock`;
    await expect(setupBackend({ ...INPUT, vips: ['198.51.100.9'] }, deps)).rejects.toThrow(
      `${lock}: another backend setup runs (pid ${process.pid})`,
    );
    await expect(teardownBackend(deps)).rejects.toThrow(`another backend setup runs (pid ${process.pid})`);
    await expect(backendStatus(deps)).rejects.toThrow(`another backend setup runs (pid ${process.pid})`);
    stop.release();
    const report = await first;
    expect([...host.lo.values()].sort()).toEqual(['198.51.100.7/32', '2001:db8::7/128']);
    expect(host.sysctls.get('net/ipv4/conf/all/arp_ignore')).toBe('1');
    expect(host.tc).toEqual({ clsact: true, filter: `${report.pinDir}/prog` });
    const record = await readRecord(recordPath(deps.stateDir, NETNS));
    expect(record?.addedVips).toEqual(['198.51.100.7/32', '2001:db8::7/128']);
    expect(record?.incomplete).toBeUndefined();
    // The lock went with the setup: the next one runs.
    expect((await setupBackend(INPUT, deps)).changes.filter((c) => c.what !== 'maps')).toEqual([]);
  });

  test.each([
    ['gone', { pid: DEAD_PID, command: 'setup' }],
    ['reused by another process', { pid: process.pid, start: '1', command: 'setup' }],
    ['not a holder', 'x'],
  ])('backend host - a lock left by a process that is %s does not block setup', async (_, holder) => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await mkdir(deps.stateDir, { recursive: true });
    await writeFile(`${deps.stateDir}/backend-net4026531840.lock`, JSON.stringify(holder));
    await setupBackend(INPUT, deps);
    expect(host.lo.size).toBe(2);
  });

  test('backend host - setup then teardown leaves no state directory, no lock; status on nothing leaves none either', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await expect(backendStatus(deps)).rejects.toThrow('not set up');
    expect(existsSync(deps.stateDir)).toBe(false);
    await setupBackend(INPUT, deps);
    expect(readdirSync(deps.stateDir)).toEqual(['backend-net4026531840.json']);
    await teardownBackend(deps);
    expect(existsSync(deps.stateDir)).toBe(false);
  });

  test('backend host - a setup killed part-way leaves a record of what it was changing: setup again, then teardown, restores the host', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const stop = host.hang('bpftool prog load');
    // Never released: stands in for SIGKILL (or systemctl stop) after the sysctls and VIPs were changed.
    void setupBackend(INPUT, deps);
    await stop.reached;
    await writeFile(`${deps.stateDir}/backend-net4026531840.lock`, JSON.stringify({ pid: DEAD_PID, command: 'setup' }));
    expect(host.lo.size).toBe(2);
    const path = recordPath(deps.stateDir, NETNS);
    expect((await readRecord(path))?.incomplete).toBe(true);
    await expect(backendStatus(deps)).rejects.toThrow('a setup did not finish');
    await setupBackend(INPUT, deps);
    expect((await readRecord(path))?.addedVips).toEqual(['198.51.100.7/32', '2001:db8::7/128']);
    const down = await teardownBackend(deps);
    expect(down.leftAlone).toEqual([]);
    expect([...host.lo.values()]).toEqual([]);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(host.tc).toEqual({ clsact: false, filter: undefined });
    expect([...host.paths]).toEqual([]);
  });

  test('backend host - a setup killed before its first change is torn down without complaint', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const stop = host.hang('sysctl -qw');
    void setupBackend(INPUT, deps);
    await stop.reached;
    await writeFile(`${deps.stateDir}/backend-net4026531840.lock`, JSON.stringify({ pid: DEAD_PID, command: 'setup' }));
    const down = await teardownBackend(deps);
    expect(down.wasSetUp).toBe(true);
    expect(down.leftAlone).toEqual([]);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  test('backend host - a setup killed before it added clsact is torn down without a setup again: the qdisc it never made is skipped', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const stop = host.hang('bpftool prog load');
    void setupBackend(INPUT, deps);
    await stop.reached;
    await writeFile(`${deps.stateDir}/backend-net4026531840.lock`, JSON.stringify({ pid: DEAD_PID, command: 'setup' }));
    expect((await readRecord(recordPath(deps.stateDir, NETNS)))?.clsactCreated).toBe(true);
    const down = await teardownBackend(deps);
    expect(down.leftAlone).toEqual([]);
    expect(down.changes.map((c) => c.what)).toEqual(['program', 'vip', 'vip', 'sysctl', 'sysctl', 'sysctl']);
    expect([...host.lo.values()]).toEqual([]);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect([...host.paths]).toEqual([]);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  test('backend host - a clsact removed by hand after setup: teardown finishes, saying so', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await setupBackend(INPUT, deps);
    await host.exec(['tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact']);
    const down = await teardownBackend(deps);
    expect(down.leftAlone).toEqual(['clsact on eth0 already removed']);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(existsSync(deps.stateDir)).toBe(false);
  });

  test.each([
    ['tc filter del dev eth0 ingress pref 1', 'filter'],
    ['tc qdisc del dev eth0 clsact', 'qdisc'],
    ['ip addr del 198.51.100.7/32 dev lo', 'vip'],
  ])(
    "backend host - teardown's %s failing because someone removed it just before counts as removed",
    async (race, what) => {
      const host = fakeHost(PRISTINE);
      const deps = await hostDeps(host.exec);
      await setupBackend(INPUT, deps);
      let raced = false;
      const racing: Exec = async (argv, input) => {
        if (!raced && argv.join(' ') === race) {
          raced = true;
          expect((await host.exec(argv)).code).toBe(0);
        }
        return host.exec(argv, input);
      };
      const down = await teardownBackend({ ...deps, exec: racing });
      expect(raced).toBe(true);
      expect(down.leftAlone).toEqual([]);
      expect(down.changes.map((c) => c.what)).toContain(what);
      expect(host.tc).toEqual({ clsact: false, filter: undefined });
      expect([...host.lo.values()]).toEqual([]);
      expect(existsSync(deps.stateDir)).toBe(false);
    },
  );

  test('backend host - a setup that fails part-way leaves the host and the record as they were', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) =>
      argv.join(' ').startsWith('tc filter replace') ? { code: 2, stdout: '', stderr: 'no' } : host.exec(argv, input);
    await expect(setupBackend(INPUT, { ...deps, exec: failing })).rejects.toThrow('tc filter replace');
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  test('backend host - a setup whose mkdir -p of the pins is refused rolls back all of its changes, with no directory to remove', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) =>
      argv[0] === 'mkdir'
        ? { code: 1, stdout: '', stderr: `mkdir: cannot create directory '${argv.at(-1)}': Permission denied` }
        : host.exec(argv, input);
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(/^mkdir -p .*: exit 1: mkdir: cannot create directory .*: Permission denied$/);
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  test('backend host - a VIP removed by hand while a setup fails: the rollback takes it as removed and restores the ARP settings', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) => {
      if (!argv.join(' ').startsWith('bpftool prog load')) return host.exec(argv, input);
      await host.exec(['ip', 'addr', 'del', '198.51.100.7/32', 'dev', 'lo']);
      return { code: 255, stdout: '', stderr: 'libbpf: prog refused' };
    };
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(/: exit 255: libbpf: prog refused$/);
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect([...host.paths]).toEqual([]);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  // The rollback's `tc qdisc del` of the clsact it added fails on a qdisc no longer there: the host is as the undo
  // wanted, so the rollback is clean (no "rollback failed too", no record kept for a teardown with nothing to do).
  test('backend host - the filter attach fails and clsact was removed by hand meanwhile: a clean rollback, no record kept', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) => {
      if (!argv.join(' ').startsWith('tc filter replace')) return host.exec(argv, input);
      host.tc.clsact = false;
      return { code: 2, stdout: '', stderr: 'Error: Filter with specified priority/protocol not found.' };
    };
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(/^tc filter replace .*: exit 2: Error: Filter with specified priority/);
    await expect(setup).rejects.not.toThrow('the rollback failed too');
    expect(host.tc).toEqual({ clsact: false, filter: undefined });
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect([...host.paths]).toEqual([]);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  // The same for the filter: its `tc filter del` fails on a filter no longer there, which is what the undo wanted.
  test('backend host - the record write fails and the filter was removed by hand meanwhile: a clean rollback, no record kept', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) => {
      const r = await host.exec(argv, input);
      if (argv.join(' ').startsWith('tc filter replace')) {
        host.tc.filter = undefined;
        recordWrites.failNext = true;
      }
      return r;
    };
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(/^backend setup: ENOSPC: no space left on device, write '.*'$/);
    expect(host.tc).toEqual({ clsact: false, filter: undefined });
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect([...host.paths]).toEqual([]);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toBeUndefined();
  });

  // A check that cannot tell whether the host is as the undo wanted counts as not: the undo's own failure stands.
  test('backend host - an undo step that fails while its check fails too is a failed rollback naming the step, the record kept', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    let attachFailed = false;
    const failing: Exec = async (argv, input) => {
      const line = argv.join(' ');
      if (line.startsWith('tc filter replace')) {
        attachFailed = true;
        return { code: 2, stdout: '', stderr: 'Error: bpf: prog refused' };
      }
      if (attachFailed && line.startsWith('tc qdisc del'))
        return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' };
      if (attachFailed && line.startsWith('tc -j qdisc show'))
        return { code: 1, stdout: '', stderr: 'Cannot send dump request: Operation not permitted' };
      return host.exec(argv, input);
    };
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(
      /^tc filter replace .*: exit 2: Error: bpf: prog refused; the rollback failed too/,
    );
    await expect(setup).rejects.toThrow(
      'tc qdisc del dev eth0 clsact: exit 2: RTNETLINK answers: Operation not permitted',
    );
    expect(host.tc.clsact).toBe(true);
    expect(await readRecord(recordPath(deps.stateDir, NETNS))).toMatchObject({ clsactCreated: true });
  });

  test('backend host - a setup whose rollback fails keeps the record and the ARP settings, names each failed step; teardown then finishes', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const failing: Exec = async (argv, input) => {
      const line = argv.join(' ');
      if (line.startsWith('bpftool prog load')) return { code: 255, stdout: '', stderr: 'libbpf: prog refused' };
      if (line.startsWith('ip addr del'))
        return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' };
      return host.exec(argv, input);
    };
    const setup = setupBackend(INPUT, { ...deps, exec: failing });
    await expect(setup).rejects.toThrow(
      /bpftool prog load .*: exit 255: libbpf: prog refused; the rollback failed too/,
    );
    await expect(setup).rejects.toThrow(
      'ip addr del 2001:db8::7/128 dev lo: exit 2: RTNETLINK answers: Operation not permitted; ' +
        'ip addr del 198.51.100.7/32 dev lo: exit 2: RTNETLINK answers: Operation not permitted',
    );
    await expect(setup).rejects.toThrow(
      'sysctl net/ipv4/conf/all/arp_announce kept at 2, not restored to 0 while a VIP setup added is on lo',
    );
    await expect(setup).rejects.toThrow('run l4fleet backend teardown');
    // The VIPs stay on lo: lo must stay silent for them on the LAN, and the record tells teardown what to undo.
    expect(host.lo.size).toBe(2);
    expect(host.sysctls.get('net/ipv4/conf/all/arp_ignore')).toBe('1');
    expect(host.sysctls.get('net/ipv4/conf/all/arp_announce')).toBe('2');
    const path = recordPath(deps.stateDir, NETNS);
    expect((await readRecord(path))?.addedVips).toEqual(['198.51.100.7/32', '2001:db8::7/128']);
    const down = await teardownBackend(deps);
    expect(down.wasSetUp).toBe(true);
    expect(down.leftAlone).toEqual([]);
    expect([...host.lo.values()]).toEqual([]);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(await readRecord(path)).toBeUndefined();
  });

  test('backend host - a teardown whose ip addr del fails keeps the VIP, arp_ignore/arp_announce and the record, and fails naming the stderr; the next teardown finishes', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await setupBackend(INPUT, deps);
    const failing: Exec = async (argv, input) =>
      argv.join(' ') === 'ip addr del 198.51.100.7/32 dev lo'
        ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' }
        : host.exec(argv, input);
    const down = teardownBackend({ ...deps, exec: failing });
    await expect(down).rejects.toThrow(/^backend teardown did not finish: .* is kept/);
    await expect(down).rejects.toThrow(
      'left alone: vip 198.51.100.7/32 is still on lo: ip addr del 198.51.100.7/32 dev lo: exit 2: ' +
        'RTNETLINK answers: Operation not permitted',
    );
    await expect(down).rejects.toThrow(
      'left alone: sysctl net/ipv4/conf/all/arp_ignore kept at 1, not restored to 0 while a VIP setup added is on lo',
    );
    await expect(down).rejects.toThrow('vip      2001:db8::7/128 removed from lo');
    expect([...host.lo.values()]).toEqual(['198.51.100.7/32']);
    expect(host.sysctls.get('net/ipv4/conf/all/arp_ignore')).toBe('1');
    expect(host.sysctls.get('net/ipv4/conf/all/arp_announce')).toBe('2');
    expect(host.sysctls.get('net/ipv4/conf/eth0/rp_filter')).toBe('0');
    expect(host.tc).toEqual({ clsact: false, filter: undefined });
    const path = recordPath(deps.stateDir, NETNS);
    const kept = await readRecord(path);
    expect(kept?.addedVips).toEqual(['198.51.100.7/32']);
    expect(kept?.sysctls.map((s) => s.key)).toEqual(['net/ipv4/conf/all/arp_ignore', 'net/ipv4/conf/all/arp_announce']);
    const again = await teardownBackend(deps);
    expect(again.leftAlone).toEqual([]);
    expect(again.changes.map((c) => c.what)).toEqual(['vip', 'sysctl', 'sysctl']);
    expect([...host.lo.values()]).toEqual([]);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect(existsSync(deps.stateDir)).toBe(false);
  });

  test('backend host - a teardown whose tc qdisc del and rm -rf of the pins fail says so and keeps the record; the next teardown finishes', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await setupBackend(INPUT, deps);
    const failing: Exec = async (argv, input) => {
      const line = argv.join(' ');
      if (line.startsWith('tc qdisc del'))
        return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Device or resource busy' };
      if (line.startsWith('rm -rf'))
        return { code: 1, stdout: '', stderr: 'rm: cannot remove: Operation not permitted' };
      return host.exec(argv, input);
    };
    const down = teardownBackend({ ...deps, exec: failing });
    await expect(down).rejects.toThrow(
      'left alone: clsact on eth0 is still there: tc qdisc del dev eth0 clsact: exit 2: RTNETLINK answers: Device or resource busy',
    );
    await expect(down).rejects.toThrow(
      'left alone: pins under /sys/fs/bpf/l4fleet-backend are still there: rm -rf /sys/fs/bpf/l4fleet-backend: exit 1: ' +
        'rm: cannot remove: Operation not permitted',
    );
    expect(host.tc.clsact).toBe(true);
    expect(host.paths.size).toBeGreaterThan(0);
    // Nothing holds a VIP: the ARP settings go back.
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
    expect((await readRecord(recordPath(deps.stateDir, NETNS)))?.clsactCreated).toBe(true);
    const again = await teardownBackend(deps);
    expect(again.leftAlone).toEqual([]);
    expect(again.changes.map((c) => c.what)).toEqual(['qdisc', 'program']);
    expect(host.tc.clsact).toBe(false);
    expect([...host.paths]).toEqual([]);
    expect(existsSync(deps.stateDir)).toBe(false);
  });

  test('backend host - a teardown whose tc filter del fails keeps the filter and its qdisc in the record; the next teardown removes both', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    await setupBackend(INPUT, deps);
    const failing: Exec = async (argv, input) =>
      argv.join(' ').startsWith('tc filter del')
        ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' }
        : host.exec(argv, input);
    await expect(teardownBackend({ ...deps, exec: failing })).rejects.toThrow(
      'left alone: eth0 ingress pref 1 still holds our filter: tc filter del dev eth0 ingress pref 1: exit 2',
    );
    expect(host.tc.clsact).toBe(true);
    const again = await teardownBackend(deps);
    expect(again.leftAlone).toEqual([]);
    expect(again.changes.map((c) => c.what)).toEqual(['filter', 'qdisc']);
    expect(host.tc).toEqual({ clsact: false, filter: undefined });
  });

  // bpftool batch stops at its first failing line and keeps the ones before: a re-run (systemctl reload) that
  // changes --nodes deletes the old node, then fails to add the new one. The rollback must put the old one back.
  test('backend host - a second setup whose map batch fails after its delete puts the maps back as they were', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const report = await setupBackend(INPUT, deps);
    const nodes4 = `${report.pinDir}/maps/l4fb_nodes4`;
    expect([...(host.maps.get(nodes4) ?? [])]).toEqual([['c6120001', '01']]);
    const before = new Map([...host.maps].map(([k, v]) => [k, new Map(v)]));
    const batches: string[] = [];
    const recording: Exec = async (argv, input) => {
      if (argv[1] === 'batch') batches.push(String(input));
      return host.exec(argv, input);
    };
    host.batch.failAt = 1;
    const setup = setupBackend({ ...INPUT, nodes: ['198.18.0.2'] }, { ...deps, exec: recording });
    await expect(setup).rejects.toThrow(/^bpftool batch file -: exit 255: .*Cannot allocate memory/);
    await expect(setup).rejects.not.toThrow('the rollback failed too');
    expect(batches).toHaveLength(2);
    expect(host.maps).toEqual(before);
    expect((await readRecord(report.recordPath))?.nodes).toEqual(['198.18.0.1']);
  });

  test('backend host - a second setup failing after its maps changed, with a record whose options no longer parse, keeps the record and says to tear down', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const report = await setupBackend(INPUT, deps);
    const old = await readRecord(report.recordPath);
    if (!old) throw new Error('no record');
    // An older setup's record the parser now refuses: its allow lists cannot be rebuilt for the undo.
    const unparsable = { ...old, nodes: ['198.18.0.1', '198.18.0.1'] };
    await writeRecord(report.recordPath, unparsable);
    host.batch.failAt = 1;
    const setup = setupBackend({ ...INPUT, nodes: ['198.18.0.2'] }, deps);
    await expect(setup).rejects.toThrow(/^bpftool batch file -: exit 255: .*; the rollback failed too \(/);
    await expect(setup).rejects.toThrow(
      `${report.pinDir}/maps: not restored: the previous setup's options in ${report.recordPath} no longer parse`,
    );
    await expect(setup).rejects.toThrow('run l4fleet backend teardown');
    expect((await readRecord(report.recordPath))?.incomplete).toBe(true);
  });

  test.each([
    ['stateDir', '--state-dir'],
    ['bpffs', '--bpffs'],
  ] as const)('backend host - a relative %s is refused naming %s, before anything changes', async (field, flag) => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const value = field === 'bpffs' ? 'sys/fs/bpf' : relative(process.cwd(), deps.stateDir);
    const bad = { ...deps, [field]: value };
    const message = `${flag} ${JSON.stringify(value)}: not an absolute path`;
    await expect(setupBackend(INPUT, bad)).rejects.toThrow(message);
    await expect(teardownBackend(bad)).rejects.toThrow(message);
    await expect(backendStatus(bad)).rejects.toThrow(message);
    expect(host.lo.size).toBe(0);
    expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
  });

  test('backend host - a trailing / on --bpffs and --state-dir is the same directory', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const report = await setupBackend(INPUT, { ...deps, bpffs: '/sys/fs/bpf/', stateDir: `${deps.stateDir}/` });
    expect(report.pinDir).toMatch(/^\/sys\/fs\/bpf\/l4fleet-backend\/[0-9a-f]{16}$/);
    expect(report.recordPath).toBe(recordPath(deps.stateDir, NETNS));
    expect((await readRecord(report.recordPath))?.bpffs).toBe('/sys/fs/bpf');
    expect((await setupBackend(INPUT, deps)).changes.filter((c) => c.what !== 'maps')).toEqual([]);
  });
});
