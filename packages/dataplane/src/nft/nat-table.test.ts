import { buildTable } from '@l4fleet/maglev';
import { ProcessError } from '@l4fleet/process';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { natBaseListing } from './nat-base.test-helper.js';
import { createNatTable } from './nat-table.js';

const backends = [1, 2].map((i) => ({ name: `b${i}`, address: `198.18.0.${i}`, port: 8080 }));
const vipTable: VipTable = {
  vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 7,
  backends,
  slots: buildTable(backends, 13),
  forwarding: 'nat',
};
const vips = validateDesired([vipTable], { requireSamePort: false, forwarding: ['nat'], driver: 'nftables' });

const KEY = 'v_c6120202_tcp_80';
/** `nft -s list table` of the table `vips` is written to (its base part, and the parts missingFromListing checks). */
const written = (base: { without?: string[]; flushed?: string[] } = {}): string =>
  [
    'table inet l4fleet_nat {',
    natBaseListing({
      ...base,
      elements: {
        natvips4: `198.18.2.2 . tcp . 80 : jump ${KEY}`,
        nataddrs4: '198.18.2.2',
        natserved4: '198.18.2.2 . tcp . 80',
      },
    }).trimEnd(),
    `\tmap ${KEY}_slots {`,
    '\t\ttype mark : ipv4_addr . inet_service',
    '\t\telements = { 0x00000000 : 198.18.0.2 . 8080,',
    '\t\t\t     0x00000001 : 198.18.0.1 . 8080 }',
    '\t}',
    `\tchain ${KEY} {`,
    '\t}',
    '}',
    '',
  ].join('\n');
const WRITTEN = written();

/**
 * The NAT table as nft answers for it: `listing` is what `nft -s list table inet` prints (undefined: the table is
 * gone), and `-t list table` too (elements and all), and `-s list map|set` its block; scripts are recorded; every command line is in `calls`; a command line in `timeOut` times out once.
 */
