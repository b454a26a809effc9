/**
 * dnsmasq (Debian's dnsmasq-base, /usr/sbin/dnsmasq) as a DNS server of our own for tests of the `dns` health
 * check: a free loopback port, no upstream and no config file, answering A records it is given, NXDOMAIN for other
 * names under its local zones, and REFUSED for the rest (it has no upstream to ask).
 */
import { type Child, freePort, spawnChild, waitFor } from '@l4fleet/process';

export const DNSMASQ_BIN = '/usr/sbin/dnsmasq';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;

export interface DnsmasqOptions {
  /** Name -> IPv4 address it answers (and its subdomains, as dnsmasq's --address does). */
  readonly records?: Readonly<Record<string, string>>;
  /** Zones it is authoritative for: a name there without a record is NXDOMAIN. */
  readonly localZones?: readonly string[];
}

export function dnsmasqArgv(port: number, o: DnsmasqOptions): string[] {
  return [
    DNSMASQ_BIN,
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--pid-file=',
    '--user=root',
    '--log-facility=-',
    ...Object.entries(o.records ?? {}).map(([name, address]) => `--address=/${name}/${address}`),
    ...(o.localZones ?? []).map((zone) => `--local=/${zone}/`),
  ];
}

export interface DnsmasqHandle {
  readonly port: number;
  /** Stops it; safe to call twice. */
  stop(): Promise<void>;
}

export async function startDnsmasq(o: DnsmasqOptions = {}): Promise<DnsmasqHandle> {
  const port = await freePort();
  const c: Child = spawnChild(dnsmasqArgv(port, o));
  try {
    await waitFor(
      `dnsmasq on port ${port}`,
      async () => (/started, version/.test(c.log()) ? true : undefined),
      READY_TIMEOUT_MS,
      50,
      () => (c.exitReason() ? `dnsmasq ${c.exitReason()} before serving:\n${c.log()}` : undefined),
    );
  } catch (err) {
    await c.stop('SIGKILL'); // the caller gets no handle to stop it with
    throw err;
  }
  return { port, stop: () => c.stop('SIGTERM', STOP_TIMEOUT_MS) };
}
