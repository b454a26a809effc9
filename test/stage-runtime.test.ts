/**
 * scripts/stage-runtime.sh copies what the installed services read at run time (scripts/install.sh's /opt/l4fleet,
 * the images' /opt/l4fleet): the dashboard reads its page from packages/dashboard/public at start, so a staged tree
 * without it is a dashboard that exits ENOENT and is restarted for ever.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const built = existsSync(join(ROOT, 'packages/cli/dist/bin.js')) && existsSync(join(ROOT, 'packages/dashboard/dist'));

describe('scripts/stage-runtime.sh', () => {
  test.skipIf(!built)('stage-runtime - the staged dashboard loads every asset from the staged tree', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-stage-'));
    try {
      const dest = join(dir, 'opt');
      execFileSync('bash', [join(ROOT, 'scripts/stage-runtime.sh'), dest], { stdio: 'pipe' });
      const assetsJs = join(dest, 'packages/dashboard/dist/assets.js');
      const { ASSET_PATHS, loadAssets } = (await import(pathToFileURL(assetsJs).href)) as {
        ASSET_PATHS: readonly string[];
        loadAssets: () => Promise<ReadonlyMap<string, { body: Buffer }>>;
      };
      const assets = await loadAssets();
      expect([...assets.keys()]).toEqual(ASSET_PATHS);
      for (const [route, a] of assets) expect(a.body.length, route).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
