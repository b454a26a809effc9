/**
 * What the lab images were built from, so the Docker runtime never runs images of an older tree without saying so
 * (after a `git pull` or an edit and `npm run build`, images built before would run the old agent). build-images.sh
 * labels every image with two digests computed here, and the runtime computes them again from the tree it runs from:
 * - `l4fleet.tree`: the runtime files scripts/stage-runtime.sh copies into the images (package files, each package's
 *   dist, proto and public files, the native binaries, the lab's dist), with node_modules stood for by npm's hidden
 *   lockfile (node_modules/.package-lock.json: the installed packages and versions) instead of its ~100 MB;
 * - `l4fleet.recipe`: the images' Dockerfiles and entrypoints (deploy/docker/<image>/), absent from an installed copy
 *   (scripts/install.sh stages only the runtime files), which then checks the tree digest only.
 * Each is a sha256 over the sorted relative paths and the sha256 of each file (a symlink: its target): the same files
 * give the same digest on any machine. A few MB of dist: tens of milliseconds.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const IMAGE_TREE_LABEL = 'l4fleet.tree';
export const IMAGE_RECIPE_LABEL = 'l4fleet.recipe';

/** The checkout (or installed copy) this module runs from: lab/{src,dist}/runtime/ is three levels below it. */
export const LAB_ROOT = resolve(import.meta.dirname, '..', '..', '..');

/** The digests an image built from `root` carries; recipe undefined where `root` has no deploy/docker. */
export interface ImageTree {
  readonly tree: string;
  readonly recipe: string | undefined;
}

/** Not staged (stage-runtime.sh's excludes) or not code: left out of the tree digest. */
const SKIPPED = /\.(map|tsbuildinfo)$/;

/** Relative paths of the files below `dir` (relative to `root`), recursively; nothing when it does not exist. */
function filesBelow(root: string, dir: string, skip: RegExp = SKIPPED): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(abs, { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesBelow(root, rel, skip));
    else if (!skip.test(entry.name)) out.push(rel);
  }
  return out;
}

/** The directories of packages/ (each workspace package), sorted. */
function packageDirs(root: string): string[] {
  const abs = join(root, 'packages');
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => `packages/${e.name}`)
    .sort();
}

/** The runtime files the images hold (stage-runtime.sh's list), node_modules by its hidden lockfile. */
export function treeFiles(root: string): string[] {
  const files = ['package.json', 'node_modules/.package-lock.json', 'lab/package.json'];
  for (const p of packageDirs(root)) {
    files.push(`${p}/package.json`);
    for (const sub of ['dist', 'proto', 'public']) files.push(...filesBelow(root, `${p}/${sub}`));
  }
  files.push(...filesBelow(root, 'packages/dataplane/native/bin'), ...filesBelow(root, 'lab/dist'));
  return files.filter((f) => existsSync(join(root, f)));
}

/** The images' recipes: every file of deploy/docker/<image>/ (not the build's own staging dir, .stage). */
export function recipeFiles(root: string): string[] {
  const abs = join(root, 'deploy', 'docker');
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .flatMap((e) => filesBelow(root, `deploy/docker/${e.name}`, /^$/));
}

/** sha256 over `files` (relative to `root`): each path with the sha256 of its content or its symlink's target. */
export function digestOf(root: string, files: readonly string[]): string {
  const all = createHash('sha256');
  for (const f of [...new Set(files)].sort()) {
    const abs = join(root, f);
    const what = lstatSync(abs).isSymbolicLink()
      ? `-> ${readlinkSync(abs)}`
      : createHash('sha256').update(readFileSync(abs)).digest('hex');
    all.update(`${f}\0${what}\n`);
  }
  return all.digest('hex');
}

/** The digests of the tree at `root` (default: the one the lab runs from). */
export function imageTree(root: string = LAB_ROOT): ImageTree {
  const recipe = recipeFiles(root);
  return { tree: digestOf(root, treeFiles(root)), recipe: recipe.length > 0 ? digestOf(root, recipe) : undefined };
}

/**
 * What differs between an image's labels and the tree's digests, one phrase per label; empty when nothing does. An
 * image without the labels (built before build-images.sh set them) is of an unknown tree: stale too.
 */
export function imageTreeDifferences(labels: Readonly<Record<string, string>>, current: ImageTree): string[] {
  const out: string[] = [];
  const differs = (label: string, want: string) => {
    const has = labels[label];
    if (has !== want) out.push(`${label}=${has === undefined || has === '' ? '(none)' : has}, this tree's ${want}`);
  };
  differs(IMAGE_TREE_LABEL, current.tree);
  if (current.recipe !== undefined) differs(IMAGE_RECIPE_LABEL, current.recipe);
  return out;
}
