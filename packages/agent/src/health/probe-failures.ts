/**
 * What the status record says of the members this node sees down (@l4fleet/store NodeStatusReport `probeFailures`):
 * each one's reason, cut to a length the store accepts, and the report's bound on how many it lists.
 */
import { MAX_PROBE_FAILURES_PER_STATUS } from '@l4fleet/store';

/** Why this node sees a member down: the reason of the probe that took it down, and when. */
export interface ProbeFailure {
  readonly reason: string;
  readonly sinceMs: number;
}

/**
 * A reason as the status record keeps it: at most MAX_PROBE_REASON_CHARS (the store refuses a status with a text over
 * 1,024 characters; an error message from a library could be longer).
 */
export const MAX_PROBE_REASON_CHARS = 200;
export function shortReason(reason: string | undefined): string {
  const r = reason ?? 'failed';
  return r.length <= MAX_PROBE_REASON_CHARS ? r : `${r.slice(0, MAX_PROBE_REASON_CHARS - 3)}...`;
}

/**
 * The status record's `probeFailures` (@l4fleet/store NodeStatusReport): at most MAX_PROBE_FAILURES_PER_STATUS,
 * the first by key, the rest counted; nothing when no member is down.
 */
export function probeFailuresReport(failures: ReadonlyMap<string, ProbeFailure>): {
  probeFailures?: Record<string, ProbeFailure>;
  probeFailuresOmitted?: number;
} {
  if (failures.size === 0) return {};
  const keys = [...failures.keys()].sort().slice(0, MAX_PROBE_FAILURES_PER_STATUS);
  const omitted = failures.size - keys.length;
  return {
    probeFailures: Object.fromEntries(keys.map((k) => [k, failures.get(k) as ProbeFailure])),
    ...(omitted > 0 ? { probeFailuresOmitted: omitted } : {}),
  };
}
