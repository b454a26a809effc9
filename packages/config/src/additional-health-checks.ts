/**
 * `pools[].additionalHealthChecks`: checks a member must pass besides its pool's `healthCheck` (F5's pool with several
 * monitors and availability "all"; Alteon's health check AND expression). Each runs on its own port, interval,
 * timeout and rise/fall, so a web server can be probed on its HTTP `/healthz` and on the TCP port of a sidecar it
 * depends on. A node observes a member down as soon as any check is down, and up again once every check is up
 * (agent health/checker.ts); with `healthChecksRequired: N` (F5's "at least N of M") up while N pass, down once too
 * many are down for N to pass. The aggregator then decides from those observations as before, so nothing downstream
 * knows how many checks a member has.
 *
 * Absent or empty: `healthCheck` alone, not written back, so a fleet that does not use the field stays readable by
 * nodes that predate it (they refuse a fleet that does, naming the field, rather than check less than it says).
 */

import { type Problems, showValue } from './fields.js';
import { healthCheckField } from './health-check.js';
import type { HealthCheck, Pool } from './types.js';

/** Checks besides `healthCheck`: four in all per member is already four probes per interval from every node. */
export const MAX_ADDITIONAL_HEALTH_CHECKS = 3;

const sameCheck = (a: HealthCheck, b: HealthCheck): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * Parses `pools[i].additionalHealthChecks` (each entry as `healthCheck`, defaulted the same way); `primary` is the
 * pool's parsed `healthCheck`. Refused: not a list, more than MAX_ADDITIONAL_HEALTH_CHECKS, an entry of type `none`
 * (it passes always), any entry when `healthCheck` is `none` (the pool is unchecked), an entry equal to an earlier
 * check (it would only double the probes).
 */
export function additionalHealthChecksField(
  p: Problems,
  path: string,
  v: unknown,
  primary: HealthCheck,
): { additionalHealthChecks?: readonly HealthCheck[] } {
  if (v === undefined) return {};
  if (!Array.isArray(v)) {
    p.add(path, `${showValue(v)} is not a list of health checks`);
    return {};
  }
  if (v.length === 0) return {};
  if (v.length > MAX_ADDITIONAL_HEALTH_CHECKS) {
    p.add(
      path,
      `${v.length} checks are more than ${MAX_ADDITIONAL_HEALTH_CHECKS} (MAX_ADDITIONAL_HEALTH_CHECKS: every node probes every member with each)`,
    );
    return {};
  }
  if (primary.type === 'none') {
    p.add(
      path,
      'the pool\'s healthCheck is "none" (every member taken as up): give the first check as healthCheck, the others here',
    );
    return {};
  }
  const before = p.list.length;
  const checks: HealthCheck[] = [];
  v.forEach((raw, i) => {
    const at = `${path}[${i}]`;
    if (raw === undefined || raw === null) {
      p.add(at, `${showValue(raw)} is not an object`);
      return;
    }
    const hc = healthCheckField(p, at, raw);
    if (hc.type === 'none') {
      p.add(`${at}.type`, '"none" passes always: it adds nothing to the pool\'s other checks');
      return;
    }
    const earlier = [primary, ...checks].findIndex((c) => sameCheck(c, hc));
    if (earlier >= 0) {
      const name = earlier === 0 ? 'healthCheck' : `additionalHealthChecks[${earlier - 1}]`;
      p.add(at, `the same check as ${name}: it would only double the probes`);
      return;
    }
    checks.push(hc);
  });
  return p.list.length > before ? {} : { additionalHealthChecks: checks };
}

/**
 * `pools[i].healthChecksRequired`: how many of the member's checks it must pass to be up (F5's availability "at least
 * N of M"), e.g. 1 of an HTTP check on two paths the service answers on either. `count` is the number of checks
 * (healthChecksOf), undefined when `additionalHealthChecks` was refused. Absent or equal to `count`: all of them, not written back, so a fleet without it stays readable by
 * nodes that predate it. Refused: not a whole number from 1 to `count`, any without `additionalHealthChecks` (one
 * check is passed or not).
 */
export function healthChecksRequiredField(
  p: Problems,
  path: string,
  v: unknown,
  count: number | undefined,
): { healthChecksRequired?: number } {
  if (v === undefined || count === undefined) return {};
  if (count <= 1) {
    p.add(path, `${showValue(v)}: the pool has one check (healthCheck alone); list more in additionalHealthChecks`);
    return {};
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > count) {
    p.add(
      path,
      `${showValue(v)} is not a number of checks from 1 to the pool's ${count} (a member is up while it passes at least this many)`,
    );
    return {};
  }
  return v === count ? {} : { healthChecksRequired: v };
}

/** How many of its checks a member of the pool must pass (absent: all). */
export function healthChecksRequiredOf(
  pool: Pick<Pool, 'healthCheck' | 'additionalHealthChecks' | 'healthChecksRequired'>,
): number {
  return pool.healthChecksRequired ?? healthChecksOf(pool).length;
}

/** Every check a member of the pool must pass: `healthCheck` first, then `additionalHealthChecks`. */
export function healthChecksOf(pool: Pick<Pool, 'healthCheck' | 'additionalHealthChecks'>): readonly HealthCheck[] {
  return [pool.healthCheck, ...(pool.additionalHealthChecks ?? [])];
}

/** The fleet-file path of the pool's check number `index` (0: `healthCheck`). */
export function healthCheckPath(poolIndex: number, index: number): string {
  return index === 0 ? `pools[${poolIndex}].healthCheck` : `pools[${poolIndex}].additionalHealthChecks[${index - 1}]`;
}

/**
 * How a probe failure names its check when a member has more than one: `check 2 of 2 (tcp port 9100)`; `` with one
 * check, so a single-check pool's reasons read as they always did, unless that check probes an `address` of its own
 * (`check (tcp at 198.18.3.50 port 5432)`).
 */
export function checkLabel(check: HealthCheck, index: number, count: number): string {
  const what = `${check.type}${check.tls ? ' tls' : ''}${check.address ? ` at ${check.address}` : ''}${check.port ? ` port ${check.port}` : ''}`;
  if (count > 1) return `check ${index + 1} of ${count} (${what})`;
  // A check of another address names it even alone: its failure is not the member's own.
  return check.address === undefined ? '' : `check (${what})`;
}
