import { buildTable } from '@l4fleet/maglev';
import { ProcessError } from '@l4fleet/process';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { validateDesired } from '../validate.js';
import { createNatTable } from './nat-table.js';

const backends = [1, 2].map((i) => ({ name: `b${i}`, address: `198.18.0.${i}`, port: 8080 }));
const vips = validateDesired(
  [
    {
      vip: { address: '198.18.2.2', port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 7,
      backends,
      slots: buildTable(backends, 13),
      forwarding: 'nat',
    },
  ],
  { requireSamePort: false, forwarding: ['nat'], driver: 'nftables' },
);

/**
 * The NAT table as nft answers for it: `listing` is what `nft -s list table inet` prints (undefined: the table is
 * gone); scripts are recorded; every command line is in `calls`; a command line in `timeOut` times out once.
 */
function kernel(): {
  exec: Exec;
  scripts: string[];
  calls: string[];
  listing: { text: string | undefined };
  timeOut: Set<string>;
} {
  const scripts: string[] = [];
  const calls: string[] = [];
  const listing: { text: string | undefined } = { text: 'table inet l4fleet_nat { }' };
  const timeOut = new Set<string>();
  const gone = { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
  const exec: Exec = async (argv, input) => {
    const line = argv.join(' ');
    calls.push(line);
    if (timeOut.delete(line)) throw new ProcessError('TIMEOUT', `command "${line}" did not finish within 30000 ms`);
    if (line === 'nft -f -') {
      scripts.push(String(input));
      listing.text = 'table inet l4fleet_nat { }';
      return { code: 0, stdout: '', stderr: '' };
    }
    if (line.startsWith('nft -s list table inet'))
      return listing.text === undefined ? gone : { code: 0, stdout: listing.text, stderr: '' };
    return gone;
  };
  return { exec, scripts, calls, listing, timeOut };
}

describe('nat table verify', () => {
  test('nat table - verify with the table as the last apply left it writes nothing', async () => {
    const k = kernel();
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
    expect((await nat.apply(vips)).transactions).toBe(1);
    const r = await nat.verify(vips);
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['unchanged']);
    expect(k.scripts).toHaveLength(1);
  });

  test('nat table - verify rewrites a table that differs from the listing after the last apply', async () => {
    const k = kernel();
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
    await nat.apply(vips);
    k.listing.text = 'table inet l4fleet_nat { chain flushed { } }';
    const r = await nat.verify(vips);
    expect(r.transactions).toBe(1);
    expect(k.scripts).toHaveLength(2);
    // The listing after the repair is the new reference: nothing more to do.
    expect((await nat.verify(vips)).transactions).toBe(0);
  });

  // A verify that could not list the table compared nothing: the agent fails it and retries with an apply, which must
  // read the table rather than plan against the last write and report success with the table still gone.
  test('nat table - after a verify whose listing timed out, the next apply reads the table and writes it again', async () => {
    const k = kernel();
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
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
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
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

// The model dropped (forget(): a verify or apply that failed) sends counters() to nft, which answers that no NAT table
// exists. Unreadable only if the last change left one (deleted by hand: its VIPs are not forwarded); after an apply
// that removed the last NAT VIP, or remove(), no table is what was asked for: no NAT counters, not
// NFT_STATE_UNREADABLE (a false L4fleetDataPlaneCountersUnreadable).
describe('nat table counters with the table absent', () => {
  const none = { packets: 0, bytes: 0 };

  test('nat table - after an apply that wrote it, a table gone is unreadable', async () => {
    const k = kernel();
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
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
    const nat = createNatTable({ exec: k.exec, table: 'l4fleet_nat', log: pino({ level: 'silent' }) });
    await nat.apply(vips);
    await clear(nat);
    nat.forget();
    const c = await nat.counters();
    expect(k.calls).toContain('nft -j list counters table inet l4fleet_nat');
    expect(c).toEqual({ vips: new Map(), port: none, noBackend: none, source: none });
  });
});
