// Builds native/bin/l4fleet-nft-batch from native/nft-batch/*.c (see the comment at the top of its main.c for why
// it exists). Without a C compiler the build only warns: the nftables driver then writes every change with
// `nft -f`, which is correct but slower for large slot deltas. A compiler that rejects the source fails the build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const srcDir = fileURLToPath(new URL('../native/nft-batch/', import.meta.url));
const outDir = fileURLToPath(new URL('../native/bin/', import.meta.url));
const out = `${outDir}l4fleet-nft-batch`;

if (process.platform !== 'linux') process.exit(0);
const inputs = readdirSync(srcDir)
  .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
  .sort()
  .map((f) => srcDir + f);
const sources = inputs.filter((f) => f.endsWith('.c'));
/** Rebuild when the program is missing or older than any source or header. */
const stale = !existsSync(out) || inputs.some((i) => statSync(i).mtimeMs > statSync(out).mtimeMs);
if (!stale) process.exit(0);
const compiler = [process.env.CC, 'cc', 'gcc'].find(
  (c) => c && spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0,
);
if (compiler === undefined) {
  console.warn(
    '@l4fleet/dataplane: no C compiler (cc/gcc): l4fleet-nft-batch not built; the nftables driver will write ' +
      'slot deltas with nft (slower). Install gcc and libc6-dev, then rebuild.',
  );
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });
const r = spawnSync(compiler, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, ...sources], { stdio: 'inherit' });
process.exit(r.status ?? 1);
