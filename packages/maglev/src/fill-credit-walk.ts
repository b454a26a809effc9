/**
 * How many rounds until a backend's credit next reaches 1, computed without running the rounds one by one, yet
 * exactly as the reference loop's float64 arithmetic does them (fillWeightedTs in src/fill.ts: each round
 * `c = credit + rate`, a turn when `c >= 1`, then `credit = c - 1`). src/fill-events.ts schedules turns with it.
 *
 * Why it is exact: a credit c in [2^e, 2^(e+1)) is m·u with u = 2^(e-52) and m an integer in [2^52, 2^53). While the
 * exact sum c + r stays below 2^(e+1), IEEE round-to-nearest gives u·round(m + r/u), and with x = r/u that is
 * m + round(x): a constant increment q = round(x) a round, unless x is a half-integer (a tie, rounded to even,
 * which depends on m). In a tie, an odd m takes one round alone and lands on an even m; from an even m every
 * addition adds floor(x) when that is even, floor(x) + 1 when odd, and stays even. So within a binade j rounds
 * at once add j·q·u, computed exactly in float64 (all integers below 2^53, u a power of two). Where the next
 * addition could leave the binade, a single float64 addition is made, as the reference makes it. Cost: a few
 * steps per binade crossed, ~log2(1 / rate) per turn.
 */

/**
 * The smallest rate the walk takes: credits then stay at 0 or >= 2^-60, normal numbers whose binade has a normal
 * ulp (2^-112 and up). fill() leaves smaller rates (weight ratios beyond 2^60, not reachable from the config's
 * 0-65,535 and slow-start percentages) to the reference loops.
 */
export const MIN_WALK_RATE = 2 ** -60;

const bits = new DataView(new ArrayBuffer(8));

/** ulp of a positive normal double c >= 2^-60: 2^(exponent - 52), built from the exponent bits. */
function ulpOf(c: number): number {
  bits.setFloat64(0, c);
  const biased = bits.getUint16(0) >>> 4; // sign bit 0; 11 exponent bits
  bits.setUint32(0, (biased - 52) << 20);
  bits.setUint32(4, 0);
  return bits.getFloat64(0);
}

/**
 * Below this many rates a binade holds only a few rounds: the walk adds one round at a time there, cheaper than
 * working out a jump (the reference's own additions, so exact too).
 */
const PLAIN_BELOW_RATES = 8;

/**
 * The number of rounds (>= 1) until credit `c` (in [0, 1)) plus `rate` each round first reaches 1, in float64 as
 * the reference loop adds; `left[0]` is then set to the credit left after that turn (the reference's `c - 1`).
 * Returns Infinity (and leaves `left` alone) when that takes more than `limit` rounds, or never happens (the credit
 * stopped growing: c + rate rounds back to c). `rate` must be in [MIN_WALK_RATE, 1].
 */
export function turnAfter(c: number, rate: number, limit: number, left: Float64Array): number {
  let rounds = 0;
  // c + rate cannot round back to c here (that needs c > 2^52 rate).
  const plainBelow = PLAIN_BELOW_RATES * rate;
  while (c < plainBelow) {
    const next = c + rate;
    if (++rounds > limit) return Number.POSITIVE_INFINITY;
    if (next >= 1) {
      left[0] = next - 1;
      return rounds;
    }
    c = next;
  }
  // c >= 8 rate >= 2^-57: a normal number. Its binade [top / 2, top), ulp u; both double as the credit grows.
  let u = ulpOf(c);
  let invU = 1 / u; // a power of two: exact, and so is every product with it
  let top = u * 2 ** 53;
  for (;;) {
    const x = rate * invU;
    const f = Math.floor(x);
    const frac = x - f;
    // q: the exact increment of m = c / u per round within this binade; -1: none yet (a tie from an odd m).
    let q: number;
    if (frac === 0.5) q = (c * invU) % 2 !== 0 ? -1 : f % 2 === 0 ? f : f + 1;
    else q = frac < 0.5 ? f : f + 1;
    if (q === 0) return Number.POSITIVE_INFINITY; // c + rate rounds to c: the credit never grows again
    if (q > 0) {
      // The most rounds j with m + j·q <= 2^53 - 1, i.e. c + j·q·u <= top - u: each of them stays inside the
      // binade (m + x < 2^53 - 1/2). room and j·delta are multiples of u below 2^53·u, so exact (a j·delta past
      // that rounds to >= 2^53·u, still above room: the comparisons hold).
      const delta = q * u;
      const room = top - u - c;
      let j = Math.floor(room / delta);
      while (j > 0 && j * delta > room) j--;
      while ((j + 1) * delta <= room) j++;
      if (j > 0) {
        rounds += j;
        if (rounds > limit) return Number.POSITIVE_INFINITY;
        c += j * delta;
      }
    }
    // One round as the reference loop does it: where the next addition may leave the binade, or a tie from an odd m.
    const next = c + rate;
    if (++rounds > limit) return Number.POSITIVE_INFINITY;
    if (next >= 1) {
      left[0] = next - 1;
      return rounds;
    }
    if (next === c) return Number.POSITIVE_INFINITY;
    c = next;
    while (c >= top) {
      u *= 2;
      invU *= 0.5;
      top *= 2;
    }
  }
}
