/** Why a fleet file was refused. Stable strings: callers and tests switch on them. */
/** `TOO_LARGE`: a size bound of limits.ts (bytes, counts) was exceeded; nothing else was checked. */
export type ConfigErrorCode = 'INVALID' | 'SYNTAX' | 'TOO_LARGE' | 'HASH_SEED_MISSING' | 'VIP_NOT_FOUND';

/** One problem in a fleet file: where (`vips[0].port`) and what (`70000 is not a port (1-65535)`). */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** The one error type of @l4fleet/config; `problems` lists every problem found, not just the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];

  constructor(code: ConfigErrorCode, problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(problems.map(formatProblem).join('\n'), options);
    this.code = code;
    this.problems = problems;
  }
}

/** `vips[0].port: 70000 is not a port (1-65535)`; a problem with no path is just its message. */
export function formatProblem(p: ConfigProblem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