function kernel(): {
  exec: Exec;
  scripts: string[];
  calls: string[];
  listing: { text: string | undefined };
  timeOut: Set<string>;
  /** The listing after the next write, when not WRITTEN (a hand edit the write did not repair). */
  nextListing: { text: string | undefined };
} {
  const scripts: string[] = [];
  const calls: string[] = [];
  const listing: { text: string | undefined } = { text: WRITTEN };
  const timeOut = new Set<string>();
  const nextListing: { text: string | undefined } = { text: undefined };
  const gone = { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
  const exec: Exec = async (argv, input) => {
    const line = argv.join(' ');
    calls.push(line);
    if (timeOut.delete(line)) throw new ProcessError('TIMEOUT', `command "${line}" did not finish within 30000 ms`);
    if (line === 'nft -f -') {
      scripts.push(String(input));
      listing.text = nextListing.text ?? WRITTEN;
      nextListing.text = undefined;
      return { code: 0, stdout: '', stderr: '' };
    }
    if (line.startsWith('nft -s list table inet') || line.startsWith('nft -t list table inet'))
      return listing.text === undefined ? gone : { code: 0, stdout: listing.text, stderr: '' };
    // A set or map of the listing, as `nft -s list map inet T name` prints it.
    const one = /^nft -s list (?:map|set) inet (\S+) (\S+)$/.exec(line);
    const lines = listing.text?.split('\n') ?? [];
    const start = lines.findIndex((l) => new RegExp(`^\\t(?:map|set) ${one?.[2]} \\{$`).test(l));
    if (one === null || start < 0) return gone;
    const block = lines.slice(start, lines.indexOf('\t}', start) + 1);
    return { code: 0, stdout: [`table inet ${one[1]} {`, ...block, '}', ''].join('\n'), stderr: '' };
  };
  return { exec, scripts, calls, listing, timeOut, nextListing };
}

describe('nat table verify', () => {
  test('nat table - verify with the table as the last apply left it writes nothing', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    expect((await nat.apply(vips)).transactions).toBe(1);
    const r = await nat.verify(vips);
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['unchanged']);
    expect(k.scripts).toHaveLength(1);
  });

  test('nat table - verify rewrites a table that differs from the listing after the last apply', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    k.listing.text = 'table inet l4fleet_nat { chain flushed { } }';
    const r = await nat.verify(vips);
    expect(r.transactions).toBe(1);
    expect(k.scripts).toHaveLength(2);
    // The listing after the repair is the new reference: nothing more to do.
    expect((await nat.verify(vips)).transactions).toBe(0);
  });

  // A write planned from a model older than a hand edit (the natvips element deleted, then a pool change) leaves the
  // edit in place: its listing, taken as verify's reference, made the edit the norm and verify wrote nothing again.
  test('nat table - a listing after a write that lacks an element of the model is no reference: verify reads and rewrites', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    k.nextListing.text = WRITTEN.replace(`198.18.2.2 . tcp . 80 : jump ${KEY}`, '');
    k.listing.text = k.nextListing.text;
    await nat.verify(vips);
    k.calls.length = 0;
    const r = await nat.verify(vips);
    expect(k.calls).toContain('nft -t list table inet l4fleet_nat');
    expect(r.transactions).toBe(1);
    expect(k.scripts.at(-1)).toContain(`add element inet l4fleet_nat natvips4 { 198.18.2.2 . tcp . 80 : jump ${KEY} }`);
    // Written whole, the listing is complete: the reference again.
    expect((await nat.verify(vips)).transactions).toBe(0);
  });

  // `nft delete chain inet T postrouting` (masquerade) and `nft flush chain inet T prerouting` (the vmap): verify saw
  // the listing change, rewrote the VIPs only and kept the broken listing as its reference (transactions 1, then 0):
  // every NAT VIP stayed without service while driftRepaired was logged.
  test('nat table - a base chain deleted or flushed by hand is written again whole by verify', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    k.listing.text = written({ without: ['postrouting'], flushed: ['prerouting'] });
    const r = await nat.verify(vips);
    expect(r.transactions).toBe(1);
    const script = k.scripts.at(-1) as string;
    expect(script).toContain('add chain inet l4fleet_nat postrouting { type nat hook postrouting priority srcnat;');
    expect(script).toContain('add rule inet l4fleet_nat postrouting ct status dnat ct original ip daddr @nataddrs4');
    expect(script).toContain('flush chain inet l4fleet_nat prerouting');
    expect(script).toContain('add rule inet l4fleet_nat prerouting ip daddr . meta l4proto . th dport vmap @natvips4');
    expect(script).not.toContain('chain inet l4fleet_nat forward');
    // Repaired: the listing is the reference again.
    expect((await nat.verify(vips)).transactions).toBe(0);
  });

  test('nat table - a listing after a write that lacks a base chain is no reference: verify reads and rewrites', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    // Deleted by hand after the last read: an apply planned from the model does not know it.
    k.nextListing.text = written({ without: ['postrouting'] });
    const changed = validateDesired(
      [{ ...vipTable, backends: backends.slice(0, 1), slots: buildTable(backends.slice(0, 1), 13) }],
      { requireSamePort: false, forwarding: ['nat'], driver: 'nftables' },
    );
    expect((await nat.apply(changed)).transactions).toBe(1);
    k.calls.length = 0;
    const r = await nat.verify(changed);
    expect(k.calls).toContain('nft -t list table inet l4fleet_nat');
    expect(r.transactions).toBe(1);
    expect(k.scripts.at(-1)).toContain('add chain inet l4fleet_nat postrouting');
    expect((await nat.verify(changed)).transactions).toBe(0);
  });

  // A verify that could not list the table compared nothing: the agent fails it and retries with an apply, which must
  // read the table rather than plan against the last write and report success with the table still gone.
  test('nat table - after a verify whose listing timed out, the next apply reads the table and writes it again', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    // Deleted by hand (`nft delete table inet l4fleet_nat`).
    k.listing.text = undefined;
    k.timeOut.add('nft -s list table inet l4fleet_nat');
    await expect(nat.verify(vips)).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
    k.calls.length = 0;
    const r = await nat.apply(vips);
    expect(k.calls).toContain('nft -t list table inet l4fleet_nat');
    expect(r.transactions).toBe(1);
    expect(r.tableCreated).toBe(true);
    expect(k.scripts).toHaveLength(2);
  });

  test('nat table - after a write that timed out, the next apply reads the table again', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    k.timeOut.add('nft -f -');
    await expect(nat.apply([])).rejects.toMatchObject({ name: 'ProcessError', code: 'TIMEOUT' });
    // nft was killed after it had committed the removal: the table is gone.
    k.listing.text = undefined;
    k.calls.length = 0;
    const r = await nat.apply(vips);
    expect(k.calls).toContain('nft -t list table inet l4fleet_nat');
    expect(r.transactions).toBe(1);
  });
});

