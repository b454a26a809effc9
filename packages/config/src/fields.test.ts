import { describe, expect, test } from 'vitest';
import { listField, Problems, sectionField, showValue } from './fields.js';

const SECRET = 'N3wS3cret';

/** The problems one field check reports, as `path: message`. */
function messages(check: (p: Problems) => unknown): string[] {
  const p = new Problems();
  check(p);
  return p.list.map((x) => `${x.path}: ${x.message}`);
}

describe('config fields - a value of the wrong shape is described by its kind, never by what it holds', () => {
  test.each([
    // `- ` forgotten before a peer: the list is a map, its password one of its values.
    ['a map', { address: '198.18.2.1', asn: 65000, password: SECRET }, 'a map (keys address, asn, password)'],
    ['an empty map', {}, 'a map (no keys)'],
    ['a number', 5, '5'],
    ['true', true, 'true'],
  ])('listField: %s', (_what, value, shown) => {
    expect(messages((p) => listField(p, 'bgp.peers', value))).toEqual([`bgp.peers: ${shown} is not a list`]);
  });

  test.each([
    ['a string', `token ${SECRET}`, 'a string'],
    ['a list', ['198.18.2.1', 65000, SECRET], 'a list of 3 items'],
    ['a list of one', [SECRET], 'a list of 1 item'],
    ['a number', 5, '5'],
    ['false', false, 'false'],
  ])('sectionField: %s', (_what, value, shown) => {
    expect(messages((p) => sectionField(p, 'nats', value, ['token']))).toEqual([`nats: ${shown} is not an object`]);
  });

  test('a map of many long keys is cut short', () => {
    const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}${'x'.repeat(200)}`, SECRET]));
    const [message] = messages((p) => listField(p, 'l', many));
    expect(message).not.toContain(SECRET);
    expect(message).toMatch(/\.\.\. 20 keys\) is not a list$/);
    expect(message?.length).toBeLessThan(1_000);
  });
});

describe('config fields - showValue', () => {
  test.each(['password', 'token', 'secret', 'Password', 'clientSecret', 'nats_token'])(
    'hides the value under a key named %s, at any depth',
    (key) => {
      expect(showValue({ [key]: SECRET })).toBe(`{"${key}":"<hidden>"}`);
      expect(showValue([{ peer: { [key]: SECRET } }])).toBe(`[{"peer":{"${key}":"<hidden>"}}]`);
    },
  );

  test('other values are shown as JSON', () => {
    expect(showValue({ address: '198.18.2.1', asn: 65000 })).toBe('{"address":"198.18.2.1","asn":65000}');
    expect(showValue(undefined)).toBe('missing');
  });

  test('DEL and C1 controls are escaped as \\uXXXX, as JSON escapes C0: a hostile value puts no raw CSI into logs', () => {
    // JSON.stringify escapes U+0000-U+001F only; U+009B is CSI, read by terminals as ESC [.
    expect(showValue('a\u009b2J\u007f\u0085\u001bz')).toBe('"a\\u009b2J\\u007f\\u0085\\u001bz"');
    expect(showValue({ 'k\u009b': ['\u009f'] })).toBe('{"k\\u009b":["\\u009f"]}');
    expect(showValue('\u009b'.repeat(500))).not.toMatch(/\p{Cc}/u);
    expect(showValue('\u0080\u00a0')).toBe('"\\u0080\u00a0"'); // U+00A0 (no-break space) is not a control
  });
});
