/** For this package's tests only (excluded from the build): the nft table layout the plan tests render against. */
import type { Layout } from './ruleset.js';

export const TEST_LAYOUT: Layout = {
  table: 'l4t',
  iface: 'eth0',
  ifaceMac: '02:00:00:00:00:01',
  flowTimeoutTcpS: 300,
  flowTimeoutUdpS: 30,
  flowTableSize: 1024,
};
