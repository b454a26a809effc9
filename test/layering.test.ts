/**
 * The layers of README.md "Architecture" and docs/design/0001, checked on the source: each package's non-test
 * files import only the packages below it (through their public index, never `@l4fleet/x/...` or a relative path
 * into another package), never lab/ or test/, and declare in package.json what they import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** What each package may import. daemons for the agent: its FRR bfdd helpers only (0001, 0010). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  maglev: [],
  process: [],
  config: ['maglev'],
  store: ['config', 'maglev'],
  bgp: ['config', 'maglev', 'process'],
  dataplane: ['config', 'maglev', 'process'],
  daemons: ['process'],
  agent: ['bgp', 'config', 'daemons', 'dataplane', 'maglev', 'process', 'store'],
  dashboard: ['agent', 'config', 'maglev', 'store'],
  cli: ['agent', 'bgp', 'config', 'dashboard', 'dataplane', 'maglev', 'process', 'store'],
};

/** Test files, test helpers and contract suites run beside the code but are not the product. */
const NOT_PRODUCT = /(\.test\.ts|\.test-helper\.ts|\.d\.ts)$|\/contract\//;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => !NOT_PRODUCT.test(f));
}

/**
 * Module specifiers of every import, re-export, dynamic import and `import x = require()`, as TypeScript's own
 * pre-processor finds them (a regex missed imports whose braces hold a comment with a quote or a semicolon).
 */
function specifiers(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** Every layering breach of one package, as `file: specifier (why)`. */
export function breaches(pkg: string, files: readonly { path: string; text: string }[]): string[] {
  const allowed = new Set(ALLOWED[pkg] ?? []);
  const pkgDir = join(ROOT, 'packages', pkg);
  const out: string[] = [];
  for (const { path, text } of files) {
    for (const spec of specifiers(text)) {
      const where = `${relative(ROOT, path)}: ${spec}`;
      const scoped = /^@l4fleet\/([^/]+)(\/.*)?$/.exec(spec);
      if (scoped) {
        if (scoped[2] !== undefined) out.push(`${where} (a deep import: use the package's index)`);
        if (scoped[1] !== pkg && !allowed.has(scoped[1]!)) out.push(`${where} (not a layer below ${pkg})`);
        continue;
      }
      if (!spec.startsWith('.')) continue;
      const target = resolve(join(path, '..'), spec);
      if (!target.startsWith(`${pkgDir}/`)) out.push(`${where} (a relative path out of packages/${pkg})`);
    }
  }
  return out;
}

const PACKAGES = readdirSync(join(ROOT, 'packages')).filter((p) => p in ALLOWED);

describe('layering', () => {
  test('every package is in the layer table', () => {
    const listed = readdirSync(join(ROOT, 'packages'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(listed.filter((n) => !(n in ALLOWED))).toEqual([]);
  });

  test.each(PACKAGES)('packages/%s imports only the layers below it, through their index', (pkg) => {
    const files = sourceFiles(join(ROOT, 'packages', pkg, 'src')).map((path) => ({
      path,
      text: readFileSync(path, 'utf8'),
    }));
    expect(files.length).toBeGreaterThan(0);
    expect(breaches(pkg, files)).toEqual([]);
  });

  test.each(PACKAGES)('packages/%s declares in package.json each l4fleet package it imports', (pkg) => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    const declared = new Set(Object.keys(manifest.dependencies ?? {}));
    const imported = new Set<string>();
    for (const path of sourceFiles(join(ROOT, 'packages', pkg, 'src'))) {
      for (const spec of specifiers(readFileSync(path, 'utf8'))) {
        const m = /^(@l4fleet\/[^/]+)/.exec(spec);
        if (m && m[1] !== `@l4fleet/${pkg}`) imported.add(m[1]!);
      }
    }
    expect([...imported].filter((d) => !declared.has(d))).toEqual([]);
  });

  // The check itself: each kind of breach is found (a check that finds nothing would pass any tree).
  test('a higher layer, a deep import, a path into lab/ and into another package are each reported', () => {
    const path = join(ROOT, 'packages', 'store', 'src', 'x.ts');
    const text = [
      "import { startAgent } from '@l4fleet/agent';",
      "import { slotOf } from '@l4fleet/maglev/src/slot.js';",
      "import { up } from '../../../lab/src/index.js';",
      "export { run } from '../../process/src/run.js';",
      "const m = await import('@l4fleet/cli');",
      "import {\n  a, // don't; it's\n} from '@l4fleet/dashboard';",
      "import x = require('@l4fleet/bgp');",
      "import { ok } from './ok.js';",
      "import { Pool } from '@l4fleet/config';",
    ].join('\n');
    expect(breaches('store', [{ path, text }])).toEqual([
      'packages/store/src/x.ts: @l4fleet/agent (not a layer below store)',
      "packages/store/src/x.ts: @l4fleet/maglev/src/slot.js (a deep import: use the package's index)",
      'packages/store/src/x.ts: ../../../lab/src/index.js (a relative path out of packages/store)',
      'packages/store/src/x.ts: ../../process/src/run.js (a relative path out of packages/store)',
      'packages/store/src/x.ts: @l4fleet/cli (not a layer below store)',
      'packages/store/src/x.ts: @l4fleet/dashboard (not a layer below store)',
      'packages/store/src/x.ts: @l4fleet/bgp (not a layer below store)',
    ]);
  });
});
