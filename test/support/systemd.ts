/**
 * The project's systemd units read as systemd would, so tests run exactly what the units run: a unit's `Key=`
 * line, an EnvironmentFile, `$VAR` expansion, and the capabilities a unit leaves its service. No systemd here: the
 * tests run the commands themselves (as root, limited with setpriv).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The text of `deploy/systemd/<name>`. */
export function unitFile(name: string): string {
  return readFileSync(`${ROOT}deploy/systemd/${name}`, 'utf8');
}

/** The value of the unit's `key=` line; throws when it has none. */
export function unitValue(unit: string, key: string): string {
  const line = new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];
  if (line === undefined) throw new Error(`the unit has no ${key}=`);
  return line;
}

/** A systemd EnvironmentFile: KEY=VALUE lines, `#` comments, one pair of double quotes around a value removed. */
export function environmentFile(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env.set(m[1] as string, (m[2] as string).replace(/^"(.*)"$/, '$1'));
  }
  return env;
}

/** A command line's words with each unbraced `$VAR` split at whitespace into zero or more words (systemd.service). */
export function expandCommand(line: string, env: ReadonlyMap<string, string>): string[] {
  return line
    .split(/\s+/)
    .filter((w) => w !== '')
    .flatMap((w) => (w.startsWith('$') ? (env.get(w.slice(1)) ?? '').split(/\s+/).filter((x) => x !== '') : [w]));
}

/** A unit's capability list (`CAP_X CAP_Y`) as a setpriv set: `-all,+x,+y`. */
function capSet(unit: string, key: string): string {
  const caps = (new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1] ?? '').split(/\s+/).filter((c) => c !== '');
  return ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}

/**
 * setpriv arguments that start a command as the unit would, from root: with DynamicUser=yes as an unprivileged user
 * (nobody stands in for the dynamic one) keeping only the unit's AmbientCapabilities (ambient, inheritable and
 * bounding sets, so they survive the change of user); else as root limited to its CapabilityBoundingSet (for root,
 * exec keeps only the bounding set; an empty one leaves none) with its SupplementaryGroups.
 */
export function setprivAsUnit(unit: string): string[] {
  if (/^DynamicUser=yes$/m.test(unit)) {
    const caps = capSet(unit, 'AmbientCapabilities');
    const user = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    return ['setpriv', ...user, `--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=${caps}`];
  }
  // An empty `CapabilityBoundingSet=` is systemd's "no capabilities at all"; a missing one is "every capability".
  if (!/^CapabilityBoundingSet=/m.test(unit)) throw new Error('the unit runs as root without a CapabilityBoundingSet');
  const groups = (/^SupplementaryGroups=(.*)$/m.exec(unit)?.[1] ?? '')
    .trim()
    .split(/\s+/)
    .filter((g) => g !== '');
  return [
    'setpriv',
    `--bounding-set=${capSet(unit, 'CapabilityBoundingSet')}`,
    ...(groups.length > 0 ? [`--groups=${groups.join(',')}`] : []),
  ];
}
