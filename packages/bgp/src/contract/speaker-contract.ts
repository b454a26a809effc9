/**
 * What every Speaker does, as seen through the Speaker interface and the set it announces: one suite, run against
 * the fake (fake-speaker.test.ts) and against GobgpSpeaker driving a real gobgpd (gobgp-speaker.contract.int.test.ts),
 * so the fake other packages test with cannot drift from the real thing. Test code only (not built into dist).
 *
 * Peers are passive and gobgpd does not listen (listenPort -1): the suite sends no packet anywhere.
 */
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Advertisement, PeerEvent, Speaker } from '../types.js';
import type { CanonicalAdvertisement } from '../validate.js';

export interface SpeakerHarness {
  readonly speaker: Speaker;
  /** What the speaker's BGP side originates now (gobgpd's local RIB, the fake's set), sorted by prefix. */
  announced(): Promise<readonly CanonicalAdvertisement[]>;
  /** Ends the speaker and whatever the harness started; called once after each test. */
  dispose(): Promise<void>;
}

const GLOBAL = { asn: 65001, routerId: '198.18.0.11', listenPort: -1 } as const;
const PEER = { address: '198.18.0.254', asn: 65000, passive: true } as const;
const V4: Advertisement = { prefix: '198.51.100.10/32', nextHop: '198.18.0.11', communities: ['65001:100'], med: 10 };
const V6: Advertisement = { prefix: '2001:db8::10/128', nextHop: '2001:db8:ffff::11' };

function view(list: readonly CanonicalAdvertisement[]) {
  return list.map((a) => ({ prefix: a.prefix, nextHop: a.nextHop, communities: [...a.communities], med: a.med }));
}

export function speakerContract(name: string, start: () => Promise<SpeakerHarness>): void {
  describe(`speaker contract - ${name}`, () => {
    let h: SpeakerHarness;
    beforeEach(async () => {
      h = await start();
      await h.speaker.ensureGlobal(GLOBAL);
    });
    afterEach(async () => {
      await h.dispose();
    });

    test('announces exactly the desired set, canonical, both families', async () => {
      await h.speaker.setAdvertisements([V6, { ...V4, prefix: '198.51.100.10' }]);
      expect(view(await h.announced())).toEqual([
        { prefix: '198.51.100.10/32', nextHop: '198.18.0.11', communities: ['65001:100'], med: 10 },
        { prefix: '2001:db8::10/128', nextHop: '2001:db8:ffff::11', communities: [], med: undefined },
      ]);
      await h.speaker.setAdvertisements([{ prefix: '2001:DB8:0::10/128', nextHop: '2001:db8:ffff::11' }]);
      expect((await h.announced()).map((a) => a.prefix)).toEqual(['2001:db8::10/128']);
      await h.speaker.setAdvertisements([]);
      expect(await h.announced()).toEqual([]);
    });

    test('the same set again changes nothing; an attribute change is applied in place', async () => {
      await h.speaker.setAdvertisements([V4]);
      await h.speaker.setAdvertisements([V4]);
      expect(view(await h.announced())).toHaveLength(1);
      await h.speaker.setAdvertisements([{ ...V4, communities: ['65001:100', '65535:0'] }]);
      expect(view(await h.announced())).toEqual([
        { prefix: V4.prefix, nextHop: V4.nextHop, communities: ['65001:100', '65535:0'], med: 10 },
      ]);
    });

    test('a refused set changes nothing and names the field', async () => {
      await h.speaker.setAdvertisements([V4]);
      await expect(
        h.speaker.setAdvertisements([{ prefix: '198.51.100.0/24', nextHop: '198.18.0.11' }]),
      ).rejects.toMatchObject({
        name: 'BgpError',
        code: 'PREFIX_INVALID',
      });
      await expect(h.speaker.setAdvertisements([{ prefix: V4.prefix, nextHop: '2001:db8::1' }])).rejects.toThrow(
        /advertisements\[0\]/,
      );
      expect((await h.announced()).map((a) => a.prefix)).toEqual([V4.prefix]);
    });

    test('a different AS or router id for a running speaker is GLOBAL_CONFLICT; the same one is fine', async () => {
      await h.speaker.ensureGlobal(GLOBAL);
      await expect(h.speaker.ensureGlobal({ ...GLOBAL, asn: 65099 })).rejects.toMatchObject({
        code: 'GLOBAL_CONFLICT',
      });
      await expect(h.speaker.ensureGlobal({ ...GLOBAL, routerId: '198.18.0.12' })).rejects.toMatchObject({
        code: 'GLOBAL_CONFLICT',
      });
    });

    test('peers: exactly the desired set, each down until a session comes up', async () => {
      await h.speaker.setPeers([PEER, { address: '2001:db8::fe', asn: 65002, passive: true }]);
      const states = (await h.speaker.peerStates()).sort((a, b) => a.address.localeCompare(b.address));
      expect(states.map((p) => [p.address, p.asn])).toEqual([
        ['198.18.0.254', 65000],
        ['2001:db8::fe', 65002],
      ]);
      for (const p of states) {
        expect(p.state).not.toBe('established');
        expect(p.advertised).toBe(0);
        expect(p.negotiatedHoldTimeS).toBe(0);
      }
      await h.speaker.setPeers([PEER]);
      expect((await h.speaker.peerStates()).map((p) => p.address)).toEqual(['198.18.0.254']);
      await expect(h.speaker.setPeers([{ address: '198.18.0.300', asn: 65000 }])).rejects.toMatchObject({
        code: 'PEER_ADDRESS_INVALID',
      });
      expect((await h.speaker.peerStates()).map((p) => p.address)).toEqual(['198.18.0.254']);
    });

    test('close ends every event iterator; later calls are CLOSED', async () => {
      const events: PeerEvent[] = [];
      const collecting = (async () => {
        for await (const e of h.speaker.peerEvents()) events.push(e);
      })();
      await h.speaker.close();
      await collecting;
      await expect(h.speaker.setAdvertisements([V4])).rejects.toMatchObject({ code: 'CLOSED' });
    });
  });
}
