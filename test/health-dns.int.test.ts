/**
 * The `dns` health check against a real DNS server, Debian's dnsmasq: a name it has is up, a name its zone lacks
 * is up only where NXDOMAIN is expected, a name outside its zones is REFUSED, and a stopped server is refused by
 * the kernel (ICMP port unreachable). A responder that answers with another query ID (as a spoofer would) is
 * ignored: the probe times out and says what it ignored. Also end to end through the fleet file: parseFleet's
 * defaults are what the probe sends.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { probeMember } from '@l4fleet/agent';
import { type HealthCheck, parseFleet } from '@l4fleet/config';
import { type DnsmasqHandle, startDnsmasq } from '@l4fleet/daemons';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

let dnsmasq: DnsmasqHandle | undefined;
let spoofer: Socket | undefined;

beforeAll(async () => {
  dnsmasq = await startDnsmasq({ records: { 'www.lab.test': '198.18.0.21' }, localZones: ['lab.test'] });
  const s = createSocket('udp4');
  spoofer = s;
  s.on('message', (msg, rinfo) => {
    const reply = Buffer.from(msg);
    reply.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0); // another ID
    reply.writeUInt16BE(0x8180, 2);
    s.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
}, 30_000);

afterAll(async () => {
  await dnsmasq?.stop();
  spoofer?.close();
});

/** The check as parseFleet fills it from the fleet file's fields. */
function dnsCheck(fields: Record<string, unknown>): HealthCheck {
  const fleet = parseFleet({
    pools: [
      {
        name: 'dns',
        healthCheck: { type: 'dns', intervalMs: 2000, timeoutMs: 500, ...fields },
        members: [{ address: '198.18.0.21', port: 53 }],
      },
    ],
    vips: [{ address: '198.51.100.53', port: 53, protocol: 'udp', pool: 'dns' }],
  });
  const hc = fleet.pools[0]?.healthCheck;
  if (!hc) throw new Error('no health check');
  return hc;
}

const probe = (fields: Record<string, unknown>, port = dnsmasq?.port ?? 0) =>
  probeMember({ address: '127.0.0.1', port }, dnsCheck(fields));

describe('dns health check against dnsmasq', () => {
  test('a name the server has is up (A by default, NOERROR expected)', async () => {
    expect(await probe({ query: 'www.lab.test' })).toMatchObject({ ok: true });
  });

  test('a name its zone lacks: NXDOMAIN, up only where NXDOMAIN is expected', async () => {
    expect(await probe({ query: 'gone.lab.test' })).toMatchObject({
      ok: false,
      reason: 'rcode NXDOMAIN (expected NOERROR)',
    });
    expect(await probe({ query: 'gone.lab.test', expectRcode: 'NXDOMAIN' })).toMatchObject({ ok: true });
  });

  test('a name outside its zones (no upstream): REFUSED is down', async () => {
    expect(await probe({ query: 'www.example.com', queryType: 'AAAA' })).toMatchObject({
      ok: false,
      reason: 'rcode REFUSED (expected NOERROR)',
    });
  });

  test('an answer with another query ID is ignored: the probe times out and says so', async () => {
    const port = (spoofer?.address() as AddressInfo | undefined)?.port ?? 0;
    expect(await probe({ query: 'www.lab.test' }, port)).toMatchObject({
      ok: false,
      reason: 'timeout (ignored a reply: another query ID)',
    });
  });

  test('a stopped server is down at once (ICMP port unreachable)', async () => {
    const port = dnsmasq?.port ?? 0;
    await dnsmasq?.stop();
    dnsmasq = undefined;
    const r = await probe({ query: 'www.lab.test' }, port);
    expect(r).toMatchObject({ ok: false, reason: 'ECONNREFUSED' });
    expect(r.latencyMs).toBeLessThan(500);
  });
});
