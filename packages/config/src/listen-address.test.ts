import { describe, expect, test } from 'vitest';
import { ConfigError } from './errors.js';
import { LISTEN_ADDRESS_FORM, parseListenAddress } from './listen-address.js';

describe('listen address - parse', () => {
  test.each([
    ['127.0.0.1:9469', '127.0.0.1', 9469, '127.0.0.1:9469'],
    ['0.0.0.0:0', '0.0.0.0', 0, '0.0.0.0:0'],
    ['localhost:9470', 'localhost', 9470, 'localhost:9470'],
    ['[::]:9777', '::', 9777, '[::]:9777'],
    ['[2001:DB8:0::1]:65535', '2001:db8::1', 65_535, '[2001:db8::1]:65535'],
    ['[::ffff:127.0.0.1]:80', '::ffff:7f00:1', 80, '[::ffff:7f00:1]:80'],
  ])('%j is taken as %j port %j, reported back as %j', (text, host, port, canonical) => {
    expect(parseListenAddress(text, '--listen')).toEqual({ host, port, text: canonical });
  });

  // inet_aton's shorthand (127.1, 0) is no address here: Node resolves it and would report what was written, not what
  // it bound; a name other than localhost failed only at the bind (getaddrinfo ENOTFOUND), naming no option.
  test.each([
    '300.1.1.1:9777',
    '0:0',
    '127.1:0',
    '127.0.0.01:80',
    'example.org:80',
    '*:9469',
    '[foo]:9469',
    '[127.0.0.1]:80',
    '[fe80::1%eth0]:80',
    '::1:9777',
    '127.0.0.1',
    '127.0.0.1:65536',
    '127.0.0.1:x',
    '127.0.0.1:',
    ':9469',
    'LOCALHOST:80',
    '',
    9469,
    undefined,
  ])('%j is refused, naming the field and the value', (text) => {
    let caught: unknown;
    try {
      parseListenAddress(text, 'metrics.listen');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect(caught).toMatchObject({ code: 'INVALID', problems: [{ path: 'metrics.listen' }] });
    const shown = text === undefined ? 'missing' : JSON.stringify(text);
    expect((caught as Error).message).toBe(`metrics.listen: ${shown} is not ${LISTEN_ADDRESS_FORM}`);
  });

  // A deliberate rule since cd67ad4 (the old isIP check took it): a zoned IPv6 link-local address. It is reachable
  // from one link only, its zone is this host's interface name (no canonical form, RFC 5952, holds one), and a
  // listener that should be reached from one link listens on [::] or a routed address behind a firewall rule instead.
  test.each(['metrics.listen', '--listen'])(
    '%s: a zoned link-local address ([fe80::1%%eth0]:9469) is refused, naming the field',
    (field) => {
      let caught: unknown;
      try {
        parseListenAddress('[fe80::1%eth0]:9469', field);
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ code: 'INVALID', problems: [{ path: field }] });
      expect((caught as Error).message).toBe(`${field}: "[fe80::1%eth0]:9469" is not ${LISTEN_ADDRESS_FORM}`);
    },
  );

  test('the same link-local address without a zone is taken (the zone is what is refused)', () => {
    expect(parseListenAddress('[fe80::1]:9469', 'metrics.listen')).toEqual({
      host: 'fe80::1',
      port: 9469,
      text: '[fe80::1]:9469',
    });
  });
});
