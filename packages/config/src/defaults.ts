/** Defaults of the fleet file, with units in the names. Classic L4 switches probe every 2 s, 4 misses to go down. */
import { DEFAULT_TABLE_SIZE, type HashMode } from '@l4fleet/maglev';
import type { Forwarding, HealthCheck } from './types.js';

export const DEFAULT_HEALTH_INTERVAL_MS = 2_000; // 2 s
export const DEFAULT_HEALTH_TIMEOUT_MS = 1_000; // 1 s
export const DEFAULT_HEALTH_RISE = 2;
export const DEFAULT_HEALTH_FALL = 4;
export const DEFAULT_HTTP_PATH = '/';
export const DEFAULT_HTTP_EXPECT_STATUS = 200;
export const DEFAULT_MEMBER_WEIGHT = 1;
export const MAX_MEMBER_WEIGHT = 65_535;
export const DEFAULT_VIP_TABLE_SIZE = DEFAULT_TABLE_SIZE; // 65,537 (Maglev §3.4)
export const DEFAULT_VIP_HASH: HashMode = '5-tuple';
export const DEFAULT_POOL_FORWARDING: Forwarding = 'l2';
/** UDP destination port of GUE-encapsulated packets (GUE has no IANA port; 6080 as in Katran's and GLB's setups). */
export const DEFAULT_GUE_PORT = 6080;

/** A fresh default health check (tcp connect to the member's port). */
export function defaultHealthCheck(): HealthCheck {
  return {
    type: 'tcp',
    intervalMs: DEFAULT_HEALTH_INTERVAL_MS,
    timeoutMs: DEFAULT_HEALTH_TIMEOUT_MS,
    rise: DEFAULT_HEALTH_RISE,
    fall: DEFAULT_HEALTH_FALL,
  };
}