// `nft add element inet T nataddrs4 { 198.18.2.9 }` (every packet to that address dropped by the node), or a natvips,
// natserved or natsrc key no VIP has: verify saw the listing change, rewrote the VIPs only, and took the listing with
// the element as its reference (transactions 1, then 0); a restarted driver left it too.
describe('nat table - elements added by hand for what no VIP has', () => {
  const STRAYS: [string, string, string, string][] = [
    ['nataddrs4', '198.18.2.2', '198.18.2.2, 198.18.2.9', 'the nataddrs4 element of 198.18.2.9 is not written'],
    [
      'natvips4',
      `198.18.2.2 . tcp . 80 : jump ${KEY}`,
      `198.18.2.2 . tcp . 80 : jump ${KEY}, 198.18.2.9 . udp . 53 : accept`,
      'the natvips4 element of 198.18.2.9 . udp . 53 (`accept`) is not written',
    ],
  ];
  const withStray = (was: string, now: string): string =>
    WRITTEN.replace(`elements = { ${was} }`, `elements = { ${now} }`);
  const deletion = (set: string, message: string): string =>
    `delete element inet l4fleet_nat ${set} { ${/ of (.*?)(?: \(`|\s+is not)/.exec(message)?.[1]} }`;
  const create = (k: ReturnType<typeof kernel>, warned: { msg: string; differences?: string[] }[] = []) =>
    createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'warn' }, { write: (line: string) => warned.push(JSON.parse(line)) }),
      interface: 'eth0',
    });

  test.each(STRAYS)(
    'nat table - a %s element added by hand: verify names it, deletes it, then finds nothing',
    async (set, was, now, message) => {
      const k = kernel();
      const warned: { msg: string; differences?: string[] }[] = [];
      const nat = create(k, warned);
      await nat.apply(vips);
      k.listing.text = withStray(was, now);
      expect(k.listing.text).not.toBe(WRITTEN);
      expect((await nat.verify(vips)).transactions).toBe(1);
      expect(warned.find((w) => /differs from the last apply/.test(w.msg))?.differences).toEqual([message]);
      const script = k.scripts.at(-1) as string;
      expect(script).toContain(deletion(set, message));
      // The VIP's own elements are not touched.
      expect(script).not.toMatch(/element inet l4fleet_nat \S+ \{ 198\.18\.2\.2[ }]/);
      expect((await nat.verify(vips)).transactions).toBe(0);
    },
  );

  test.each(STRAYS)(
    'nat table - a %s element added while the driver was down: a restart deletes it',
    async (set, was, now, message) => {
      const k = kernel();
      k.listing.text = withStray(was, now);
      const nat = create(k);
      expect((await nat.apply(vips)).transactions).toBe(1);
      expect(k.scripts.at(-1)).toContain(deletion(set, message));
      expect((await nat.verify(vips)).transactions).toBe(0);
    },
  );

  // A table holding no VIP chain (its NAT VIPs deleted by hand) was read as names only: its elements were not listed.
  test('nat table - a table without VIP chains has its elements read: one no VIP has is deleted', async () => {
    const k = kernel();
    k.listing.text = `table inet l4fleet_nat {\n${natBaseListing({ elements: { nataddrs4: '198.18.2.9' } })}}\n`;
    const nat = create(k);
    expect((await nat.apply(vips)).transactions).toBe(1);
    expect(k.scripts.at(-1)).toContain('delete element inet l4fleet_nat nataddrs4 { 198.18.2.9 }');
  });

  // Added after the last read, then a write planned from the model (a pool change): its listing, as verify's reference,
  // would make the element the norm.
  test('nat table - a listing after a write with an element no VIP has is no reference: verify reads and deletes it', async () => {
    const k = kernel();
    const warned: { msg: string }[] = [];
    const nat = create(k, warned);
    await nat.apply(vips);
    k.nextListing.text = withStray('198.18.2.2', '198.18.2.2, 198.18.2.9');
    const changed = validateDesired(
      [{ ...vipTable, backends: backends.slice(0, 1), slots: buildTable(backends.slice(0, 1), 13) }],
      { requireSamePort: false, forwarding: ['nat'], driver: 'nftables' },
    );
    expect((await nat.apply(changed)).transactions).toBe(1);
    expect(warned.map((w) => w.msg).join('\n')).toMatch(/after the apply: verify reads it whole/);
    k.calls.length = 0;
    const r = await nat.verify(changed);
    expect(k.calls).toContain('nft -t list table inet l4fleet_nat');
    expect(r.transactions).toBe(1);
    expect(k.scripts.at(-1)).toContain('delete element inet l4fleet_nat nataddrs4 { 198.18.2.9 }');
    expect((await nat.verify(changed)).transactions).toBe(0);
  });
});

// The model dropped (forget(): a verify or apply that failed) sends counters() to nft, which answers that no NAT table
// exists. Unreadable only if the last change left one (deleted by hand: its VIPs are not forwarded); after an apply
// that removed the last NAT VIP, or remove(), no table is what was asked for: no NAT counters, not
// NFT_STATE_UNREADABLE (a false L4fleetDataPlaneCountersUnreadable).
describe('nat table counters with the table absent', () => {
  const none = { packets: 0, bytes: 0 };

  test('nat table - after an apply that wrote it, a table gone is unreadable', async () => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    nat.forget();
    await expect(nat.counters()).rejects.toMatchObject({
      code: 'NFT_STATE_UNREADABLE',
      message: expect.stringContaining('the NAT table the last apply wrote is gone'),
    });
  });

  test.each([
    ['an apply that removed the last NAT VIP', (nat: ReturnType<typeof createNatTable>) => nat.apply([])],
    ['remove()', (nat: ReturnType<typeof createNatTable>) => nat.remove()],
  ])('nat table - after %s and the model dropped, a table absent reads as no NAT counters', async (_, clear) => {
    const k = kernel();
    const nat = createNatTable({
      exec: k.exec,
      table: 'l4fleet_nat',
      log: pino({ level: 'silent' }),
      interface: 'eth0',
    });
    await nat.apply(vips);
    await clear(nat);
    nat.forget();
    const c = await nat.counters();
    expect(k.calls).toContain('nft -j list counters table inet l4fleet_nat');
    expect(c).toEqual({ vips: new Map(), port: none, noBackend: none, source: none });
  });
});

// IPv4 forwards what arrives on an interface whose own net.ipv4.conf.IF.forwarding is 1 (ip-sysctl.rst): ip_forward=1
// with the data plane's interface set to 0 afterwards drops every NATed packet while the VIP is announced. IPv6 has
// no per-interface switch (net.ipv6.conf.IF.forwarding is its host/router behaviour): all.forwarding decides there.
describe('nat table forwarding check', () => {
  function sysctls(values: Record<string, string>): { exec: Exec; calls: string[] } {
    const calls: string[] = [];
    const exec: Exec = async (argv) => {
      calls.push(argv.join(' '));
      const key = argv[0] === 'sysctl' && argv[1] === '-n' ? argv[2] : undefined;
      if (key !== undefined && values[key] !== undefined) return { code: 0, stdout: `${values[key]}\n`, stderr: '' };
      return { code: 255, stdout: '', stderr: `sysctl: cannot stat /proc/sys/${key}: No such file or directory` };
    };
    return { exec, calls };
  }
  const natTable = (exec: Exec, iface: string) =>
    createNatTable({ exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }), interface: iface });

  test('nat table - ip_forward 1 with the interface at 0 is refused, naming the interface key and its value', async () => {
    const k = sysctls({ 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.eth0.forwarding': '0' });
    await expect(natTable(k.exec, 'eth0').checkForwarding(vips)).rejects.toMatchObject({
      code: 'NAT_FORWARDING_DISABLED',
      message: expect.stringMatching(/net\.ipv4\.conf\.eth0\.forwarding=1 .*found "0"/),
    });
  });

  test('nat table - ip_forward 0 is still refused, naming it', async () => {
    const k = sysctls({ 'net.ipv4.ip_forward': '0', 'net.ipv4.conf.eth0.forwarding': '1' });
    await expect(natTable(k.exec, 'eth0').checkForwarding(vips)).rejects.toMatchObject({
      code: 'NAT_FORWARDING_DISABLED',
      message: expect.stringMatching(/net\.ipv4\.ip_forward=1 .*found "0"/),
    });
  });

  test('nat table - both at 1 passes; a VLAN interface is read with its dots as sysctl writes them', async () => {
    const k = sysctls({ 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.eth0/100.forwarding': '1' });
    await expect(natTable(k.exec, 'eth0.100').checkForwarding(vips)).resolves.toBeUndefined();
    expect(k.calls).toEqual(['sysctl -n net.ipv4.ip_forward', 'sysctl -n net.ipv4.conf.eth0/100.forwarding']);
  });

  test('nat table - IPv6 reads all.forwarding only', async () => {
    const b6 = [1, 2].map((i) => ({ name: `b${i}`, address: `2001:db8::${i}`, port: 8080 }));
    const v6 = validateDesired(
      [
        {
          vip: { address: '2001:db8:2::2', port: 80, protocol: 'tcp' },
          hash: '5-tuple',
          seed: 7,
          backends: b6,
          slots: buildTable(b6, 13),
          forwarding: 'nat',
        },
      ],
      { requireSamePort: false, forwarding: ['nat'], driver: 'nftables' },
    );
    const k = sysctls({ 'net.ipv6.conf.all.forwarding': '1', 'net.ipv6.conf.eth0.forwarding': '0' });
    await expect(natTable(k.exec, 'eth0').checkForwarding(v6)).resolves.toBeUndefined();
    expect(k.calls).toEqual(['sysctl -n net.ipv6.conf.all.forwarding']);
  });
});
