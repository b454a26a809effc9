import { buildTable } from '@l4fleet/maglev';
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

/** The NAT table as nft answers for it: `listing` is what `nft -s list table inet` prints; scripts are recorded. */
function kernel(): { exec: Exec; scripts: string[]; listing: { text: string } } {
  const scripts: string[] = [];
  const listing = { text: 'table inet l4fleet_nat { }' };
  const exec: Exec = async (argv, input) => {
    const line = argv.join(' ');
    if (line === 'nft -f -') {
      scripts.push(String(input));
      return { code: 0, stdout: '', stderr: '' };
    }
    if (line.startsWith('nft -s list table inet')) return { code: 0, stdout: listing.text, stderr: '' };
    return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
  };
  return { exec, scripts, listing };
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
});
