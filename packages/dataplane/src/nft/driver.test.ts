import { buildTable } from '@l4fleet/maglev';
import { ProcessError } from '@l4fleet/process';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import type { VipTable } from '../types.js';
import { createNftablesDataPlane } from './driver.js';
import { echoRule } from './echo.js';
import { baseChainHook, baseChainRules, forwardChainRules, type VipShape, vipRules } from './ruleset.js';

const logger = pino({ level: 'silent' });
const MAC = '02:00:00:00:00:01';

function vip(opts: Partial<VipTable> = {}): VipTable {
  const backends = [1, 2, 3].map((i) => ({ name: `b${i}`, address: `198.18.0.${i}`, port: 80 }));
  return {
    vip: { address: '198.18.2.1', port: 80, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, 13),
    ...opts,
  };
}

const missing = (what: string) => ({ code: 1, stdout: '', stderr: `Error: No such file or directory\n${what}` });

/**
 * A kernel as nft and ip answer for it: `table` is the netdev table's `nft -t` listing (undefined: no table), every
 * map and set listed empty (or with its `elems`), except the names in `absent` (No such file or directory); `sysctl`
 * answers forwarding.
 * Records every `nft -f` script; with `refuseNat`, a script for the NAT (inet) table is refused (recorded too).
 */
