/**
 * Health probe cost per check type: the agent's own probe (probeMember) run PROBES times at CONCURRENCY against
 * servers on loopback, in a child process whose CPU time is all probing (the servers run in this process):
 * tcp connect, http GET, https GET (TLS 1.3 handshake, certificate not verified, then verified against the test
 * CA), tcp with a payload and expect, and dns (one query to Debian's dnsmasq). Prints CPU per probe, the ratio to a
 * tcp connect measured in the same run, and how many members one node checks every 2 s for 10 % of one core.
 * Sizes: PROBES (default 2,000), CONCURRENCY (64).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { HealthCheck } from '@l4fleet/config';
import { makeCerts, startDnsmasq } from '@l4fleet/daemons';
import { probeMember } from '../src/health/probe.js';

const run = promisify(execFile);
const PROBES = Number(process.env.PROBES ?? 2_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const INTERVAL_MS = 2_000;
const CORE_SHARE = 0.1;

interface Case {
  readonly name: string;
  readonly port: number;
  readonly check: HealthCheck;
  /** PEM roots for the verified case. */
  readonly caFile?: string;
}

const base = { intervalMs: INTERVAL_MS, timeoutMs: 1_000, rise: 1, fall: 1 } as const;

/** The child: PROBES probes of one case, CONCURRENCY at a time; prints its CPU and wall time as JSON. */
async function child(caseJson: string): Promise<void> {
  const c = JSON.parse(caseJson) as Case;
  const ca = c.caFile ? await readFile(c.caFile) : undefined;
  const target = { address: '127.0.0.1', port: c.port };
  // Warm up (module loading, JIT, TLS contexts), then measure.
  for (let i = 0; i < 50; i++) await probeMember(target, c.check, ca ? { ca } : {});
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < PROBES) {
      next += 1;
      const r = await probeMember(target, c.check, ca ? { ca } : {});
      if (!r.ok) failed += 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0, failed }),
  );
}

async function listen<S extends Server | ReturnType<typeof createHttpServer>>(s: S): Promise<number> {
  s.on('connection', (c: { on(e: 'error', f: () => void): void }) => c.on('error', () => undefined));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-probe-bench-'));
  await makeCerts(dir);
  const [key, cert] = await Promise.all([readFile(join(dir, 'server.key')), readFile(join(dir, 'server.pem'))]);
  const servers: { close(): void }[] = [];
  const dnsmasq = await startDnsmasq({ records: { 'www.bench.test': '198.18.0.21' } });
  try {
    const tcp = createServer((c) => c.end());
    const redis = createServer((c) => c.on('data', () => c.write('+PONG\r\n')));
    const http = createHttpServer({ keepAlive: false }, (_q, res) => res.writeHead(200).end('ok'));
    const https = createHttpsServer({ key, cert }, (_q, res) => res.writeHead(200).end('ok'));
    servers.push(tcp, redis, http, https);
    const ports = {
      tcp: await listen(tcp),
      redis: await listen(redis),
      http: await listen(http),
      https: await listen(https),
    };
    const cases: Case[] = [
      { name: 'tcp connect', port: ports.tcp, check: { ...base, type: 'tcp' } },
      {
        name: 'tcp payload + expect',
        port: ports.redis,
        check: { ...base, type: 'tcp', payload: 'PING\r\n', expect: '+PONG' },
      },
      { name: 'http GET', port: ports.http, check: { ...base, type: 'http', path: '/', expectStatus: 200 } },
      {
        name: 'https GET, not verified',
        port: ports.https,
        check: { ...base, type: 'https', path: '/', expectStatus: 200, verifyCertificate: false },
      },
      {
        name: 'https GET, verified',
        port: ports.https,
        check: { ...base, type: 'https', path: '/', expectStatus: 200, verifyCertificate: true, host: 'localhost' },
        caFile: join(dir, 'ca.pem'),
      },
      {
        name: 'dns (dnsmasq)',
        port: dnsmasq.port,
        check: { ...base, type: 'dns', query: 'www.bench.test', queryType: 'A', expectRcode: 'NOERROR' },
      },
    ];
    const self = fileURLToPath(import.meta.url);
    const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
    const rows: { name: string; cpuUsPerProbe: number; perSecond: number; failed: number }[] = [];
    for (const c of cases) {
      const { stdout } = await run(tsx, [self, 'child', JSON.stringify(c)], { timeout: 300_000 });
      const r = JSON.parse(stdout) as { cpuMs: number; wallMs: number; failed: number };
      rows.push({
        name: c.name,
        cpuUsPerProbe: (r.cpuMs * 1000) / PROBES,
        perSecond: PROBES / (r.wallMs / 1000),
        failed: r.failed,
      });
    }
    const tcpCost = rows[0]?.cpuUsPerProbe ?? Number.NaN;
    console.log(`health probes: ${PROBES} per check type, ${CONCURRENCY} at a time, loopback, agent side only`);
    console.log(
      'check type                 CPU/probe   x tcp   probes/s   members every 2 s per 10 % of a core  failed',
    );
    for (const r of rows) {
      const members = Math.floor((CORE_SHARE * INTERVAL_MS * 1000) / r.cpuUsPerProbe);
      console.log(
        `${r.name.padEnd(26)} ${`${r.cpuUsPerProbe.toFixed(0)} us`.padStart(9)} ${`${(r.cpuUsPerProbe / tcpCost).toFixed(1)}x`.padStart(7)} ${r.perSecond.toFixed(0).padStart(10)} ${String(members).padStart(40)} ${String(r.failed).padStart(7)}`,
      );
    }
    console.log(JSON.stringify({ bench: 'probes', probes: PROBES, concurrency: CONCURRENCY, rows }));
  } finally {
    for (const s of servers) s.close();
    await dnsmasq.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') await child(process.argv[3] ?? '{}');
else await main();
