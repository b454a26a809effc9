import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { IMAGE_RECIPE_LABEL, IMAGE_TREE_LABEL, imageTree, imageTreeDifferences } from './image-tree.js';

/** A checkout with a built package, the lab's dist, node_modules and the images' recipes. */
function checkout(root: string): void {
  const files: Record<string, string> = {
    'package.json': '{}',
    'node_modules/.package-lock.json': '{"packages":{}}',
    'node_modules/pino/index.js': 'pino',
    'lab/package.json': '{}',
    'lab/dist/index.js': 'lab',
    'packages/agent/package.json': '{}',
    'packages/agent/dist/agent.js': 'agent v1',
    'packages/agent/dist/agent.js.map': 'map v1',
    'packages/agent/src/agent.ts': 'source v1',
    'packages/store/proto/rpc.proto': 'proto',
    'deploy/docker/agent/Dockerfile': 'FROM l4fleet/base:bookworm',
    'deploy/docker/agent/entrypoint.sh': 'exec node',
    'deploy/docker/.stage/node': 'staged by a build',
  };
  for (const [path, text] of Object.entries(files)) write(root, path, text);
}

function write(root: string, path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

describe('image tree - the digests the lab images are labelled with', () => {
  let a: string;
  let b: string;
  beforeEach(() => {
    a = mkdtempSync(join(tmpdir(), 'l4f-image-tree-'));
    b = mkdtempSync(join(tmpdir(), 'l4f-image-tree-'));
    checkout(a);
    checkout(b);
  });
  afterEach(() => {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  });

  test('image tree - the same files give the same digests in another directory', () => {
    expect(imageTree(b)).toEqual(imageTree(a));
    expect(imageTree(a).tree).toMatch(/^[0-9a-f]{64}$/);
  });

  test.each([
    ['a built file', 'packages/agent/dist/agent.js', 'agent v2'],
    ['a new built file', 'lab/dist/new.js', 'new'],
    ['the installed packages', 'node_modules/.package-lock.json', '{"packages":{"x":{}}}'],
    ['a proto file', 'packages/store/proto/rpc.proto', 'proto v2'],
  ])('image tree - %s changes the tree digest, not the recipe', (_what, path, text) => {
    write(b, path, text);
    expect(imageTree(b).tree).not.toBe(imageTree(a).tree);
    expect(imageTree(b).recipe).toBe(imageTree(a).recipe);
  });

  test.each([
    ['a source map', 'packages/agent/dist/agent.js.map'],
    ['a source file (the images get dist only)', 'packages/agent/src/agent.ts'],
    ['a package inside node_modules (its lockfile stands for it)', 'node_modules/pino/index.js'],
    ["the build's staging dir", 'deploy/docker/.stage/node'],
  ])('image tree - %s changes neither digest', (_what, path) => {
    write(b, path, 'changed');
    expect(imageTree(b)).toEqual(imageTree(a));
  });

  test('image tree - a Dockerfile or entrypoint changes the recipe digest', () => {
    write(b, 'deploy/docker/agent/entrypoint.sh', 'exec node --inspect');
    expect(imageTree(b).recipe).not.toBe(imageTree(a).recipe);
    expect(imageTree(b).tree).toBe(imageTree(a).tree);
  });

  test('image tree - a symlink counts by its target', () => {
    symlinkSync('agent.js', join(a, 'packages/agent/dist/link.js'));
    symlinkSync('other.js', join(b, 'packages/agent/dist/link.js'));
    expect(imageTree(b).tree).not.toBe(imageTree(a).tree);
  });

  test('image tree - an installed copy without deploy/docker has no recipe digest', () => {
    rmSync(join(b, 'deploy'), { recursive: true });
    expect(imageTree(b)).toEqual({ tree: imageTree(a).tree, recipe: undefined });
  });
});

describe('image tree - what differs between an image and the tree', () => {
  const current = { tree: 'aaa', recipe: 'bbb' };

  test.each([
    ['the same tree', { [IMAGE_TREE_LABEL]: 'aaa', [IMAGE_RECIPE_LABEL]: 'bbb' }, current, []],
    [
      'another tree',
      { [IMAGE_TREE_LABEL]: 'old', [IMAGE_RECIPE_LABEL]: 'bbb' },
      current,
      ["l4fleet.tree=old, this tree's aaa"],
    ],
    ['no labels', {}, current, ["l4fleet.tree=(none), this tree's aaa", "l4fleet.recipe=(none), this tree's bbb"]],
    [
      'no recipe to compare (an installed copy)',
      { [IMAGE_TREE_LABEL]: 'aaa', [IMAGE_RECIPE_LABEL]: 'x' },
      { tree: 'aaa', recipe: undefined },
      [],
    ],
  ])('image tree - %s', (_what, labels, tree, expected) => {
    expect(imageTreeDifferences(labels, tree)).toEqual(expected);
  });
});