function fakeKernel(k: {
  table?: string;
  absent?: readonly string[];
  forwarding?: string;
  refuseNat?: boolean;
  elems?: Record<string, unknown[]>;
}): {
  exec: Exec;
  scripts: string[];
} {
  const scripts: string[] = [];
  const exec: Exec = async (argv, input) => {
    const line = argv.join(' ');
    if (line.startsWith('ip -o link show')) {
      return { code: 0, stdout: `2: eth0: <UP> mtu 1500 link/ether ${MAC} brd ff:ff:ff:ff:ff:ff`, stderr: '' };
    }
    if (line.startsWith('sysctl')) return { code: 0, stdout: `${k.forwarding ?? '1'}\n`, stderr: '' };
    if (line === 'nft -f -') {
      scripts.push(text(input));
      if (k.refuseNat && (scripts.at(-1) as string).includes('table inet')) {
        return { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
      }
      return { code: 0, stdout: '', stderr: '' };
    }
    if (line.startsWith('nft -t list table netdev')) return k.table === undefined ? missing(line) : ok(k.table);
    // verify()'s light read: every netdev table's skeleton (here the driver's alone, or none).
    if (line === 'nft -t list ruleset netdev') return ok(k.table ?? '');
    if (line.startsWith('nft -t list table inet')) return missing(line);
    const name = argv[argv.length - 1] as string;
    if (k.absent?.includes(name)) return missing(line);
    const elem = k.elems?.[name] ?? [];
    return ok(JSON.stringify({ nftables: [{ map: { elem }, set: { elem } }] }));
  };
  return { exec, scripts };
}

const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
/** An exec input as one string (the driver streams nft scripts as chunks). */
const text = (input: Parameters<Exec>[1]): string => (typeof input === 'string' ? input : [...(input ?? [])].join(''));

describe('nftables driver', () => {
  test('nftables driver - a layout-2 table (no overlay maps) is replaced once, not read map by map', async () => {
    const key = 'v_c6120201_tcp_80';
    const layout2 = [
      'table netdev l4fleet {',
      `\tcomment "l4fleet layout=2 dev=eth0 mac=${MAC} tcp=300 udp=30 flows=65536"`,
      '\tchain ingress {',
      '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;',
      '\t}',
      `\tchain ${key} {`,
      `\t\tcounter name "${key}" comment "l4fleet vip hash=5-tuple seed=7 size=13"`,
      '\t}',
      '}',
    ].join('\n');
    const kernel = fakeKernel({ table: layout2, absent: [`${key}_over`] });
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
    const result = await dp.apply([vip()]);
    expect(result.tableCreated).toBe(true);
    expect(kernel.scripts).toHaveLength(1);
    expect(kernel.scripts[0]).toContain('delete table netdev l4fleet');
    await dp.close();
  });

  test('nftables driver - a VIP moved from l2 to nat with forwarding off is refused before the netdev table changes', async () => {
    const kernel = fakeKernel({ forwarding: '0' });
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
    await dp.apply([vip()]);
    expect(kernel.scripts).toHaveLength(1);
    const err = await dp.apply([vip({ forwarding: 'nat' })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NAT_FORWARDING_DISABLED' });
    // The l2 VIP keeps being served: no transaction took it out of the netdev table.
    expect(kernel.scripts).toHaveLength(1);
    await dp.close();
  });

  // The NAT table checks the forwarding of the data plane's own interface: checked on another (a constant), a node
  // forwarding there but not on its VIPs' interface had its NAT VIPs applied, and every NATed packet dropped.
  test.each([
    ['eth1', 'net.ipv4.conf.eth1.forwarding'],
    ['eth0.100', 'net.ipv4.conf.eth0/100.forwarding'],
  ])('nftables driver - a NAT VIP on %s with %s=0 is refused naming that key', async (iface, key) => {
    const kernel = fakeKernel({});
    const exec: Exec = async (argv, input) => {
      const line = argv.join(' ');
      if (line === `sysctl -n ${key}`) return ok('0\n');
      const r = await kernel.exec(argv, input);
      return line.startsWith('ip -o link show') ? { ...r, stdout: r.stdout.replace('eth0', iface) } : r;
    };
    const dp = createNftablesDataPlane({ interface: iface, logger, exec, deltaWriter: 'nft' });
    const err = await dp.apply([vip({ forwarding: 'nat' })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NAT_FORWARDING_DISABLED' });
    expect((err as Error).message).toContain(`${key}=1`);
    expect(kernel.scripts.some((s) => s.includes('table inet'))).toBe(false);
    await dp.close();
  });

  const chainGone = (script: string): boolean => script.includes('delete chain netdev l4fleet v_c6120201_tcp_80');

  test('nftables driver - a VIP moved from l2 to nat whose NAT transaction is refused keeps its netdev chain', async () => {
    const kernel = fakeKernel({ refuseNat: true });
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
    await dp.apply([vip()]);
    const err = await dp.apply([vip({ forwarding: 'nat' })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NFT_FAILED' });
    // The l2 VIP keeps being served: no netdev transaction took its chain or its jump away, then or on a retry.
    await expect(dp.apply([vip({ forwarding: 'nat' })])).rejects.toMatchObject({ code: 'NFT_FAILED' });
    // verify() retries the failed apply's state (the latest), rather than restoring the one before it.
    await expect(dp.verify()).rejects.toMatchObject({ code: 'NFT_FAILED' });
    expect(kernel.scripts.some(chainGone)).toBe(false);
    expect(kernel.scripts.some((s) => s.includes('delete element netdev l4fleet vips4'))).toBe(false);
    await dp.close();
  });

  test('nftables driver - a VIP moved from l2 to nat leaves the netdev table after the NAT table holds it', async () => {
    const kernel = fakeKernel({});
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
    await dp.apply([vip()]);
    const result = await dp.apply([vip({ forwarding: 'nat' })]);
    const natAt = kernel.scripts.findIndex((s) => s.includes('table inet'));
    const goneAt = kernel.scripts.findIndex(chainGone);
    expect(natAt).toBeGreaterThan(0);
    expect(goneAt).toBeGreaterThan(natAt);
    expect(result.vips).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'removed' }),
        expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'added' }),
      ]),
    );
    // The next apply finds nothing to do in either table.
    const again = await dp.apply([vip({ forwarding: 'nat' })]);
    expect(again.transactions).toBe(0);
    await dp.close();
  });

  test('nftables driver - a VIP moved from nat to l2 enters the netdev table before it leaves the NAT table', async () => {
    const kernel = fakeKernel({});
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
    await dp.apply([vip({ forwarding: 'nat' })]);
    const before = kernel.scripts.length;
    await dp.apply([vip()]);
    const next = kernel.scripts.slice(before);
    expect(next[0]).toContain('add chain netdev l4fleet v_c6120201_tcp_80');
    expect(next[1]).toContain('table inet');
    await dp.close();
  });

  describe('a table read back with objects deleted by hand', () => {
    const key = 'v_c6120201_tcp_80';
    const table = [
      'table netdev l4fleet {',
      `\tcomment "l4fleet layout=3 dev=eth0 mac=${MAC} tcp=300 udp=30 flows=65536"`,
      '\tcounter drop_source {',
      '\t}',
      '\tmap echo4 {',
      '\t}',
      '\tmap echo6 {',
      '\t}',
      '\tchain echo_c6120201 {',
      // Its rule as written: an echo chain listed otherwise is written again (own-chains.ts).
      `\t\t${echoRule('c6120201', { iface: 'eth0', ifaceMac: MAC })}`,
      '\t}',
      `\tchain ${key} {`,
      `\t\tcounter name "${key}" comment "l4fleet vip hash=5-tuple seed=7 size=13 syn=table"`,
      '\t}',
      '}',
    ].join('\n');
    const jump = [{ concat: ['198.18.2.1', 'tcp', 80] }, { jump: { target: key } }];
    const echo = ['198.18.2.1', { goto: { target: 'echo_c6120201' } }];
    const repairs = [
      `add element netdev l4fleet vips4 { 198.18.2.1 . tcp . 80 : jump ${key} }`,
      'add element netdev l4fleet vipaddrs4 { 198.18.2.1 }',
      'add element netdev l4fleet echo4 { 198.18.2.1 : goto echo_c6120201 }',
    ];

    test('nftables driver - a VIP whose jump, address and echo elements are gone gets them back', async () => {
      const kernel = fakeKernel({ table });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      const result = await dp.apply([vip()]);
      expect(result.vips).toEqual([expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'updated' })]);
      for (const r of repairs) expect(kernel.scripts.join('\n')).toContain(r);
      // The echo chain is there already: only its map element is added (a second rule would be a duplicate).
      expect(kernel.scripts.join('\n')).not.toContain('add rule netdev l4fleet echo_c6120201');
      await dp.close();
    });

    test('nftables driver - a VIP removed whose jump element was deleted by hand is removed without it', async () => {
      const kernel = fakeKernel({ table, elems: { vipaddrs4: ['198.18.2.1'], echo4: [echo] } });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await dp.apply([]);
      const script = kernel.scripts.join('\n');
      expect(script).toContain(`delete chain netdev l4fleet ${key}`);
      // Deleting an element that is not there would fail the whole transaction.
      expect(script).not.toContain('delete element netdev l4fleet vips4');
      await dp.close();
    });

    // `: drop` to blackhole the VIP by hand: the element is there, with another verdict. Added on top of it, the jump was
    // refused (File exists), and with it the whole transaction, at every apply, verify and restart.
    const dropped = [{ concat: ['198.18.2.1', 'tcp', 80] }, { drop: null }];
    const deleteJump = 'delete element netdev l4fleet vips4 { 198.18.2.1 . tcp . 80 }';

    test('nftables driver - a VIP whose jump element was rewritten by hand gets it back, deleted first', async () => {
      const kernel = fakeKernel({ table, elems: { vips4: [dropped], vipaddrs4: ['198.18.2.1'], echo4: [echo] } });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      const result = await dp.apply([vip()]);
      expect(result.vips).toEqual([expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'updated' })]);
      const lines = kernel.scripts.join('\n').split('\n');
      const add = lines.indexOf(repairs[0] as string);
      expect(add).toBeGreaterThan(-1);
      expect(lines.indexOf(deleteJump)).toBeGreaterThan(-1);
      expect(lines.indexOf(deleteJump)).toBeLessThan(add);
      await dp.close();
    });

    test('nftables driver - a VIP removed whose jump element was rewritten by hand has it deleted by key', async () => {
      const kernel = fakeKernel({ table, elems: { vips4: [dropped], vipaddrs4: ['198.18.2.1'], echo4: [echo] } });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await dp.apply([]);
      const script = kernel.scripts.join('\n');
      // Left there, the element names the chain: the kernel refuses to delete it (the whole transaction).
      expect(script).toContain(deleteJump);
      expect(script).toContain(`delete chain netdev l4fleet ${key}`);
      await dp.close();
    });

    test('nftables driver - a new VIP whose key has an element of its own (added by hand) gets it replaced', async () => {
      const kernel = fakeKernel({ table: table.replace(/\tchain v_[\s\S]*?\t\}\n/, ''), elems: { vips4: [dropped] } });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await dp.apply([vip()]);
      const lines = kernel.scripts.join('\n').split('\n');
      expect(lines.indexOf(deleteJump)).toBeGreaterThan(-1);
      expect(lines.indexOf(deleteJump)).toBeLessThan(lines.indexOf(repairs[0] as string));
      await dp.close();
    });

    // Added by hand for a key and an address no VIP has: a restart's first apply deletes them, first in the transaction
    // (the vips4 one names the chain of a VIP that goes here), and leaves the desired VIP's own.
    test('nftables driver - a restart deletes vips4 and echo4 elements of keys and addresses no VIP has, first', async () => {
      const other = 'v_c6120202_tcp_80';
      const two = table.replace(`\tchain ${key} {`, `\tchain ${other} {\n\t}\n\tchain ${key} {`);
      const stray = [{ concat: ['198.18.2.9', 'udp', 53] }, { jump: { target: other } }];
      const strayEcho = ['198.18.2.9', { accept: null }];
      const otherJump = [{ concat: ['198.18.2.2', 'tcp', 80] }, { jump: { target: other } }];
      const elems = { vips4: [jump, otherJump, stray], vipaddrs4: ['198.18.2.1'], echo4: [echo, strayEcho] };
      const kernel = fakeKernel({ table: two, elems });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await dp.apply([vip()]);
      const lines = kernel.scripts.join('\n').split('\n');
      const deleteStray = lines.indexOf('delete element netdev l4fleet vips4 { 198.18.2.9 . udp . 53 }');
      expect(deleteStray).toBeGreaterThan(-1);
      expect(deleteStray).toBeLessThan(lines.indexOf(`delete chain netdev l4fleet ${other}`));
      expect(lines).toContain('delete element netdev l4fleet echo4 { 198.18.2.9 }');
      for (const r of repairs) expect(lines).not.toContain(r);
      expect(lines.join('\n')).not.toMatch(/198\.18\.2\.1 . tcp/);
      await dp.close();
    });

    test('nftables driver - a VIP whose elements are all there gets none of them again', async () => {
      const elems = { vips4: [jump], vipaddrs4: ['198.18.2.1'], echo4: [echo] };
      const kernel = fakeKernel({ table, elems });
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await dp.apply([vip()]);
      for (const r of repairs) expect(kernel.scripts.join('\n')).not.toContain(r);
      await dp.close();
    });
  });

  describe('verify', () => {
    const key = 'v_c6120201_tcp_80';
    const layout = { iface: 'eth0', ifaceMac: MAC };
    const shape: VipShape = { key, family: 4, protocol: 'tcp', hash: '5-tuple', seed: 7, size: 13 };
    const objects = [
      ...['vips4', 'vips6', 'backends4', 'backends6', 'echo4', 'echo6', 'macs', 'backend_counters'].map(
        (m) => `map ${m}`,
      ),
      ...['flows4_tcp', 'flows4_udp', 'flows6_tcp', 'flows6_udp', 'flows6b_tcp', 'flows6b_udp'].map((m) => `map ${m}`),
      ...['vipaddrs4', 'vipaddrs6', 'exact6_tcp', 'exact6_udp'].map((m) => `set ${m}`),
    ];
    /** Both the light read (ruleset) and the full read (table) list the table's skeleton. */
    const listsSkeleton = (argv: readonly string[]): boolean =>
      /^nft -t list (table|ruleset) netdev/.test(argv.join(' '));
    /** The full read: the table's own listing (the light read lists the ruleset) and then every map's elements. */
    const fullRead = (calls: readonly string[]): boolean => calls.some((c) => c.startsWith('nft -t list table netdev'));
    const skeleton = [
      'table netdev l4fleet {',
      `\tcomment "l4fleet layout=3 dev=eth0 mac=${MAC} tcp=300 udp=30 flows=65536"`,
      ...['drop_port', 'drop_no_backend', 'flow_table_full', 'drop_source', 'drop_fragment', 'icmp_echo'].flatMap(
        (c) => [`\tcounter ${c} {`, '\t}'],
      ),
      '\tchain ingress {',
      `\t\t${baseChainHook(layout)}`,
      ...baseChainRules().map((r) => `\t\t${r}`),
      '\t}',
      '\tchain forward {',
      ...forwardChainRules(layout).map((r) => `\t\t${r}`),
      '\t}',
      // Every map and set as nft -t lists them (no elements): the light read checks that each is there.
      ...[...objects, `map ${key}_slots`, `map ${key}_over`, `set ${key}_live`].flatMap((o) => [`\t${o} {`, '\t}']),
      '\tchain echo_c6120201 {',
      `\t\t${echoRule('c6120201', layout)}`,
      '\t}',
      `\tchain ${key} {`,
      // Its rules as written (the light read counts them; it finds the signature in the counter rule's comment).
      ...vipRules(shape, {
        ...layout,
        table: 'l4fleet',
        flowTimeoutTcpS: 300,
        flowTimeoutUdpS: 30,
        flowTableSize: 65_536,
      }).map((r) => `\t\t${r}`),
      '\t}',
      '}',
    ].join('\n');
    const jump = `add element netdev l4fleet vips4 { 198.18.2.1 . tcp . 80 : jump ${key} }`;

    /** fakeKernel whose maps and sets hold what the driver's `add element` lines wrote (JSON as nft -j lists it). */
    function statefulKernel(table = skeleton): ReturnType<typeof fakeKernel> & { elems: Record<string, unknown[]> } {
      const elems: Record<string, unknown[]> = {};
      const k = fakeKernel({ table, elems });
      const value = (x: string): unknown => {
        const verdict = /^(jump|goto) (\S+)$/.exec(x);
        if (verdict) return { [verdict[1] as string]: { target: verdict[2] } };
        if (/^\d+$/.test(x)) return Number(x);
        return x.replace(/^"(.*)"$/, '$1');
      };
      const key = (x: string): unknown => {
        const parts = x.split(' . ');
        return parts.length > 1 ? { concat: parts.map(value) } : value(x);
      };
      const exec: Exec = async (argv, input) => {
        const r = await k.exec(argv, input);
        if (argv.join(' ') !== 'nft -f -') return r;
        // The script as fakeKernel recorded it (a streamed input is read once).
        for (const line of (k.scripts.at(-1) as string).split('\n')) {
          const m = /^add element netdev l4fleet (\S+) \{ (.*) \}$/.exec(line);
          if (!m) continue;
          const list = (elems[m[1] as string] ??= []);
          for (const e of (m[2] as string).split(', ')) {
            const [k0, v] = e.split(' : ');
            list.push(v === undefined ? key(k0 as string) : [key(k0 as string), value(v)]);
          }
        }
        return r;
      };
      return { ...k, exec, elems };
    }

    test('nftables driver - verify before any apply reads and writes nothing', async () => {
      const kernel = statefulKernel();
      const calls: string[] = [];
      const exec: Exec = (argv, input) => {
        calls.push(argv.join(' '));
        return kernel.exec(argv, input);
      };
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      expect((await dp.verify()).transactions).toBe(0);
      expect(calls).toEqual([]);
      await dp.close();
    });

    /** statefulKernel, recording every command line after `from` is set (the apply before it is not of interest). */
    function recorded(kernel: ReturnType<typeof statefulKernel>): { exec: Exec; calls: string[] } {
      const calls: string[] = [];
      const exec: Exec = (argv, input) => {
        calls.push(argv.join(' '));
        return kernel.exec(argv, input);
      };
      return { exec, calls };
    }

    test('nftables driver - verify with the kernel as the last apply left it writes nothing and reads no slot map', async () => {
      const kernel = statefulKernel();
      const { exec, calls } = recorded(kernel);
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      const written = kernel.scripts.length;
      calls.length = 0;
      const result = await dp.verify();
      expect(result.transactions).toBe(0);
      expect(result.vips).toEqual([expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'unchanged' })]);
      expect(kernel.scripts.length).toBe(written);
      // The light read only: the skeleton of the netdev tables and the per-VIP routing maps, never a slot map.
      expect(fullRead(calls)).toBe(false);
      expect(calls).toContain('nft -t list ruleset netdev');
      expect(calls).toContain('nft -j list map netdev l4fleet vips4');
      expect(calls.filter((c) => /_(slots|over|live)$/.test(c))).toEqual([]);
      await dp.close();
    });

    test('nftables driver - verify finds a VIP slot map deleted by hand and reads the table whole', async () => {
      const kernel = statefulKernel();
      const gone = fakeKernel({ table: skeleton.replace(`\tmap ${key}_slots {\n\t}\n`, '') });
      let deleted = false;
      const { exec, calls } = recorded({
        ...kernel,
        exec: (argv, input) => (deleted && listsSkeleton(argv) ? gone : kernel).exec(argv, input),
      });
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      expect(gone).not.toBe(kernel);
      deleted = true;
      calls.length = 0;
      await dp.verify();
      expect(fullRead(calls)).toBe(true);
      // The VIP read as incomplete (state.ts): its live set listed, not the missing slot map (that listing fails), which
      // the repair adds again.
      expect(calls).toContain(`nft -j list set netdev l4fleet ${key}_live`);
      expect(calls).not.toContain(`nft -j list map netdev l4fleet ${key}_slots`);
      expect(kernel.scripts.at(-1)).toContain(`add map netdev l4fleet ${key}_slots { type mark : mark; }`);
      await dp.close();
    });

    // No rule names flows4_udp on a node with TCP VIPs only: it can be deleted by hand. Found missing by every verify
    // (a full read each time), never declared again, and the first UDP VIP was refused at every apply.
    test('nftables driver - verify declares again a flow map deleted by hand that no rule named, then finds nothing', async () => {
      const kernel = statefulKernel();
      const gone = fakeKernel({ table: skeleton.replace('\tmap flows4_udp {\n\t}\n', '') });
      let deleted = false;
      const { exec, calls } = recorded({
        ...kernel,
        exec: (argv, input) => (deleted && listsSkeleton(argv) ? gone : kernel).exec(argv, input),
      });
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      expect(gone).not.toBe(kernel);
      deleted = true;
      const written = kernel.scripts.length;
      const result = await dp.verify();
      expect(result.transactions).toBe(1);
      expect(kernel.scripts.slice(written).join('\n')).toMatch(
        /^add map netdev l4fleet flows4_udp \{ type ipv4_addr /m,
      );
      // In the kernel again: the next verify reads the skeleton only and writes nothing.
      deleted = false;
      calls.length = 0;
      expect((await dp.verify()).transactions).toBe(0);
      expect(fullRead(calls)).toBe(false);
      await dp.close();
    });

    // The signature is the counter rule's comment: a chain missing its slot-map lookup still has it. Verify and a
    // restart found nothing, and every new flow the overlay did not hold was dropped.
    test('nftables driver - verify rewrites a VIP chain one rule of which was deleted by hand, then finds nothing', async () => {
      const kernel = statefulKernel();
      const lookup = `\t\tmeta mark & 0x80000000 == 0 meta mark set meta mark map @${key}_slots\n`;
      expect(skeleton).toContain(lookup);
      const gone = fakeKernel({ table: skeleton.replace(lookup, '') });
      let written: number | undefined;
      // Listed without the rule from `written` on, until the driver writes the chain again (the listing right after
      // that write is the one verify compares with next).
      const deleted = (): boolean =>
        written !== undefined &&
        !kernel.scripts.slice(written).some((x) => x.includes(`flush chain netdev l4fleet ${key}`));
      const { exec, calls } = recorded({
        ...kernel,
        exec: (argv, input) => (deleted() && listsSkeleton(argv) ? gone : kernel).exec(argv, input),
      });
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      written = kernel.scripts.length;
      const result = await dp.verify();
      expect(fullRead(calls)).toBe(true);
      expect(result.transactions).toBe(1);
      expect(result.vips).toEqual([expect.objectContaining({ action: 'updated', rulesReplaced: true })]);
      const script = kernel.scripts.slice(written).join('\n');
      expect(script).toContain(`flush chain netdev l4fleet ${key}`);
      expect(script).toContain(`add rule netdev l4fleet ${key} ${lookup.trim()}`);
      expect(deleted()).toBe(false);
      calls.length = 0;
      expect((await dp.verify()).transactions).toBe(0);
      expect(fullRead(calls)).toBe(false);
      await dp.close();
    });

    test('nftables driver - verify writes back a VIP jump element deleted by hand since the last apply', async () => {
      const kernel = statefulKernel();
      const { exec, calls } = recorded(kernel);
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      // The apply of the same state plans against the driver's model: it does not see the element gone.
      kernel.elems.vips4 = [];
      expect((await dp.apply([vip()])).transactions).toBe(0);
      const written = kernel.scripts.length;
      calls.length = 0;
      const result = await dp.verify();
      // The light read found the element gone: the table was read whole and planned against, as a restart does.
      expect(fullRead(calls)).toBe(true);
      expect(result.transactions).toBe(1);
      expect(result.vips).toEqual([expect.objectContaining({ vip: '198.18.2.1:80/tcp', action: 'updated' })]);
      expect(kernel.scripts.slice(written).join('\n')).toContain(jump);
      expect((await dp.verify()).transactions).toBe(0);
      await dp.close();
    });

    // A light read that cannot be taken (nft timed out, or could not start) is no proof the kernel matches: the
    // agent counts the failed verify as a failed apply and retries it with an apply, which must then read the table
    // whole rather than plan against the model and call the node healthy without having checked anything.
    test('nftables driver - after a light read that timed out, the next apply reads the table whole and repairs it', async () => {
      const kernel = statefulKernel();
      let timeOut = false;
      const { exec, calls } = recorded({
        ...kernel,
        exec: async (argv, input) => {
          if (timeOut && argv.join(' ') === 'nft -t list ruleset netdev') {
            timeOut = false;
            throw new ProcessError('TIMEOUT', 'command "nft -t list ruleset netdev" did not finish within 30000 ms');
          }
          return kernel.exec(argv, input);
        },
      });
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      // Deleted by hand: only a read of the kernel finds it.
      kernel.elems.vips4 = [];
      timeOut = true;
      await expect(dp.verify()).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
      const written = kernel.scripts.length;
      calls.length = 0;
      const result = await dp.apply([vip()]);
      expect(fullRead(calls)).toBe(true);
      expect(result.transactions).toBe(1);
      expect(kernel.scripts.slice(written).join('\n')).toContain(jump);
      await dp.close();
    });

    const natVip = vip({ vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' }, forwarding: 'nat' });
    /** statefulKernel, recorded, whose command line `line` times out once `timeOut.on` is set (and only once). */
    function timingOut(kernel: ReturnType<typeof statefulKernel>, line: string) {
      const timeOut = { on: false };
      const r = recorded({
        ...kernel,
        exec: async (argv, input) => {
          if (timeOut.on && argv.join(' ') === line) {
            timeOut.on = false;
            throw new ProcessError('TIMEOUT', `command "${line}" did not finish within 30000 ms`);
          }
          return kernel.exec(argv, input);
        },
      });
      return { ...r, timeOut };
    }
    /** The NAT table was written again (the fake kernel never lists one, as after `nft delete table inet`). */
    const natWritten = (scripts: readonly string[]): boolean =>
      scripts.some((s) => s.includes('table inet l4fleet_nat'));

    // The NAT table's side of the test above: its listing timed out, so verify compared nothing; the retry must read
    // the NAT table (deleted by hand here) rather than plan against the last write and put the node back announced.
    test('nftables driver - after a NAT table listing that timed out, the next apply reads the NAT table and rewrites it', async () => {
      const kernel = statefulKernel();
      const { exec, calls, timeOut } = timingOut(kernel, 'nft -s list table inet l4fleet_nat');
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip(), natVip]);
      timeOut.on = true;
      await expect(dp.verify()).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
      const written = kernel.scripts.length;
      calls.length = 0;
      const result = await dp.apply([vip(), natVip]);
      expect(calls).toContain('nft -t list table inet l4fleet_nat');
      expect(result.transactions).toBe(1);
      expect(natWritten(kernel.scripts.slice(written))).toBe(true);
      await dp.close();
    });

    // A light read of the netdev table that timed out fails the verify before the NAT table's turn: the retry must
    // read the NAT table too, not only the netdev one.
    test('nftables driver - after a light read that timed out, the next apply reads the NAT table too', async () => {
      const kernel = statefulKernel();
      const { exec, calls, timeOut } = timingOut(kernel, 'nft -t list ruleset netdev');
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip(), natVip]);
      timeOut.on = true;
      await expect(dp.verify()).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
      const written = kernel.scripts.length;
      calls.length = 0;
      await dp.apply([vip(), natVip]);
      expect(calls).toContain('nft -t list table inet l4fleet_nat');
      expect(natWritten(kernel.scripts.slice(written))).toBe(true);
      await dp.close();
    });

    // The light read found drift, so the verify read the netdev table whole and wrote the repair; either of those failed
    // before the NAT table's turn: the retry must read the NAT table too, or a NAT table gone with `nft flush ruleset`
    // stays gone while the node is reported applied.
    test.each([
      ['its full read', 'nft -t list table netdev l4fleet'],
      ['its repair write', 'nft -f -'],
    ])(
      'nftables driver - after a verify whose netdev repair timed out in %s, the next apply reads the NAT table too',
      async (_, line) => {
        const kernel = statefulKernel();
        const { exec, calls, timeOut } = timingOut(kernel, line);
        const dp = createNftablesDataPlane({
          interface: 'eth0',
          logger,
          exec,
          deltaWriter: 'nft',
          foldDelayMs: 3_600_000,
        });
        await dp.apply([vip(), natVip]);
        // Netdev drift, which the light read finds.
        kernel.elems.vips4 = [];
        timeOut.on = true;
        await expect(dp.verify()).rejects.toBeDefined();
        expect(timeOut.on).toBe(false);
        const written = kernel.scripts.length;
        calls.length = 0;
        await dp.apply([vip(), natVip]);
        expect(calls).toContain('nft -t list table inet l4fleet_nat');
        expect(natWritten(kernel.scripts.slice(written))).toBe(true);
        await dp.close();
      },
    );

    test('nftables driver - verify writes the ingress chain again when it was flushed by hand', async () => {
      const kernel = statefulKernel();
      const flushed = fakeKernel({ table: skeleton.replace(/\tchain ingress \{\n(\t\t.*\n)*/, '\tchain ingress {\n') });
      let flush = false;
      const exec: Exec = (argv, input) => (flush && listsSkeleton(argv) ? flushed : kernel).exec(argv, input);
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger,
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      await dp.apply([vip()]);
      flush = true;
      const written = kernel.scripts.length;
      const result = await dp.verify();
      expect(result.transactions).toBe(1);
      const script = kernel.scripts.slice(written).join('\n');
      expect(script).toContain('flush chain netdev l4fleet ingress');
      for (const r of baseChainRules()) expect(script).toContain(`add rule netdev l4fleet ingress ${r}`);
      expect(script).not.toContain('flush chain netdev l4fleet forward');
      await dp.close();
    });

    test('nftables driver - verify recreates the netdev table deleted by hand', async () => {
      const kernel = fakeKernel({ table: skeleton });
      const none = fakeKernel({});
      let deleted = false;
      const exec: Exec = (argv, input) => (deleted && listsSkeleton(argv) ? none : kernel).exec(argv, input);
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      await dp.apply([vip()]);
      deleted = true;
      const written = kernel.scripts.length;
      const result = await dp.verify();
      expect(result.tableCreated).toBe(true);
      expect(result.transactions).toBe(1);
      expect(kernel.scripts.slice(written).join('\n')).toContain(`add map netdev l4fleet ${key}_slots`);
      await dp.close();
    });

    /** A driver on `exec` whose warnings land in `warned` (verify logs what its light read found as `driftFound`). */
    function warning(exec: Exec): { dp: ReturnType<typeof createNftablesDataPlane>; drift: () => string[] } {
      const warned: { event?: string; drift?: string }[] = [];
      const dp = createNftablesDataPlane({
        interface: 'eth0',
        logger: pino({ level: 'warn' }, { write: (line: string) => warned.push(JSON.parse(line)) }),
        exec,
        deltaWriter: 'nft',
        foldDelayMs: 3_600_000,
      });
      const drift = (): string[] => warned.filter((w) => w.event === 'driftFound').map((w) => w.drift as string);
      return { dp, drift };
    }

    // The element is there with another verdict: the light read said "missing", sending whoever read it after a
    // deleted element that was not deleted.
    test.each([
      ['drop', { drop: null }, 'drop'],
      ['a jump to another chain', { jump: { target: 'echo_c6120201' } }, 'jump echo_c6120201'],
    ])(
      'nftables driver - verify names the verdict a VIP jump element was rewritten to by hand (%s)',
      async (_, v, text) => {
        const kernel = statefulKernel();
        const { dp, drift } = warning(kernel.exec);
        await dp.apply([vip()]);
        kernel.elems.vips4 = [[{ concat: ['198.18.2.1', 'tcp', 80] }, v]];
        const written = kernel.scripts.length;
        expect((await dp.verify()).transactions).toBe(1);
        expect(drift()).toEqual([`the vips4 element of ${key} is \`${text}\`, written \`jump ${key}\``]);
        const lines = kernel.scripts.slice(written).join('\n').split('\n');
        expect(lines.indexOf('delete element netdev l4fleet vips4 { 198.18.2.1 . tcp . 80 }')).toBeGreaterThan(-1);
        expect(lines.indexOf(jump)).toBeGreaterThan(
          lines.indexOf('delete element netdev l4fleet vips4 { 198.18.2.1 . tcp . 80 }'),
        );
        await dp.close();
      },
    );

    // Added by hand for keys and addresses no VIP has: the light read did not look, the full read kept them, and they
    // routed packets (to a VIP's chain, or `accept`/`drop` them) with the table reported clean.
    test.each([
      [
        'a vips4 element of a key no VIP has, jumping to a VIP chain',
        'vips4',
        [{ concat: ['198.18.2.9', 'udp', 53] }, { jump: { target: key } }],
        'the vips4 element of v_c6120209_udp_53 (`jump v_c6120201_tcp_80`) is not written',
        'delete element netdev l4fleet vips4 { 198.18.2.9 . udp . 53 }',
      ],
      [
        'a vips6 element of a key no VIP has, `accept`',
        'vips6',
        [{ concat: ['2001:db8::9', 'tcp', 443] }, { accept: null }],
        'the vips6 element of v_20010db8000000000000000000000009_tcp_443 (`accept`) is not written',
        'delete element netdev l4fleet vips6 { 2001:db8::9 . tcp . 443 }',
      ],
      [
        "an echo4 element of an address no VIP has, going to a VIP address's echo chain",
        'echo4',
        ['198.18.2.9', { goto: { target: 'echo_c6120201' } }],
        'the echo4 element of 198.18.2.9 (`goto echo_c6120201`) is not written',
        'delete element netdev l4fleet echo4 { 198.18.2.9 }',
      ],
    ])(
      "nftables driver - verify finds %s and deletes it, the VIP's own elements kept",
      async (_, map, stray, found, deleted) => {
        const kernel = statefulKernel();
        const { dp, drift } = warning(kernel.exec);
        await dp.apply([vip()]);
        const own = [...(kernel.elems[map] ?? [])];
        kernel.elems[map] = [...own, stray];
        const written = kernel.scripts.length;
        const result = await dp.verify();
        expect(drift()).toEqual([found]);
        expect(result.transactions).toBe(1);
        const script = kernel.scripts.slice(written).join('\n');
        expect(script.split('\n')).toContain(deleted);
        // Nothing of the VIP's own: its jump, address and echo element stay.
        expect(script).not.toMatch(/198\.18\.2\.1\b/);
        kernel.elems[map] = own;
        expect((await dp.verify()).transactions).toBe(0);
        await dp.close();
      },
    );

    test('nftables driver - verify names the verdict an echo element was rewritten to, and writes it again (deleted first)', async () => {
      const kernel = statefulKernel();
      const { dp, drift } = warning(kernel.exec);
      await dp.apply([vip()]);
      kernel.elems.echo4 = [['198.18.2.1', { drop: null }]];
      const written = kernel.scripts.length;
      expect((await dp.verify()).transactions).toBe(1);
      expect(drift()).toEqual(['the echo4 element of 198.18.2.1 is `drop`, written `goto echo_c6120201`']);
      const lines = kernel.scripts.slice(written).join('\n').split('\n');
      const del = lines.indexOf('delete element netdev l4fleet echo4 { 198.18.2.1 }');
      expect(del).toBeGreaterThan(-1);
      expect(lines.indexOf('add element netdev l4fleet echo4 { 198.18.2.1 : goto echo_c6120201 }')).toBeGreaterThan(
        del,
      );
      expect(lines.join('\n')).not.toContain('add rule netdev l4fleet echo_c6120201');
      await dp.close();
    });

    // `nft replace rule`: the chain keeps its number of rules and its signature (the counter rule's comment), and every
    // new flow the overlay did not hold was dropped with verify and a restart finding nothing.
    const lookup = `meta mark & 0x80000000 == 0 meta mark set meta mark map @${key}_slots`;
    const replaced = skeleton.replace(`\t\t${lookup}\n`, '\t\tcounter drop\n');

    test('nftables driver - verify finds a VIP chain rule replaced by hand (count and signature kept) and writes the chain again', async () => {
      const kernel = statefulKernel();
      expect(replaced).not.toBe(skeleton);
      const edited = fakeKernel({ table: replaced });
      let from: number | undefined;
      // Listed replaced from `from` on, until the driver writes the chain again.
      const isReplaced = (): boolean =>
        from !== undefined && !kernel.scripts.slice(from).some((x) => x.includes(`flush chain netdev l4fleet ${key}`));
      const { exec, calls } = recorded({
        ...kernel,
        exec: (argv, input) => (isReplaced() && listsSkeleton(argv) ? edited : kernel).exec(argv, input),
      });
      const { dp, drift } = warning(exec);
      await dp.apply([vip()]);
      expect((await dp.verify()).transactions).toBe(0);
      from = kernel.scripts.length;
      const result = await dp.verify();
      expect(drift()).toEqual([`chain ${key}: rule 5 is "counter drop", written "${lookup}"`]);
      expect(fullRead(calls)).toBe(true);
      expect(result.transactions).toBe(1);
      expect(result.vips).toEqual([expect.objectContaining({ action: 'updated', rulesReplaced: true })]);
      const script = kernel.scripts.slice(from).join('\n');
      expect(script).toContain(`flush chain netdev l4fleet ${key}`);
      expect(script).toContain(`add rule netdev l4fleet ${key} ${lookup}`);
      calls.length = 0;
      expect((await dp.verify()).transactions).toBe(0);
      expect(fullRead(calls)).toBe(false);
      expect(drift()).toHaveLength(1);
      await dp.close();
    });

    test('nftables driver - a restart over a VIP chain rule replaced by hand writes the chain again; over one as written, not', async () => {
      // Its counter listed too: a VIP read without it is read as one without rules (leftovers.ts findMissing).
      const counted = skeleton.replace('\tchain ingress {', `\tcounter ${key} {\n\t}\n\tchain ingress {`);
      const kernel = statefulKernel(counted);
      const first = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      await first.apply([vip()]);
      await first.close();
      const again = createNftablesDataPlane({ interface: 'eth0', logger, exec: kernel.exec, deltaWriter: 'nft' });
      const same = await again.apply([vip()]);
      expect(same.transactions).toBe(0);
      expect(same.vips.map((v) => v.rulesReplaced)).toEqual([false]);
      await again.close();
      const edited = fakeKernel({ table: counted.replace(`\t\t${lookup}\n`, '\t\tcounter drop\n') });
      const exec: Exec = (argv, input) => (listsSkeleton(argv) ? edited : kernel).exec(argv, input);
      const restarted = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      const written = kernel.scripts.length;
      const result = await restarted.apply([vip()]);
      expect(result.vips.map((v) => v.rulesReplaced)).toEqual([true]);
      expect(kernel.scripts.slice(written).join('\n')).toContain(`add rule netdev l4fleet ${key} ${lookup}`);
      await restarted.close();
    });

    test('nftables driver - verify after close is refused', async () => {
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: fakeKernel({}).exec, deltaWriter: 'nft' });
      await dp.close();
      await expect(dp.verify()).rejects.toMatchObject({ code: 'CLOSED' });
    });
  });

  describe('a script larger than a JS string', () => {
    /** Default-size tables (65,537 slots) of one 8-member pool: ~1.3 M characters of nft script each. */
    const VIPS = 450;
    const members = Array.from({ length: 8 }, (_x, i) => ({ name: `m${i}`, address: `198.18.0.${i + 1}`, port: 80 }));
    const slots = buildTable(members, 65_537);
    const fleet: VipTable[] = Array.from({ length: VIPS }, (_x, i) => ({
      vip: { address: `198.18.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 7,
      backends: members,
      slots,
    }));

    test('nftables driver - 450 default-size VIPs in one apply are streamed to nft -f in statement-sized chunks', async () => {
      let chars = 0;
      let chunks = 0;
      let largest = 0;
      const kernel = fakeKernel({});
      const exec: Exec = async (argv, input) => {
        if (argv.join(' ') !== 'nft -f -' || typeof input === 'string') return kernel.exec(argv, input);
        // Counted, not kept: joined, the script would not fit in one string.
        for (const c of input ?? []) {
          chars += c.length;
          chunks += 1;
          largest = Math.max(largest, c.length);
        }
        return ok('');
      };
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      const result = await dp.apply(fleet);
      expect(result.tableCreated).toBe(true);
      expect(result.slotsChanged).toBe(VIPS * 65_537);
      // V8's longest string is 2^29 - 24 characters.
      expect(chars).toBeGreaterThan(2 ** 29);
      expect(chunks).toBeGreaterThan(VIPS * 32);
      // One statement of at most 2,048 elements: far below one VIP's ~1.3 M characters.
      expect(largest).toBeLessThan(64 * 1024);
      await dp.close();
    }, 120_000);
  });

  describe('counters while the netdev table is absent', () => {
    /** A kernel without l4fleet's tables: every nft listing answers No such file or directory. */
    const noTables: Exec = async (argv) => missing(argv.join(' '));

    // The agent reads counters from its start, and the table is written by the first apply (after etcd answers):
    // until then an absent table is the expected state, not an unreadable one (l4fleet_dataplane_counters_up 0).
    test('nftables driver - before any apply, an absent table reads as empty counters', async () => {
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: noTables, deltaWriter: 'nft' });
      const zero = { packets: 0, bytes: 0 };
      expect(await dp.counters()).toEqual({
        vips: [],
        backends: [],
        drops: { port: zero, 'no-backend': zero, source: zero, fragment: zero },
        flowTable: { entries: 0, fullPackets: 0 },
        icmp: { echoReplied: zero },
      });
      await dp.close();
    });

    // `nft flush ruleset` after an apply took the forwarding away: that is what L4fleetDataPlaneCountersUnreadable
    // is for.
    test('nftables driver - after an apply, an absent table is unreadable', async () => {
      const kernel = fakeKernel({});
      let flushed = false;
      const exec: Exec = (argv, input) =>
        flushed && argv[0] === 'nft' ? noTables(argv, input) : kernel.exec(argv, input);
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      await dp.apply([vip()]);
      flushed = true;
      await expect(dp.counters()).rejects.toMatchObject({
        name: 'DataPlaneError',
        code: 'NFT_STATE_UNREADABLE',
        message: expect.stringContaining('No such file or directory'),
      });
      await dp.close();
    });
  });

  describe('counters while the NAT table is absent', () => {
    const natVip = (): VipTable =>
      vip({ forwarding: 'nat', vip: { address: '198.18.2.9', port: 443, protocol: 'tcp' } });
    const zero = { packets: 0, bytes: 0 };
    /**
     * The fake kernel, except that once `gone.nat` is set the NAT table is not there (`nft delete table inet`), and
     * while `gone.lightRead` is set verify's light read times out.
     */
    function natDeletable(): { exec: Exec; gone: { nat: boolean; lightRead: boolean } } {
      const kernel = fakeKernel({});
      const gone = { nat: false, lightRead: false };
      const exec: Exec = (argv, input) => {
        const line = argv.join(' ');
        if (gone.lightRead && line === 'nft -t list ruleset netdev')
          return Promise.reject(new ProcessError('TIMEOUT', `command "${line}" did not finish within 30000 ms`));
        return gone.nat && line.includes('table inet l4fleet_nat')
          ? Promise.resolve(missing(line))
          : kernel.exec(argv, input);
      };
      return { exec, gone };
    }

    // Deleted by hand after an apply wrote it: the NAT VIPs are no longer forwarded, which
    // L4fleetDataPlaneCountersUnreadable is for (as for the netdev table), not zero connections.
    test('nftables driver - after an apply wrote the NAT table, a NAT table deleted by hand is unreadable, named', async () => {
      const { exec, gone } = natDeletable();
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      await dp.apply([vip(), natVip()]);
      expect((await dp.counters()).drops.port).toEqual(zero);
      gone.nat = true;
      await expect(dp.counters()).rejects.toMatchObject({
        name: 'DataPlaneError',
        code: 'NFT_STATE_UNREADABLE',
        message: expect.stringMatching(/inet l4fleet_nat.*No such file or directory/s),
      });
      await dp.close();
    });

    test.each([
      ['no apply yet', [] as (() => VipTable)[][]],
      ['applies of l2 VIPs only', [[vip]]],
      ['an apply that removed the last NAT VIP', [[vip, natVip], [vip]]],
    ])('nftables driver - after %s, an absent NAT table reads as no NAT counters', async (_what, applies) => {
      const { exec, gone } = natDeletable();
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      for (const a of applies) await dp.apply(a.map((f) => f()));
      gone.nat = true;
      const c = await dp.counters();
      expect(c.vips.map((v) => v.vip)).toEqual([]);
      expect(c.drops).toEqual({ port: zero, 'no-backend': zero, source: zero, fragment: zero });
      await dp.close();
    });

    // A verify whose light read failed drops the NAT model too (nat.forget): counters() then asks nft about a NAT table
    // the last apply removed on purpose, and must not call its absence unreadable (a false
    // L4fleetDataPlaneCountersUnreadable on every scrape until the agent's next apply).
    test('nftables driver - after an apply that removed the last NAT VIP and a verify that failed, an absent NAT table reads as no NAT counters', async () => {
      const { exec, gone } = natDeletable();
      const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
      await dp.apply([vip(), natVip()]);
      await dp.apply([vip()]);
      gone.nat = true;
      gone.lightRead = true;
      await expect(dp.verify()).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
      gone.lightRead = false;
      const c = await dp.counters();
      expect(c.vips.map((v) => v.vip)).toEqual([]);
      expect(c.drops).toEqual({ port: zero, 'no-backend': zero, source: zero, fragment: zero });
      await dp.close();
    });
  });

  // A refusal's kernel text names nft objects (`v_<hex>_tcp_80_over`), not the VIP the operator configured.
  test('nftables driver - a transaction nft refuses names the VIPs of the objects in its text, the kernel text kept', async () => {
    const kernel = fakeKernel({});
    const stderr = [
      '/dev/stdin:40:1-57: Error: Could not process rule: No such file or directory',
      'delete element netdev l4fleet v_c6120201_tcp_80_over { 5 }',
      '^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
      '/dev/stdin:41:1-60: Error: Could not process rule: File exists',
      'add element netdev l4fleet vips6 { 2001:db8::7 . udp . 53 : jump v_20010db8000000000000000000000007_udp_53 }',
    ].join('\n');
    const exec: Exec = async (argv, input) => {
      if (argv.join(' ') === 'nft -f -') return { code: 1, stdout: '', stderr };
      return kernel.exec(argv, input);
    };
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
    const err = (await dp.apply([vip()]).catch((e: unknown) => e)) as DataPlaneError;
    expect(err).toMatchObject({ name: 'DataPlaneError', code: 'NFT_FAILED' });
    expect(err.message).toContain('Could not process rule: No such file or directory');
    expect(err.message).toContain(
      ' (vip 198.18.2.1:80/tcp: v_c6120201_tcp_80_over; vip [2001:db8::7]:53/udp: v_20010db8000000000000000000000007_udp_53)',
    );
    expect(err.cause).toBe(stderr);
    await dp.close();
  });

  test('nftables driver - a write that fails outside nft names the VIP and slot counts', async () => {
    const kernel = fakeKernel({});
    const exec: Exec = async (argv, input) => {
      if (argv.join(' ') === 'nft -f -') throw new RangeError('Invalid string length');
      return kernel.exec(argv, input);
    };
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec, deltaWriter: 'nft' });
    const err = await dp.apply([vip()]).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'DataPlaneError',
      code: 'NFT_FAILED',
      message: 'nft -f: writing 1 VIP (13 table slots changed) failed: RangeError: Invalid string length',
    });
    expect((err as Error).cause).toBeInstanceOf(RangeError);
    await dp.close();
  });
});
