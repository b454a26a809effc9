import { loadSync } from '@grpc/proto-loader';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { ApiObject } from './codec.js';
import { BgpError } from './errors.js';
import {
  isLearntPolicy,
  isLearntPolicyAssigned,
  LEARNT_POLICY_NAME,
  type LearntPolicyClient,
  LearntPolicyKeeper,
  learntRoutesPolicy,
} from './learnt-policy.js';
import { GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS } from './proto.js';

describe('learnt-routes policy - what counts as in place', () => {
  const ours = learntRoutesPolicy();
  const accepting = learntRoutesPolicy();
  accepting.statements[0].actions = { route_action: 'ACCEPT' };
  test.each([
    [{ policies: [ours], default_action: 'ACCEPT' }, true],
    [undefined, false],
    [{ policies: [], default_action: 'NONE' }, false],
    // A default REJECT would drop our own routes (gobgpd runs the global import policy on local paths too).
    [{ policies: [ours], default_action: 'REJECT' }, false],
    [{ policies: [ours, { name: 'by-hand' }], default_action: 'ACCEPT' }, false],
    [{ policies: [{ name: 'by-hand' }], default_action: 'ACCEPT' }, false],
    // The assignment holds the policy object: a changed one of our name there is not ours.
    [{ policies: [accepting], default_action: 'ACCEPT' }, false],
    [{ policies: [{ name: LEARNT_POLICY_NAME }], default_action: 'ACCEPT' }, false],
  ])('assignment %j: %s', (assignment, inPlace) => {
    expect(isLearntPolicyAssigned(assignment)).toBe(inPlace);
  });

  test('the policy rejects routes of both types learnt from peers, and only those', () => {
    expect(learntRoutesPolicy().statements).toEqual([
      expect.objectContaining({
        conditions: { route_type: 'ROUTE_TYPE_INTERNAL' },
        actions: { route_action: 'REJECT' },
      }),
      expect.objectContaining({
        conditions: { route_type: 'ROUTE_TYPE_EXTERNAL' },
        actions: { route_action: 'REJECT' },
      }),
    ]);
    expect(isLearntPolicy(learntRoutesPolicy())).toBe(true);
    expect(isLearntPolicy(undefined)).toBe(false);
    const accepting = learntRoutesPolicy();
    accepting.statements[1].actions = { route_action: 'ACCEPT' };
    expect(isLearntPolicy(accepting)).toBe(false);
    const local = learntRoutesPolicy();
    local.statements[0].conditions = { route_type: 'ROUTE_TYPE_LOCAL' };
    expect(isLearntPolicy(local)).toBe(false);
  });
});

/**
 * A ListPolicyResponse as gobgpd 3.10 sends it, encoded by hand with the field numbers of its api/gobgp.proto
 * (not the subset's), so a field the subset lacks is on the wire as it would be from gobgpd.
 */
namespace wire {
  const varint = (n: bigint): number[] => {
    const out: number[] = [];
    let v = BigInt.asUintN(64, n); // int32 -1 goes out sign-extended, 10 bytes, as protobuf encodes it
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  };
  const tag = (field: number, type: 0 | 2) => varint(BigInt((field << 3) | type));
  export const num = (field: number, n: number) => [...tag(field, 0), ...varint(BigInt(n))];
  export const msg = (field: number, body: number[]) => [...tag(field, 2), ...varint(BigInt(body.length)), ...body];
  export const str = (field: number, s: string) => msg(field, [...Buffer.from(s)]);

  /** Our policy as gobgpd lists it (rpki_result -1: no RPKI condition), `extra` added to the first statement. */
  export function listPolicyResponse(extra: { conditions?: number[]; actions?: number[] } = {}): Buffer {
    const statement = (name: string, routeType: number, first: boolean) =>
      msg(2, [
        ...str(1, name),
        // Conditions: route_type = 8, rpki_result = 7 (gobgpd's toStatementApi always sets it)
        ...msg(2, [...num(8, routeType), ...num(7, -1), ...((first && extra.conditions) || [])]),
        // Actions: route_action = 1 (REJECT = 2)
        ...msg(3, [...num(1, 2), ...((first && extra.actions) || [])]),
      ]);
    const policy = [
      ...str(1, LEARNT_POLICY_NAME),
      ...statement(`${LEARNT_POLICY_NAME}-internal`, 1, true),
      ...statement(`${LEARNT_POLICY_NAME}-external`, 2, false),
    ];
    return Buffer.from(msg(1, policy));
  }
}

