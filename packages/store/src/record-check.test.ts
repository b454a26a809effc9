import { describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import { decodeDrain, decodeNodeRecord, decodeNodeStatus, decodePoolStatus, shown } from './record-check.js';

const family = 'v1/status/';
const key = `${family}lb1`;
const status = {
  tables: { '198.51.100.1:80/tcp': 'c0ffee' },
  announced: ['198.51.100.1:80/tcp'],
  bgp: { '198.18.0.1': 'established' },
  failStatic: false,
  desiredRevision: 42,
  at: '2026-12-06T10:00:00.000Z',
};
const decode = (rec: object) => decodeNodeStatus(key, Buffer.from(JSON.stringify(rec)), family);

describe('store record-check - node status', () => {
  test('the BFD states of RFC 5880 are kept as written', () => {
    const bfd = { '198.18.0.1': 'up', '198.18.0.2': 'down', '198.18.0.3': 'init', '198.18.0.4': 'shutdown' };
    expect(decode({ ...status, bfd }).bfd).toEqual(bfd);
  });

  test('rolling upgrade - a BFD state this version does not know keeps the record and reads as unknown', () => {
    // A newer agent may name a state this reader has no word for: its tables, routes and revision still count (the
    // operator guide's upgrade waits on `announced: []`), only that peer's state is unknown here.
    const rec = decode({ ...status, bfd: { '198.18.0.1': 'up', '198.18.0.2': 'admin-down' }, newerField: 1 });
    expect(rec).toMatchObject({ ...status, newerField: 1 });
    expect(rec.bfd).toEqual({ '198.18.0.1': 'up', '198.18.0.2': 'unknown' });
  });

  test('a peer key named __proto__ keeps its own entry (read as the JSON text it came from)', () => {
    const rec = decode({ ...status, bfd: JSON.parse('{"__proto__": "admin-down", "198.18.0.1": "up"}') });
    expect(Object.keys(rec.bfd ?? {})).toEqual(['__proto__', '198.18.0.1']);
    expect(Object.getOwnPropertyDescriptor(rec.bfd, '__proto__')?.value).toBe('unknown');
  });

  test('a bfd that is not a map of strings is still refused, naming the field and the value', () => {
    expect(() => decode({ ...status, bfd: ['up'] })).toThrow(/^v1\/status\/lb1: bfd: \["up"\] is not an object$/);
    expect(() => decode({ ...status, bfd: { '198.18.0.1': 7 } })).toThrow(
      /^v1\/status\/lb1: bfd\.198\.18\.0\.1: 7 is not a string$/,
    );
  });
});

/** JSON text of a list nested `depth` deep: JSON.parse reads it, JSON.stringify of it overflows the stack. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('store record-check - a value nested thousands deep', () => {
  // shown() stringified the whole value: a RangeError escaped as no StoreError (INTERNAL, no key), so the agent did not
  // count, log or fall back for the record.
  test.each([
    ['node record', 'nodes/lb1', `{"name":${nested(20_000)}}`, 'name: [[[', () => decodeNodeRecord],
    ['drain flag', 'drains/lb1', `{"drained":${nested(20_000)}}`, 'drained: [[[', () => decodeDrain],
    [
      'node status',
      'status/lb1',
      `{"tables":{},"bgp":{},"announced":[],"failStatic":${nested(20_000)},"desiredRevision":1}`,
      'failStatic: [[[',
      () => decodeNodeStatus,
    ],
    [
      'decided member',
      'decided/web',
      `{"pool":"web","members":{"a":${nested(20_000)}}}`,
      'members.a: [[[',
      () => decodePoolStatus,
    ],
    [
      'decided ramp',
      'decided/web',
      `{"pool":"web","members":{"a":"up"},"ramp":{"a":${nested(20_000)}}}`,
      'ramp.a: [[[',
      () => decodePoolStatus,
    ],
    ['decided pool', 'decided/web', `{"pool":${nested(20_000)},"members":{}}`, 'pool: [[[', () => decodePoolStatus],
  ])('%s: refused as INVALID_RECORD naming the key and the field, the value cut short', (_what, k, json, field, fn) => {
    const decoder = fn() as (key: string, value: Buffer, family: string) => unknown;
    let err: unknown;
    try {
      decoder(k, Buffer.from(json), k.slice(0, k.indexOf('/') + 1));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('INVALID_RECORD');
    expect((err as StoreError).key).toBe(k);
    expect((err as Error).message).toContain(`${k}: ${field}`);
    expect((err as Error).message.length).toBeLessThan(300);
  });

  test('shown() of any JSON value is a short text', () => {
    expect(shown(JSON.parse(nested(50_000)))).toMatch(/^\[\[\[.{0,60}$/);
    expect(shown(undefined)).toBe('undefined');
    expect(shown({ a: 1 })).toBe('{"a":1}');
  });

  test('shown() escapes C1 controls and DEL as JSON escapes C0: a hostile value puts no raw CSI into logs', () => {
    // JSON.stringify escapes U+0000-U+001F only; U+009B is CSI, read by terminals as ESC [.
    expect(shown('a\u009b2J\u007f\u0085\u001bz')).toBe('"a\\u009b2J\\u007f\\u0085\\u001bz"');
    expect(shown({ 'k\u009b': ['\u009f'] })).toBe('{"k\\u009b":["\\u009f"]}');
    // In a refused record's message too, the key and field named.
    const err = (() => {
      try {
        decodeNodeRecord('nodes/lb1', Buffer.from(JSON.stringify({ name: 'lb1', address: '\u009b2J' })), 'nodes/');
      } catch (e) {
        return e as Error;
      }
      throw new Error('not refused');
    })();
    expect(err.message).toContain('address: "\\u009b2J" is not an IP address');
    expect(err.message).not.toMatch(/[\u007f-\u009f]/);
  });
});

describe('store record-check - map keys in a refused field', () => {
  // A record's map key (a member's name, a BGP peer) is part of the field a refusal names: raw, an ESC, CSI or newline
  // in it reached agent logs and l4fleet's errors as the value's did.
  const hostile = 'a\u001b]0;x\u0007\u009b2J\nforged';
  const json = (o: object) => Buffer.from(JSON.stringify(o));
  test.each([
    [
      'decided member',
      () => decodePoolStatus('decided/web', json({ pool: 'web', members: { [hostile]: 'sideways' } })),
    ],
    [
      'decided ramp',
      () =>
        decodePoolStatus('decided/web', json({ pool: 'web', members: { [hostile]: 'up' }, ramp: { [hostile]: 7 } })),
    ],
    ['bgp peer', () => decodeNodeStatus(key, json({ ...status, bgp: { [hostile]: 1 } }), family)],
    ['probe failure', () => decodeNodeStatus(key, json({ ...status, probeFailures: { [hostile]: 1 } }), family)],
  ])('%s: the key is escaped in the field named', (_what, decodeIt) => {
    expect(decodeIt).toThrow(StoreError);
    expect(decodeIt).toThrow('a\\u001b]0;x\\u0007\\u009b2J\\u000aforged');
    expect(decodeIt).not.toThrow(/\p{Cc}/u);
  });
});

describe('store record-check - a hostile etcd key', () => {
  // A hand-written key under the fleet prefix can hold any bytes: the message starts with the key, escaped.
  test('a node key with control characters: refused, the key escaped in the message', () => {
    const hostileKey = 'nodes/a\u009b2J\u001b]0;x\u0007';
    const decodeIt = () => decodeNodeRecord(hostileKey, Buffer.from('{}'), 'nodes/');
    expect(decodeIt).toThrow(StoreError);
    expect(decodeIt).toThrow(
      'nodes/a\\u009b2J\\u001b]0;x\\u0007: key: "a\\u009b2J\\u001b]0;x\\u0007" is not a node name',
    );
    expect(decodeIt).not.toThrow(/\p{Cc}/u);
  });
});

describe('store record-check - node record', () => {
  const nodeKey = 'nodes/lb1';
  const decodeNode = (rec: object) => decodeNodeRecord(nodeKey, Buffer.from(JSON.stringify(rec)), 'nodes/');
  const good = { name: 'lb1', address: '198.18.0.11', version: '1.2.3', registeredAt: '2026-12-06T10:00:00.000Z' };

  test.each(['198.18.0.11', '2001:db8::11'])('an address %s (what the agent writes: node.address) is kept', (a) => {
    expect(decodeNode({ ...good, address: a })).toEqual({ ...good, address: a });
  });

  test('a record without address or version is kept (both optional)', () => {
    expect(decodeNode({ name: 'lb1', registeredAt: good.registeredAt })).toEqual({
      name: 'lb1',
      registeredAt: good.registeredAt,
    });
  });

  // `get nodes` prints the address for people: an escape sequence in it would retitle or clear their terminal.
  test.each([
    ['an escape sequence', '198.18.0.11\u001b]0;owned\u0007', 'address: "198.18.0.11\\u001b]0;owned\\u0007"'],
    ['a newline', '198.18.0.11\nlb9  up', 'address: "198.18.0.11\\nlb9  up"'],
    ['a host name', 'lb1.example', 'address: "lb1.example"'],
    ['a number', 7, 'address: 7'],
  ])('an address that is %s is refused as INVALID_RECORD naming the field and the value', (_, address, message) => {
    expect(() => decodeNode({ ...good, address })).toThrow(
      expect.objectContaining({
        name: 'StoreError',
        code: 'INVALID_RECORD',
        message: `${nodeKey}: ${message} is not an IP address`,
      }),
    );
  });

  test('a version holding a control character is refused, naming the field', () => {
    expect(() => decodeNode({ ...good, version: '1.2.3\u009b2J' })).toThrow(
      expect.objectContaining({ code: 'INVALID_RECORD', message: expect.stringMatching(/^nodes\/lb1: version: /) }),
    );
  });
});
