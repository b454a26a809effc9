import { describe, expect, test } from 'vitest';
import { planPaths, planPeers } from './reconcile.js';
import { canonicalAdvertisement, canonicalAdvertisements, canonicalPeer, canonicalPeers } from './validate.js';

const adv = (prefix: string, nextHop = '198.18.2.1', communities: string[] = []) =>
  canonicalAdvertisement({ prefix, nextHop, communities });

describe('reconcile - paths', () => {
  test('already right: nothing to send (agent restart does not flap)', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    expect(planPaths([adv('198.51.100.1/32')], desired)).toEqual({ announce: [], withdraw: [] });
  });

  test.each([
    ['new prefix', [], { prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }],
    ['next hop changed', [adv('198.51.100.1/32', '198.18.2.9')], { prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }],
    [
      'community added',
      [adv('198.51.100.1/32')],
      { prefix: '198.51.100.1/32', nextHop: '198.18.2.1', communities: ['65535:0'] },
    ],
    ['med added', [adv('198.51.100.1/32')], { prefix: '198.51.100.1/32', nextHop: '198.18.2.1', med: 5 }],
  ])('%s: announced in place, nothing withdrawn', (_name, current, want) => {
    const plan = planPaths(current, canonicalAdvertisements([want]));
    expect(plan.announce.map((a) => a.prefix)).toEqual(['198.51.100.1/32']);
    expect(plan.withdraw).toEqual([]);
  });

  test('undesired prefixes are withdrawn, sorted', () => {
    const plan = planPaths(
      [adv('198.51.100.2/32'), adv('2001:db8::1/128', '2001:db8::ff'), adv('198.51.100.1/32')],
      new Map(),
    );
    expect(plan.withdraw.map((a) => a.prefix)).toEqual(['198.51.100.1/32', '198.51.100.2/32', '2001:db8::1/128']);
  });

  test('two local paths for one prefix: ours stays, the stray one goes', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const plan = planPaths([adv('198.51.100.1/32'), adv('198.51.100.1/32', '198.18.2.7')], desired);
    expect(plan.withdraw.map((a) => a.nextHop)).toEqual(['198.18.2.7']);
  });
});

describe('reconcile - peers', () => {
  const peer = (patch = {}) => canonicalPeer({ address: '198.18.2.254', asn: 65000, ...patch });

  test('same settings: untouched', () => {
    expect(planPeers([peer()], canonicalPeers([{ address: '198.18.2.254', asn: 65000 }]))).toEqual({
      add: [],
      remove: [],
    });
  });

  test.each([{ password: 'new' }, { holdTimeS: 9 }, { asn: 65002 }, { port: 1179 }, { localAddress: '198.18.2.1' }])(
    'changed %o: deleted and added again',
    (patch) => {
      const plan = planPeers([peer()], canonicalPeers([{ address: '198.18.2.254', asn: 65000, ...patch }]));
      expect(plan.remove).toEqual(['198.18.2.254']);
      expect(plan.add).toHaveLength(1);
    },
  );

  test('missing added, extra removed', () => {
    const plan = planPeers(
      [peer({ address: '198.18.2.253' })],
      canonicalPeers([{ address: '198.18.2.254', asn: 65000 }]),
    );
    expect(plan).toEqual({ add: [peer()], remove: ['198.18.2.253'] });
  });
});
