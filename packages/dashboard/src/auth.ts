/**
 * Write authorisation: a bearer token configured by the operator. There is no default token: without one, every
 * write is refused (reads stay open), so a dashboard started without thought can look but not touch.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { DashboardError } from './errors.js';

/** Shortest token accepted: 16 characters, so a token is not a guessable word. */
export const MIN_TOKEN_LENGTH = 16;

export interface WriteGuard {
  /** True when a token is configured (the page shows the action buttons only then). */
  readonly enabled: boolean;
  /** Throws WRITES_DISABLED or UNAUTHORIZED unless `header` is `Bearer <token>`. */
  check(header: string | undefined): void;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function createWriteGuard(token: string | undefined): WriteGuard {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new DashboardError(
      'OPTION_INVALID',
      `token: ${token.length} characters is too short (at least ${MIN_TOKEN_LENGTH})`,
    );
  }
  // Compare digests: equal length always, so timingSafeEqual never throws and the length does not leak.
  const want = token === undefined ? undefined : digest(token);
  return {
    enabled: want !== undefined,
    check(header) {
      if (!want)
        throw new DashboardError('WRITES_DISABLED', 'writes are disabled: the dashboard has no token configured');
      const m = /^Bearer (.+)$/.exec(header ?? '');
      if (!m || !timingSafeEqual(digest(m[1] as string), want)) {
        throw new DashboardError('UNAUTHORIZED', 'authorization: missing or wrong bearer token');
      }
    },
  };
}
