/**
 * Applies the speaker's desired advertisements to gobgpd: lists the local paths, announces what is missing and
 * withdraws what is not wanted (plan in reconcile.ts), and reports foreign identifier-0 paths it cannot withdraw.
 * The speaker calls it from its serial chain (gobgp-speaker.ts), so two applies never interleave.
 */
import type { Logger } from 'pino';
import type { HeldPath } from './codec.js';
import type { GobgpClient } from './gobgp-client.js';
import { planPaths } from './reconcile.js';
import type { CanonicalAdvertisement } from './validate.js';

/** The part of GobgpClient the path applier uses. */
export type PathClient = Pick<GobgpClient, 'addPath' | 'deletePath' | 'listLocalPaths'>;

export class PathApplier {
  /** Foreign identifier-0 paths already logged (reportDuplicates), as JSON. */
  private reportedDuplicates = new Set<string>();

  constructor(
    private readonly client: PathClient,
    private readonly log: Logger,
  ) {}

  /** Makes gobgpd's local paths exactly `desired` (ours; foreign identifier-0 duplicates are only reported). */
  async apply(desired: ReadonlyMap<string, CanonicalAdvertisement>): Promise<void> {
    const plan = planPaths(await this.localPaths(), desired);
    this.reportDuplicates(plan.duplicates);
    for (const adv of plan.announce) {
      await this.client.addPath(adv);
      this.log.info({ event: 'vipAnnounced', vip: adv.prefix, nextHop: adv.nextHop, communities: adv.communities });
    }
    for (const path of plan.withdraw) {
      await this.client.deletePath(path);
      // A path of another identifier was never ours (`gobgp global rib add ... identifier N`): say which went.
      const stray = path.identifier !== 0 ? { identifier: path.identifier } : {};
      this.log.info({ event: 'vipWithdrawn', vip: path.prefix, ...stray });
    }
  }

  private async localPaths(): Promise<HeldPath[]> {
    return [...(await this.client.listLocalPaths(4)), ...(await this.client.listLocalPaths(6))];
  }

  /**
   * Logs each local path of identifier 0 beside ours once, while it stays (every resync finds it again). gobgpd's API
   * cannot withdraw it without maybe withdrawing ours (reconcile.ts), so an operator must: `gobgp global rib del`
   * removes one of the two, and the next reconcile announces ours again if it was ours.
   */
  private reportDuplicates(duplicates: readonly HeldPath[]): void {
    const now = new Map(duplicates.map((d) => [JSON.stringify(d), d]));
    for (const [key, d] of now) {
      if (this.reportedDuplicates.has(key)) continue;
      this.log.warn({
        event: 'foreignLocalPath',
        vip: d.prefix,
        nextHop: d.nextHop,
        communities: d.communities,
        foreign: d.foreign,
        reason:
          'a second local path of identifier 0 beside ours (another gRPC client); gobgpd cannot withdraw it alone',
      });
    }
    this.reportedDuplicates = new Set(now.keys());
  }
}
