/** Where the lab's own helper programs live, whether it runs from dist/ (built) or src/ (vitest, tsx). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');

/** lab/src/runtime or lab/dist/runtime -> the repository root. */
export function repoRoot(): string {
  return join(here, '..', '..', '..');
}

/**
 * argv that runs one of the lab's entry points (`identity/main`, `flows/worker-main`) in a child process: node on the
 * built .js, or node with tsx on the .ts source when the lab itself runs from source.
 */
export function scriptArgv(entry: string): string[] {
  const base = join(here, '..', entry);
  if (!fromSource && existsSync(`${base}.js`)) return [process.execPath, `${base}.js`];
  return [process.execPath, '--import', 'tsx', `${base}.ts`];
}
