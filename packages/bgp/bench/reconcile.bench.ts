/**
 * Speaker against a real gobgpd (Debian 3.10): how long announcing, re-applying (no-op), changing and withdrawing
 * N VIPs takes, and how long the speaker needs to put everything back after gobgpd is killed and restarted.
 * Run: npm run bench -w @l4fleet/bgp   (VIPS=1000 by default)
 */
import { performance } from 'node:perf_hooks';
import { startGobgpd } from '@l4fleet/daemons';
import pino from 'pino';
import { type Advertisement, createGobgpSpeaker } from '../src/index.js';

const VIPS = Number(process.env.VIPS ?? 1000);
/** The speaker gets this long to put every path back after gobgpd's restart; past it the bench reports failure. */
const RECOVER_TIMEOUT_MS = 30_000;
const logger = pino({ level: 'silent' });

function vips(n: number, community = '65001:1'): Advertisement[] {
  return Array.from({ length: n }, (_, i) => ({
    prefix: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`,
    nextHop: '198.18.0.1',
    communities: [community],
  }));
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const gobgpd = await startGobgpd({ name: 'bench' });
const speaker = createGobgpSpeaker({ address: gobgpd.apiAddress, logger, backoff: { initialMs: 20, maxMs: 200 } });
try {
  await speaker.ensureGlobal({ asn: 65001, routerId: '198.18.0.1', listenPort: -1 });
  const all = vips(VIPS);
  const changed = [...all.slice(0, VIPS - 10), ...vips(VIPS, '65001:2').slice(VIPS - 10)];
  const announceMs = await timed(() => speaker.setAdvertisements(all));
  const noopMs = await timed(() => speaker.setAdvertisements(all));
  const change10Ms = await timed(() => speaker.setAdvertisements(changed));

  // Crash and restart: count from the moment the new gobgpd answers until it holds every path again.
  await gobgpd.kill();
  await gobgpd.restart();
  const t0 = performance.now();
  const deadline = t0 + RECOVER_TIMEOUT_MS;
  let held = 0;
  while (performance.now() < deadline) {
    const rib = await gobgpd.cliJson<Record<string, unknown>>('global', 'rib', '-a', 'ipv4').catch(() => null);
    held = Object.keys(rib ?? {}).length;
    if (held === VIPS) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const recovered = held === VIPS;
  // Not recovered: the time is the timeout, not a measurement; it is printed as the failure it is.
  const recoverMs = recovered ? performance.now() - t0 : undefined;
  const withdrawMs = await timed(() => speaker.setAdvertisements([]));

  const rows: Array<[string, number | undefined]> = [
    [`announce ${VIPS} VIPs from empty`, announceMs],
    [`re-apply the same ${VIPS} (no-op reconcile)`, noopMs],
    [`change 10 of ${VIPS}`, change10Ms],
    [`restore ${VIPS} after gobgpd kill + restart`, recoverMs],
    [`withdraw ${VIPS}`, withdrawMs],
  ];
  console.log('| step | ms | per VIP, ms |\n|---|---:|---:|');
  for (const [name, ms] of rows) {
    console.log(
      ms === undefined
        ? `| ${name} | not recovered (${held} of ${VIPS} paths after ${RECOVER_TIMEOUT_MS} ms) | - |`
        : `| ${name} | ${ms.toFixed(1)} | ${(ms / VIPS).toFixed(3)} |`,
    );
  }
  console.log(
    JSON.stringify({
      bench: 'bgp-reconcile',
      vips: VIPS,
      announceMs: Math.round(announceMs),
      noopMs: Math.round(noopMs),
      change10Ms: Math.round(change10Ms),
      ...(recoverMs === undefined ? { heldAfterTimeout: held } : { recoverMs: Math.round(recoverMs) }),
      recovered,
      withdrawMs: Math.round(withdrawMs),
      noopToAnnounceRatio: Number((noopMs / announceMs).toFixed(3)),
      change10ToAnnounceRatio: Number((change10Ms / announceMs).toFixed(3)),
    }),
  );
  if (!recovered) process.exitCode = 1;
} finally {
  await speaker.close();
  await gobgpd.close();
}
