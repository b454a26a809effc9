/**
 * The page and its assets, served from the package itself (public/) and from the bundled chart library (uPlot,
 * a dependency of this package): nothing is loaded from a CDN, so the page works offline. A fixed name -> file
 * map: no request path ever reaches the file system.
 *
 * The files' build (a digest of them all) is written into index.html and sent in the stream's `hello`: a page left
 * open while the dashboard restarted on another build reloads itself (public/app.js), where its scripts, loaded
 * once, would draw the new views with the old render code (`disagree [object Object]` after b2ebf68 changed a
 * member's health).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DashboardError } from './errors.js';

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

/** The element of public/index.html that carries the build, as the file has it (empty: filled in when read). */
export const BUILD_META = '<meta id="build" name="l4fleet-build" content="">';

export interface PageAssets {
  readonly assets: ReadonlyMap<string, Asset>;
  /** Digest of the files as read (assetsBuild); index.html carries it. */
  readonly build: string;
}

/**
 * 16 hex digits of SHA-256 over every route and its file, in route order: another byte in any script, style or
 * the page, or a file at another route, is another build; the same files give the same build in every process.
 */
export function assetsBuild(files: ReadonlyMap<string, Buffer>): string {
  const hash = createHash('sha256');
  for (const [route, body] of files) {
    hash.update(`${route}\0${body.length}\0`);
    hash.update(body);
  }
  return hash.digest('hex').slice(0, 16);
}

/** `html` with the build in its BUILD_META; throws when the page has none (it could never learn its build). */
export function withBuild(html: string, build: string): string {
  if (!html.includes(BUILD_META)) {
    throw new DashboardError('ASSETS_INVALID', `public/index.html: no ${BUILD_META} to carry the build ${build}`);
  }
  return html.replace(BUILD_META, BUILD_META.replace('content=""', `content="${build}"`));
}

/** Reads every asset once (at start: a missing file fails the start, not a page load later), and their build. */
export async function loadPageAssets(): Promise<PageAssets> {
  const files = new Map<string, Buffer>();
  for (const [route, f] of Object.entries(FILES)) files.set(route, await readFile(f.path()));
  const build = assetsBuild(files);
  const assets = new Map<string, Asset>();
  for (const [route, body] of files) {
    const served = route === '/' ? Buffer.from(withBuild(body.toString('utf8'), build)) : body;
    assets.set(route, { body: served, type: FILES[route]?.type ?? 'application/octet-stream' });
  }
  return { assets, build };
}

/** The assets of loadPageAssets alone. */
export async function loadAssets(): Promise<ReadonlyMap<string, Asset>> {
  return (await loadPageAssets()).assets;
}
