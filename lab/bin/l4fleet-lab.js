#!/usr/bin/env node
// The `l4fleet-lab` command as npm installs it. It lives outside dist/ on purpose: npm links a bin at `npm ci` only if
// its file exists then (dist/ is built later), and tsc rewrites dist/bin.js without the execute bit on every build.
// This file is in git with mode 755 and only loads the build.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(`l4fleet-lab: ${fileURLToPath(main)} is missing: build first (npm run build)\n`);
  process.exit(1);
}
await import(main.href);
