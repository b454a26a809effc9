/**
 * The notes `apply` and the member edits print: settings that are valid but do not do what they say
 * (@l4fleet/config ineffectiveSettings). They are written anyway; the nodes never refuse them.
 */
import { type Fleet, formatProblem, ineffectiveSettings, MAX_PROBLEMS_REPORTED } from '@l4fleet/config';

/**
 * `PATH: MESSAGE` for each setting of `after` that does not do what it says; with `before`, only new ones. At most
 * MAX_PROBLEMS_REPORTED, as problems are, and a line counting the rest: a fleet of a thousand VIPs each with a
 * profile its forwarding ignores must not print a thousand notes.
 */
export function ineffectiveNotes(after: Fleet, before?: Fleet): string[] {
  const old = new Set(before ? ineffectiveSettings(before).map(formatProblem) : []);
  const notes = ineffectiveSettings(after)
    .map(formatProblem)
    .filter((n) => !old.has(n));
  if (notes.length <= MAX_PROBLEMS_REPORTED) return notes;
  const rest = (notes.length - MAX_PROBLEMS_REPORTED).toLocaleString('en-US');
  return [...notes.slice(0, MAX_PROBLEMS_REPORTED), `... and ${rest} more notes`];
}
