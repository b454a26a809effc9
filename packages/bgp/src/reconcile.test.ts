import { describe, expect, test } from 'vitest';
import { fromApiPeer, type HeldPath, toApiPeer } from './codec.js';
import { planPaths, planPeers } from './reconcile.js';
import { canonicalAdvertisement, canonicalAdvertisements, canonicalPeer, canonicalPeers } from './validate.js';

/** A local path as gobgpd lists it: ours (identifier 0, nothing foreign) unless told otherwise. */
const adv = (
  prefix: string,
  nextHop = '198.18.2.1',
  communities: string[] = [],
  identifier = 0,
  foreign: string[] = [],
): HeldPath => ({ ...canonicalAdvertisement({ prefix, nextHop, communities }), identifier, foreign });

describe('reconcile - paths', () => {
  test('already right: nothing to send (agent restart does not flap)', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    expect(planPaths([adv('198.51.100.1/32')], desired)).toEqual({ announce: [], withdraw: [], duplicates: [] });
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

  // `gobgp global rib add P nexthop X identifier 5`: a second local path. Withdrawn by its identifier; ours
  // (identifier 0) is left alone, so the route does not flap at every resync.
  test.each([
    ['another next hop', '198.18.2.7'],
    ['the same attributes', '198.18.2.1'],
  ])('a second local path for our prefix with %s: only the stray (by its identifier) goes', (_name, nextHop) => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const plan = planPaths([adv('198.51.100.1/32'), adv('198.51.100.1/32', nextHop, [], 5)], desired);
    expect(plan.announce).toEqual([]);
    expect(plan.withdraw.map((a) => [a.nextHop, a.identifier])).toEqual([[nextHop, 5]]);
  });

  test('only a stray path for our prefix: ours announced, the stray withdrawn by its identifier', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const plan = planPaths([adv('198.51.100.1/32', '198.18.2.1', [], 5)], desired);
    expect(plan.announce.map((a) => a.prefix)).toEqual(['198.51.100.1/32']);
    expect(plan.withdraw.map((a) => a.identifier)).toEqual([5]);
  });

  test('our identifier with our next hop and communities but a foreign attribute (AS path, origin): re-announced', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const plan = planPaths([adv('198.51.100.1/32', '198.18.2.1', [], 0, ['AS_PATH 64999', 'origin 2'])], desired);
    expect(plan.announce.map((a) => a.prefix)).toEqual(['198.51.100.1/32']);
    expect(plan.withdraw).toEqual([]);
  });

  // Another gRPC client's AddPath with no_implicit_withdraw: a second local path of identifier 0 beside ours. gobgpd
  // matches a withdrawal by source and identifier alone (and ListPath gives no UUID), so neither can be withdrawn
  // without maybe taking ours: the plan names it for the speaker to report, and sends nothing for it.
  test('a second identifier-0 local path beside ours (no_implicit_withdraw): reported as a duplicate, ours kept', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const theirs = adv('198.51.100.1/32', '198.18.2.7', [], 0, ['no_implicit_withdraw']);
    const plan = planPaths([theirs, adv('198.51.100.1/32')], desired);
    expect(plan).toEqual({ announce: [], withdraw: [], duplicates: [theirs] });
  });

  test('such a path alone in our place: ours announced over it (AddPath replaces it), nothing reported', () => {
    const desired = canonicalAdvertisements([{ prefix: '198.51.100.1/32', nextHop: '198.18.2.1' }]);
    const plan = planPaths([adv('198.51.100.1/32', '198.18.2.7', [], 0, ['no_implicit_withdraw'])], desired);
    expect(plan.announce.map((a) => a.prefix)).toEqual(['198.51.100.1/32']);
    expect(plan.duplicates).toEqual([]);
  });

  test('undesired prefixes: every local path of them goes, each by its identifier', () => {
    const plan = planPaths([adv('198.51.100.2/32'), adv('198.51.100.2/32', '198.18.2.7', [], 9)], new Map());
    expect(plan.withdraw.map((a) => a.identifier)).toEqual([0, 9]);
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

  // gobgpd's ListPeer reports an established session's real source address in transport.local_address
  // (GoBGP 3.10), configured or not: with no localAddress configured that must not look like a change.
  const established = (address: string, localAddress: string) => {
    const row = toApiPeer(canonicalPeer({ address, asn: 65000 }));
    return fromApiPeer({ ...row, transport: { ...row.transport, local_address: localAddress } });
  };

  test.each([
    ['198.18.2.254', '198.18.2.11'],
    ['2001:db8:2::fe', '2001:db8:2::b'],
  ])('no localAddress configured, established from %s via %s: untouched', (address, source) => {
    expect(planPeers([established(address, source)], canonicalPeers([{ address, asn: 65000 }]))).toEqual({
      add: [],
      remove: [],
    });
  });

  test('localAddress configured, session from another source: deleted and added again', () => {
    const desired = canonicalPeers([{ address: '198.18.2.254', asn: 65000, localAddress: '198.18.2.12' }]);
    const plan = planPeers([established('198.18.2.254', '198.18.2.11')], desired);
    expect(plan.remove).toEqual(['198.18.2.254']);
    expect(plan.add).toHaveLength(1);
  });
});

