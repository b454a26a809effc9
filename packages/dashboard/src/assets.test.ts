import { describe, expect, test } from 'vitest';
import { ASSET_PATHS, assetsBuild, loadPageAssets, withBuild } from './assets.js';
import { DashboardError } from './errors.js';

describe('assets', () => {
  const files = (app: string) =>
    new Map([
      ['/', Buffer.from('<meta id="build" name="l4fleet-build" content="">')],
      ['/assets/app.js', Buffer.from(app)],
    ]);

  test('assets - the build is a digest of every served file: the same files the same build, one byte more another', () => {
    expect(assetsBuild(files('a'))).toBe(assetsBuild(files('a')));
    expect(assetsBuild(files('a'))).toMatch(/^[0-9a-f]{16}$/);
    expect(assetsBuild(files('ab'))).not.toBe(assetsBuild(files('a')));
    // A file moved to another route is another page.
    const moved = new Map([...files('a')].map(([k, v]) => [k === '/assets/app.js' ? '/assets/app2.js' : k, v]));
    expect(assetsBuild(moved)).not.toBe(assetsBuild(files('a')));
  });

  test('assets - index.html is served with the build in its meta; a page without the meta fails the start', async () => {
    const { assets, build } = await loadPageAssets();
    expect([...assets.keys()]).toEqual(ASSET_PATHS);
    expect(build).toMatch(/^[0-9a-f]{16}$/);
    expect(assets.get('/')?.body.toString()).toContain(`<meta id="build" name="l4fleet-build" content="${build}">`);
    expect((await loadPageAssets()).build).toBe(build);
    expect(() => withBuild('<head></head>', build)).toThrow(DashboardError);
    expect(() => withBuild('<head></head>', build)).toThrow(/public\/index\.html: no <meta id="build"/);
  });
});
