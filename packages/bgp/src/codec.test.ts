import { loadSync } from '@grpc/proto-loader';
import { describe, expect, test } from 'vitest';
import { fromApiPath, fromApiPeer, isLocalPath, peerAddress, sessionState, toApiPath, toApiPeer } from './codec.js';
import { GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS } from './proto.js';
import { canonicalAdvertisement, canonicalPeer } from './validate.js';

// Serialize and parse through the real protobuf codec, as the wire does: checks the Any packing and type URLs.
const definition = loadSync(GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS);
const service = definition['apipb.GobgpApi'] as unknown as Record<
  string,
  { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): Record<string, unknown> }
>;
function wire<T>(method: string, request: T): Record<string, unknown> {
  const m = service[method] as (typeof service)[string];
  return m.requestDeserialize(m.requestSerialize(request));
}

describe('codec - paths', () => {
  test.each([
    { prefix: '198.51.100.10/32', nextHop: '198.18.0.1', communities: ['65535:0', '65001:1'], med: 7, localPref: 200 },
    { prefix: '2001:db8::10/128', nextHop: '2001:db8::1' },
  ])('%o survives the wire both ways', (input) => {
    const adv = canonicalAdvertisement(input);
    const decoded = wire('AddPath', { table_type: 'GLOBAL', path: toApiPath(adv) }).path as Record<string, unknown>;
    expect((decoded.nlri as Record<string, unknown>)['@type']).toBe('type.googleapis.com/apipb.IPAddressPrefix');
    expect(fromApiPath(decoded)).toEqual({ ...adv, identifier: 0, foreign: [] });
  });

  // This speaker never sets no_implicit_withdraw: a path with it was added by another gRPC client, and can sit beside
  // ours with the same identifier 0.
  test('a path added with no_implicit_withdraw is not ours', () => {
    const adv = canonicalAdvertisement({ prefix: '198.51.100.10/32', nextHop: '198.18.0.1' });
    const path = { ...toApiPath(adv), no_implicit_withdraw: true };
    const decoded = wire('AddPath', { table_type: 'GLOBAL', path }).path as Record<string, unknown>;
    expect(fromApiPath(decoded)).toMatchObject({ identifier: 0, foreign: ['no_implicit_withdraw'] });
  });

  // `gobgp global rib add P nexthop X identifier 5` is a second local path for P: reconcile must tell it from ours
  // (identifier 0) and withdraw it by its identifier, or DeletePath removes ours instead.
  test('the path identifier is read back, and a withdrawal carries it through the wire', () => {
    const adv = canonicalAdvertisement({ prefix: '198.51.100.10/32', nextHop: '198.18.0.1' });
    const stray = wire('AddPath', { table_type: 'GLOBAL', path: { ...toApiPath(adv), identifier: 5 } }).path;
    expect(fromApiPath(stray as Record<string, unknown>)).toMatchObject({ identifier: 5, foreign: [] });
    const request = wire('DeletePath', { table_type: 'GLOBAL', path: toApiPath(adv, true, 5) });
    expect((request.path as Record<string, unknown>).identifier).toBe(5);
    expect(toApiPath(adv).identifier ?? 0).toBe(0);
  });

  // A local path with our next hop and communities but attributes this speaker never sends is not ours: kept, the
  // router would see another AS path or origin and the node would silently leave ECMP.
  test.each([
    ['origin incomplete', [{ '@type': 'type.googleapis.com/apipb.OriginAttribute', origin: 2 }], ['origin 2']],
    [
      'an AS path',
      [{ '@type': 'type.googleapis.com/apipb.AsPathAttribute', segments: [{ type: 'AS_SEQUENCE', numbers: [64999] }] }],
      ['AS_PATH 64999'],
    ],
    [
      'a large community (not in the subset: read by its type URL)',
      [{ type_url: 'type.googleapis.com/apipb.LargeCommunitiesAttribute', value: Buffer.alloc(0) }],
      ['LargeCommunitiesAttribute'],
    ],
  ])('%s marks the path foreign', (_name, extra, foreign) => {
    const adv = canonicalAdvertisement({ prefix: '198.51.100.10/32', nextHop: '198.18.0.1', communities: ['65001:1'] });
    const base = toApiPath(adv);
    const kept = (base.pattrs as Record<string, unknown>[]).filter(
      (a) => !(a['@type'] === 'type.googleapis.com/apipb.OriginAttribute' && extra.some((e) => 'origin' in e)),
    );
    const decoded = fromApiPath({ ...base, pattrs: [...kept, ...extra] });
    expect(decoded).toMatchObject({ nextHop: '198.18.0.1', communities: ['65001:1'], foreign });
  });

  test('an empty AS path (what a local path may carry) is not foreign', () => {
    const adv = canonicalAdvertisement({ prefix: '198.51.100.10/32', nextHop: '198.18.0.1' });
    const base = toApiPath(adv);
    const empty = { '@type': 'type.googleapis.com/apipb.AsPathAttribute', segments: [] };
    expect(fromApiPath({ ...base, pattrs: [...base.pattrs, empty] })?.foreign).toEqual([]);
  });

  test('communities are 32-bit values (RFC 1997): 65535:0 is 0xFFFF0000', () => {
    const path = toApiPath(
      canonicalAdvertisement({ prefix: '198.51.100.1', nextHop: '198.18.0.1', communities: ['65535:0'] }),
    );
    expect(path.pattrs).toContainEqual({
      '@type': 'type.googleapis.com/apipb.CommunitiesAttribute',
      communities: [0xffff0000],
    });
  });

  test('IPv6 next hop read back from MP_REACH_NLRI (how gobgpd lists IPv6 paths)', () => {
    const path = {
      nlri: { '@type': 'type.googleapis.com/apipb.IPAddressPrefix', prefix: '2001:db8::10', prefix_len: 128 },
      family: { afi: 'AFI_IP6', safi: 'SAFI_UNICAST' },
      pattrs: [
        { '@type': 'type.googleapis.com/apipb.MpReachNLRIAttribute', next_hops: ['2001:db8::1'], nlris: [] },
        { type_url: 'type.googleapis.com/apipb.SomethingUnknown', value: Buffer.alloc(0) },
      ],
    };
    expect(fromApiPath(path)).toMatchObject({ prefix: '2001:db8::10/128', nextHop: '2001:db8::1', family: 6 });
  });

  test('withdrawals carry is_withdraw (gobgpd 3.10 wants a next hop otherwise)', () => {
    const adv = canonicalAdvertisement({ prefix: '198.51.100.1', nextHop: '198.18.0.1' });
    expect(toApiPath(adv, true).is_withdraw).toBe(true);
    expect(fromApiPath(toApiPath(adv, true))).toBeUndefined();
  });

  test('local paths have a nil neighbour', () => {
    expect(isLocalPath({ neighbor_ip: '<nil>' })).toBe(true);
    expect(isLocalPath({ neighbor_ip: '' })).toBe(true);
    expect(isLocalPath({ neighbor_ip: '198.18.0.254' })).toBe(false);
  });

  test('a peer whose session state has a nil address is named by its configured address', () => {
    const conf = { neighbor_address: '198.18.0.254' };
    expect(peerAddress({ state: { neighbor_address: '<nil>' }, conf })).toBe('198.18.0.254');
    expect(peerAddress({ state: { neighbor_address: '198.18.0.253' }, conf })).toBe('198.18.0.253');
    expect(peerAddress({ state: { neighbor_address: '<nil>' } })).toBe('');
  });
});

describe('codec - peers', () => {
  test('a peer survives the wire and reads back equal (so reconcile sees no change)', () => {
    const peer = canonicalPeer({
      address: '198.18.0.254',
      asn: 65000,
      password: 'secret',
      localAddress: '198.18.0.1',
      port: 1179,
      ebgpMultihopTtl: 2,
    });
    const decoded = wire('AddPeer', { peer: toApiPeer(peer) }).peer as Record<string, unknown>;
    expect(fromApiPeer(decoded)).toEqual(peer);
  });

  test('both unicast families are enabled', () => {
    const api = toApiPeer(canonicalPeer({ address: '198.18.0.254', asn: 65000 }));
    expect(api.afi_safis.map((a: { config: { family: { afi: string } } }) => a.config.family.afi)).toEqual([
      'AFI_IP',
      'AFI_IP6',
    ]);
  });

  test.each([
    ['ESTABLISHED', 'established'],
    ['ACTIVE', 'active'],
    ['UNKNOWN', 'unknown'],
    [undefined, 'unknown'],
  ])('session state %s is %s', (raw, state) => {
    expect(sessionState(raw)).toBe(state);
  });
});
