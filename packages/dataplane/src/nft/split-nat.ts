/** Which of the nftables driver's two tables serves each VIP (driver.ts). */
import { DataPlaneError } from '../errors.js';
import type { NormalizedVip } from '../validate.js';

/**
 * NAT VIPs go to the NAT table, the others to the netdev table. An address served by both would have its NAT ports
 * dropped by the netdev table's port filter, so it is refused (parseFleet refuses it too).
 */
export function splitNat(vips: readonly NormalizedVip[]): { direct: NormalizedVip[]; nat: NormalizedVip[] } {
  const direct = vips.filter((v) => v.forwarding !== 'nat');
  const nat = vips.filter((v) => v.forwarding === 'nat');
  const directAddresses = new Map(direct.map((v) => [v.addressHex, v.label]));
  for (const v of nat) {
    const other = directAddresses.get(v.addressHex);
    if (other !== undefined) {
      throw new DataPlaneError(
        'VIP_INVALID',
        `vip ${v.label}: forwarding "nat" on the address of vip ${other}, which is direct server return: an address is served by one of the two`,
      );
    }
  }
  return { direct, nat };
}
