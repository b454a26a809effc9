/**
 * The notes `apply` and the member edits print: settings that are valid but do not do what they say
 * (@l4fleet/config ineffectiveSettings). They are written anyway; the nodes never refuse them.
 */
import { type Fleet, formatProblem, ineffectiveSettings } from '@l4fleet/config';

/** `PATH: MESSAGE` for each setting of `after` that does not do what it says; with `before`, only new ones. */
export function ineffectiveNotes(after: Fleet, before?: Fleet): string[] {
  const old = new Set(before ? ineffectiveSettings(before).map(formatProblem) : []);
  return ineffectiveSettings(after)
    .map(formatProblem)
    .filter((n) => !old.has(n));
}
