/**
 * The fleet file's `secondChance` setting of a pool (docs/design/0011-second-chance.md): whether nodes name each
 * slot's previous owner in the packets they encapsulate, and how long a previous owner is kept after the table change
 * that replaced it. Previous owners travel in the encapsulation (GLB Director's GUE private data): only a `gue` pool's
 * TCP packets carry one (0011 "The packet", "UDP"); `ipip` has no field for it, GRE's key could hold only an IPv4
 * address, and with `l2` or `nat` the frame cannot carry a second backend.
 */
import { boolField, intField, type Problems, sectionField } from './fields.js';
import type { Forwarding, Pool } from './types.js';

export interface SecondChance {
  /** Carry previous owners (default true). */
  readonly enabled: boolean;
  /**
   * Seconds a previous owner is kept after the change that replaced it (default 3,600 = 1 h): a flow older than
   * this whose slot moved is reset when ECMP moves it to another node (0011 "Limits").
   */
  readonly retainS: number;
}

export const DEFAULT_SECOND_CHANCE_ENABLED = true;
export const DEFAULT_SECOND_CHANCE_RETAIN_S = 3_600; // 1 h
/** A week: a longer promise is one etcd cannot keep (history is bounded in tables too, MAX_PREVIOUS_TABLES). */
export const MAX_SECOND_CHANCE_RETAIN_S = 7 * 86_400;
/** Earlier tables kept per pool at most (the oldest beyond it is dropped even inside retainS). */
export const MAX_PREVIOUS_TABLES = 4;

/**
 * Forwardings whose tables get previous owners (secondChanceActive). ipip and gre too: their tables and checksums
 * have included them since second chance came, so nodes of every version agree on them; the data plane ignores them
 * there (node-core.h previous_owner): what a packet carries is secondChanceCarried's.
 */
const WITH_PREVIOUS: readonly Forwarding[] = ['ipip', 'gre', 'gue'];

/** A fresh default setting. */
export function defaultSecondChance(): SecondChance {
  return { enabled: DEFAULT_SECOND_CHANCE_ENABLED, retainS: DEFAULT_SECOND_CHANCE_RETAIN_S };
}

/** Parses `pools[i].secondChance`; every problem names the field and the value. */
export function secondChanceField(p: Problems, path: string, v: unknown): SecondChance {
  const o = sectionField(p, path, v, ['enabled', 'retainS']);
  return {
    enabled: boolField(p, `${path}.enabled`, o.enabled, DEFAULT_SECOND_CHANCE_ENABLED),
    retainS: intField(
      p,
      `${path}.retainS`,
      o.retainS,
      1,
      MAX_SECOND_CHANCE_RETAIN_S,
      'a retention in seconds',
      DEFAULT_SECOND_CHANCE_RETAIN_S,
    ),
  };
}

/** The pool's setting (parsed fleets always carry one; a hand-built Pool gets the default). */
export function secondChanceOf(pool: Pick<Pool, 'secondChance'>): SecondChance {
  return pool.secondChance ?? defaultSecondChance();
}

/** Previous owners are kept for this pool (history recorded, tables built with them): enabled, an encapsulation. */
export function secondChanceActive(pool: Pick<Pool, 'secondChance' | 'forwarding'>): boolean {
  return secondChanceOf(pool).enabled && WITH_PREVIOUS.includes(pool.forwarding);
}

/**
 * A packet of `protocol` to a VIP of this pool names the previous owner: second chance active, `gue` (the only
 * encapsulation with room for it) and TCP (a UDP socket lookup finds the listening socket on every backend, so UDP
 * is never tagged: 0011 "UDP").
 */
export function secondChanceCarried(pool: Pick<Pool, 'secondChance' | 'forwarding'>, protocol: 'tcp' | 'udp'): boolean {
  return secondChanceActive(pool) && pool.forwarding === 'gue' && protocol === 'tcp';
}
