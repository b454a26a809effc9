import { describe, expect, test } from 'vitest';
import { DaemonError } from './errors.js';
import { type GobgpdNeighborConfig, gobgpdConfigToml } from './gobgpd.js';

const neighbor: GobgpdNeighborConfig = { address: '198.18.2.1', asn: 65000, holdTimeS: 3, keepaliveS: 1 };

describe('gobgpd - config TOML', () => {
  test('strings are TOML basic strings: quotes and backslashes in a password are escaped', () => {
    const toml = gobgpdConfigToml({
      asn: 65001,
      routerId: '198.18.2.11',
      neighbors: [{ ...neighbor, password: 'pa"ss\\w' }],
    });
    expect(toml).toContain('    auth-password = "pa\\"ss\\\\w"\n');
    expect(toml).toContain('    neighbor-address = "198.18.2.1"\n');
  });

  test('a refused password is not repeated in the error (it ends up in logs and terminals)', () => {
    const build = () =>
      gobgpdConfigToml({
        asn: 65001,
        routerId: '198.18.2.11',
        neighbors: [{ ...neighbor, password: 'S3cret\npw' }],
      });
    expect(build).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message:
          'gobgpd config neighbors[0].password (value not shown): a control character has no place in the TOML config',
      }),
    );
  });

  test.each([
    ['neighbors[0].address', { neighbors: [{ ...neighbor, address: '198.18.2.1\u0000' }] }, '198.18.2.1\\u0000'],
    ['neighbors[0].localAddress', { neighbors: [{ ...neighbor, localAddress: '198.18.2.11\r' }] }, '198.18.2.11\\r'],
    ['routerId', { routerId: '198.18.2.11\t', neighbors: [] }, '198.18.2.11\\t'],
    ['listenAddresses[1]', { listenAddresses: ['198.18.2.11', '\u007f'], neighbors: [] }, '\\u007f'],
  ])('a control character in %s is refused with INVALID_CONFIG naming it', (field, cfg, shown) => {
    const build = () => gobgpdConfigToml({ asn: 65001, routerId: '198.18.2.11', ...cfg });
    expect(build).toThrow(DaemonError);
    expect(build).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message: `gobgpd config ${field} "${shown}": a control character has no place in the TOML config`,
      }),
    );
  });
});
