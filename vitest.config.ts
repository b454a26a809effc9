import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

const ALL = ['packages/*/src/**/*.test.ts', 'lab/src/**/*.test.ts', 'test/**/*.test.ts'];
// Files that assert the issues' time bounds end to end (failover pauses, interval x fall + 1 s, etcd outage, lab
// sessions and ECMP within their ready timeouts, watch latency; speed targets are the bench's). They run after
// everything else, one at a time, so another file's daemons and flows never share the two cores with them: a
// bound they miss is then the product's, not the test run's.
const TIMED = [
  'test/lab-e2e.int.test.ts',
  'test/lab-bpf-routed.int.test.ts',
  'test/lab-second-chance.int.test.ts',
  'test/lab-member-down.int.test.ts',
  'test/lab-nat.int.test.ts',
  'test/quickstart.int.test.ts',
  'test/etcd-failover.int.test.ts',
  'test/lab-faults.int.test.ts',
  'test/lab-bfd.int.test.ts',
  'test/dashboard-lab.int.test.ts',
  'test/lab-netns.int.test.ts',
  'test/lab-docker.int.test.ts',
  'test/lab-docker-faults.int.test.ts',
  'test/agent.int.test.ts',
  'test/dataplane/nftables.int.test.ts',
  'test/dataplane/bpf.int.test.ts',
  'test/dataplane/second-chance.int.test.ts',
  'test/dashboard.int.test.ts',
  'packages/store/src/etcd-store.int.test.ts',
];

// The store against etcd in containers and the lab's faults in Docker: collected only in the run that brings a
// Docker engine (L4FLEET_TEST_RUNTIME=containers, scripts/test.sh), so the whole suite reports them run, never skipped.
const CONTAINERS =
  process.env.L4FLEET_TEST_RUNTIME === 'containers'
    ? []
    : ['packages/store/src/etcd-containers.int.test.ts', 'test/lab-docker-faults.int.test.ts'];

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
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        // Real-daemon and namespace tests start processes; two workers fit the 2-core machines.
        test: {
          name: 'main',
          include: ALL,
          exclude: [...configDefaults.exclude, ...TIMED, ...CONTAINERS],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'timed',
          include: TIMED,
          exclude: [...configDefaults.exclude, ...CONTAINERS],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
