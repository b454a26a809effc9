/**
 * A pool's checks for people (`describe vip`, `get pools`, `probe`): `healthCheck` alone reads as it always did; with
 * `additionalHealthChecks` each further check gets an `and:` line, and a note says a member must pass them all (a node
 * observes it down once any check is down, up once every one is up: F5's monitors with availability "all").
 */
import { describeHealthCheck, healthChecksOf, type Pool } from '@l4fleet/config';

type Checked = Pick<Pool, 'healthCheck' | 'additionalHealthChecks'>;

/** The CHECK column of `get pools`: `http`, or `http+tcp` when a member must pass both. */
export function checkTypesText(pool: Checked): string {
  return healthChecksOf(pool)
    .map((c) => c.type)
    .join('+');
}

/**
 * `${label}${first check}`, then `and: ${next check}` per further check with its colon under the label's, and a note
 * that a member must pass them all; `label` ends with ': '. One check: that single line, as before the field.
 */
export function healthCheckLines(pool: Checked, label: string): string[] {
  const [first, ...more] = healthChecksOf(pool).map(describeHealthCheck);
  if (more.length === 0) return [`${label}${first}`];
  const and = 'and: '.padStart(label.length);
  return [
    `${label}${first}`,
    ...more.map((d) => `${and}${d}`),
    `${' '.repeat(label.length)}(a member must pass all ${more.length + 1} checks: a node sees it down once one fails, up once all pass)`,
  ];
}
