import { describe, expect, test } from 'vitest';
import { decodeNodeStatus } from './record-check.js';

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