// gobgpd cannot say whether a reported source was configured or chosen by the kernel; the speaker knows what it
// configured (`sent`, by peer address) and compares localAddress against that. A reload removing a localAddress
// left gobgpd on the old source while BFD moved to the new one.
describe('reconcile - peers: the localAddress this speaker configured', () => {
  const address = '198.18.2.254';
  const peerWith = (localAddress: string) => ({ address, asn: 65000, ...(localAddress ? { localAddress } : {}) });
  const established = (source: string, localAddress = '') => {
    const row = toApiPeer(canonicalPeer(peerWith(localAddress)));
    return fromApiPeer({ ...row, transport: { ...row.transport, local_address: source } });
  };
  const want = (localAddress = '') => canonicalPeers([peerWith(localAddress)]);
  const sent = (localAddress: string) => new Map([[address, localAddress]]);
  const recreated = { add: [canonicalPeer({ address, asn: 65000 })], remove: [address] };

  test('removed at reload, the session not up (gobgpd reports it as configured): deleted and added again', () => {
    const held = [...canonicalPeers([{ address, asn: 65000, localAddress: '198.18.3.11' }]).values()].map((p) =>
      fromApiPeer(toApiPeer(p)),
    );
    expect(planPeers(held, want(), sent('198.18.3.11'))).toEqual(recreated);
  });

  test('removed at reload, the session up from it: deleted and added again', () => {
    expect(planPeers([established('198.18.3.11', '198.18.3.11')], want(), sent('198.18.3.11'))).toEqual(recreated);
  });

  test('added, the same address the kernel chose for the session: deleted and added again (gobgpd binds it)', () => {
    const plan = planPeers([established('198.18.3.11')], want('198.18.3.11'), sent(''));
    expect(plan.remove).toEqual([address]);
    expect(plan.add.map((p) => p.localAddress)).toEqual(['198.18.3.11']);
  });

  test.each([
    ['none configured, none wanted, the kernel chose a source', '198.18.2.11', '', ''],
    ['configured, still wanted, the session from it', '198.18.3.11', '198.18.3.11', '198.18.3.11'],
  ])('%s: untouched', (_name, source, configured, wanted) => {
    expect(planPeers([established(source, configured)], want(wanted), sent(configured))).toEqual({
      add: [],
      remove: [],
    });
  });

  test('configured, still wanted, but the session from another source (changed by hand): deleted and added again', () => {
    const plan = planPeers([established('198.18.2.11', '198.18.3.11')], want('198.18.3.11'), sent('198.18.3.11'));
    expect(plan.remove).toEqual([address]);
  });

  // A speaker started against a running gobgpd (agent restart) did not configure its peers and cannot tell the two
  // apart: it leaves an established session alone rather than reset every peer at every agent restart.
  test('a peer this speaker did not configure, none wanted, the session from some source: untouched', () => {
    expect(planPeers([established('198.18.3.11', '198.18.3.11')], want(), new Map())).toEqual({
      add: [],
      remove: [],
    });
  });
});
