import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// Tests import the workspace packages from source, so `npm test` needs no build of the package under test.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@l4fleet\/test-support\/(.*)$/, replacement: `${root}test/support/$1.ts` },
      { find: /^@l4fleet\/lab$/, replacement: `${root}lab/src/index.ts` },
      { find: /^@l4fleet\/([a-z]+)$/, replacement: `${root}packages/$1/src/index.ts` },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'lab/src/**/*.test.ts', 'test/**/*.test.ts'],
    // Real-daemon and namespace tests start processes; two workers fit the 2-core machines.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
