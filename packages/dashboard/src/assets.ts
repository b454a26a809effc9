/**
 * The page and its assets, served from the package itself (public/) and from the bundled chart library (uPlot,
 * a dependency of this package): nothing is loaded from a CDN, so the page works offline. A fixed name -> file
 * map: no request path ever reaches the file system.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

const require = createRequire(import.meta.url);
const publicFile = (name: string) => fileURLToPath(new URL(`../public/${name}`, import.meta.url));

const FILES: Readonly<Record<string, { path: () => string; type: string }>> = {
  '/': { path: () => publicFile('index.html'), type: 'text/html; charset=utf-8' },
  '/assets/app.js': { path: () => publicFile('app.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/dom.js': { path: () => publicFile('dom.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/render.js': { path: () => publicFile('render.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/activity.js': { path: () => publicFile('activity.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/timeline-list.js': { path: () => publicFile('timeline-list.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/charts.js': { path: () => publicFile('charts.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/style.css': { path: () => publicFile('style.css'), type: 'text/css; charset=utf-8' },
  '/assets/uplot.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript' },
  '/assets/uplot.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css' },
};

export const ASSET_PATHS: readonly string[] = Object.keys(FILES);

/** Reads every asset once (at start: a missing file fails the start, not a page load later). */
export async function loadAssets(): Promise<ReadonlyMap<string, Asset>> {
  const out = new Map<string, Asset>();
  for (const [route, f] of Object.entries(FILES)) out.set(route, { body: await readFile(f.path()), type: f.type });
  return out;
}