/** Decodes as GobgpClient does: the subset's ListPolicy response deserializer. */
function decodeWithSubset(buf: Buffer): ApiObject {
  const api = loadSync(GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS)['apipb.GobgpApi'] as unknown as Record<
    string,
    { responseDeserialize: (b: Buffer) => ApiObject }
  >;
  return api.ListPolicy?.responseDeserialize(buf).policy as ApiObject;
}

describe('learnt-routes policy - a hand-added condition or action is seen through the subset', () => {
  const matchSet = (field: number) => wire.msg(field, [...wire.num(1, 2), ...wire.str(2, 'by-hand')]);
  test("gobgpd's listing of our policy, as it is, counts as intact", () => {
    expect(isLearntPolicy(decodeWithSubset(wire.listPolicyResponse()))).toBe(true);
  });
  // gobgpd 3.10 api/gobgp.proto: Conditions and Actions field numbers.
  test.each([
    ['prefix_set', matchSet(1)],
    ['neighbor_set', matchSet(2)],
    ['neighbor_set, empty message', wire.msg(2, [])],
    ['as_path_length', wire.msg(3, [...wire.num(1, 1), ...wire.num(2, 3)])],
    ['as_path_set', matchSet(4)],
    ['community_set', matchSet(5)],
    ['ext_community_set', matchSet(6)],
    ['rpki_result valid', wire.num(7, 2)],
    ['large_community_set', matchSet(9)],
    ['next_hop_in_list', wire.str(10, '10.0.0.1/32')],
    ['afi_safi_in', wire.msg(11, [...wire.num(1, 1), ...wire.num(2, 1)])],
  ])('condition %s narrowing the REJECT: not intact', (_, extra) => {
    expect(isLearntPolicy(decodeWithSubset(wire.listPolicyResponse({ conditions: extra })))).toBe(false);
  });
  test.each([
    ['community', wire.msg(2, [...wire.num(1, 0), ...wire.str(2, '65000:1')])],
    ['med', wire.msg(3, [...wire.num(1, 1), ...wire.num(2, 10)])],
    ['as_prepend', wire.msg(4, [...wire.num(1, 65000), ...wire.num(2, 2)])],
    ['ext_community', wire.msg(5, [...wire.num(1, 0), ...wire.str(2, 'rt:65000:1')])],
    ['nexthop', wire.msg(6, wire.num(2, 1))],
    ['local_pref', wire.msg(7, wire.num(1, 200))],
    ['large_community', wire.msg(8, [...wire.num(1, 0), ...wire.str(2, '65000:1:1')])],
    ['nexthop, empty message', wire.msg(6, [])],
  ])('action %s: not intact', (_, extra) => {
    expect(isLearntPolicy(decodeWithSubset(wire.listPolicyResponse({ actions: extra })))).toBe(false);
  });
});

describe('learnt-routes policy - a refusal blocks nothing and is logged once', () => {
  /** gobgpd with our policy deleted by hand and one of its statements held by another policy. */
  function stuckGobgpd(refusal: BgpError) {
    let added = false;
    const client = {
      globalImportAssignment: async () => ({ policies: [learntRoutesPolicy()], default_action: 'ACCEPT' }),
      getPolicy: async () => (added ? learntRoutesPolicy() : undefined),
      hasStatement: async () => true,
      deleteStatement: async () => {
        throw refusal;
      },
      addPolicy: async () => {
        added = true;
      },
      deletePolicy: async () => undefined,
      setGlobalImportPolicy: async () => undefined,
      softResetIn: async () => undefined,
    } satisfies LearntPolicyClient;
    return client;
  }

  test('a refusal resolves, logged once per run of failures; recovery logged', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const inUse = new BgpError('GOBGP_REJECTED', 'gobgpd DeleteStatement x: rejected (in use)');
    const client: LearntPolicyClient = stuckGobgpd(inUse);
    const keeper = new LearntPolicyKeeper(client, log);
    for (let i = 0; i < 3; i++) await keeper.apply();
    expect(lines.filter((l) => l.event === 'importPolicyFailed')).toHaveLength(1);
    client.deleteStatement = async () => undefined;
    await keeper.apply();
    await keeper.apply();
    expect(lines.map((l) => l.event)).toEqual(['importPolicyFailed', 'importPolicySet', 'importPolicyRecovered']);
  });

  test('an unreachable gobgpd is thrown, for the reconnect', async () => {
    const gone = new BgpError('UNAVAILABLE', 'gobgpd DeleteStatement x: unreachable', { retryable: true });
    const keeper = new LearntPolicyKeeper(stuckGobgpd(gone), pino({ level: 'silent' }));
    await expect(keeper.apply()).rejects.toBe(gone);
  });
});
