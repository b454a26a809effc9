/**
 * A pool's checks for people (`describe vip`, `get pools`, `probe`): `healthCheck` alone reads as it always did; with
 * `additionalHealthChecks` each further check gets an `and:` line, and a note says a member must pass them all (a node
 * observes it down once any check is down, up once every one is up: F5's monitors with availability "all"), or as many
 * as `healthChecksRequired` says ("at least N of M").
 */
import { describeHealthCheck, healthChecksOf, healthChecksRequiredOf, type Pool } from '@l4fleet/config';

type Checked = Pick<Pool, 'healthCheck' | 'additionalHealthChecks' | 'healthChecksRequired'>;

/** The CHECK column of `get pools`: `http`, `http+tcp` when a member must pass both, `1 of http+tcp` for either. */
export function checkTypesText(pool: Checked): string {
  const types = healthChecksOf(pool)
    .map((c) => c.type)
    .join('+');
  return pool.healthChecksRequired === undefined ? types : `${pool.healthChecksRequired} of ${types}`;
}

/**
 * `${label}${first check}`, then `and: ${next check}` per further check with its colon under the label's, and a note
 * that a member must pass them all; `label` ends with ': '. One check: that single line, as before the field.
 */
export function healthCheckLines(pool: Checked, label: string): string[] {
  const [first, ...more] = healthChecksOf(pool).map(describeHealthCheck);
  if (more.length === 0) return [`${label}${first}`];
  const and = 'and: '.padStart(label.length);
  const required = healthChecksRequiredOf(pool);
  const how =
    required > more.length
      ? `a member must pass all ${more.length + 1} checks: a node sees it down once one fails, up once all pass`
      : `a member must pass at least ${required} of the ${more.length + 1} checks: a node sees it up while ${required} pass${required === 1 ? 'es' : ''}, down once ${more.length + 2 - required} fail`;
  return [`${label}${first}`, ...more.map((d) => `${and}${d}`), `${' '.repeat(label.length)}(${how})`];
}
