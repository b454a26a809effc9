/**
 * Strict parsing of numeric command-line values. `Number()` reads `''` and `' '` as 0 and `1e3` as 1,000, so
 * `--weight ''` silently made a member take no traffic; only plain decimal digits (or 0x hex where a seed is
 * expected) are accepted here, with the flag and the value in the message.
 */
import { CliError, EXIT_USAGE } from './io.js';

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const HEX = /^0x[0-9a-fA-F]{1,8}$/;

/** An integer in [min, max] written in decimal; a usage error (exit 2) naming `flag` and the value otherwise. */
export function integerOption(value: string, flag: string, min: number, max: number, hex = false): number {
  const ok = DECIMAL.test(value) || (hex && HEX.test(value));
  const n = ok ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag}: ${JSON.stringify(value)} is not an integer (${min}-${max})`, EXIT_USAGE);
  }
  return n;
}

/**
 * A commander argParser for an option that takes one value: commander keeps the last of a repeated option, so
 * `apply -f a.yaml -f b.yaml` applied b.yaml alone, silently. `flags` names the option in the error (exit 2). Only
 * for options without a default: a default arrives as `previous` as well.
 */
export function onceOption(flags: string): (value: string, previous: string | undefined) => string {
  return (value, previous) => {
    if (previous !== undefined) {
      throw new CliError(
        `${flags}: given twice (${JSON.stringify(previous)}, then ${JSON.stringify(value)}); give it once`,
        EXIT_USAGE,
      );
    }
    return value;
  };
}
