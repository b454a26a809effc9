/**
 * Rise/fall hysteresis of one member as seen by one node: `rise` consecutive successes to be up, `fall` consecutive
 * failures to be down (the classic L4 switch rule), so one lost probe never flaps a backend.
 */
export type ObservedStatus = 'unknown' | 'up' | 'down';

export class Hysteresis {
  private statusValue: ObservedStatus = 'unknown';
  private successes = 0;
  private failures = 0;

  constructor(
    private readonly rise: number,
    private readonly fall: number,
  ) {}

  get status(): ObservedStatus {
    return this.statusValue;
  }

  /** Records one probe result; returns the new status when it changed, else undefined. */
  observe(ok: boolean): ObservedStatus | undefined {
    if (ok) {
      this.successes += 1;
      this.failures = 0;
      if (this.statusValue !== 'up' && this.successes >= this.rise) return this.set('up');
    } else {
      this.failures += 1;
      this.successes = 0;
      if (this.statusValue !== 'down' && this.failures >= this.fall) return this.set('down');
    }
    return undefined;
  }

  private set(s: ObservedStatus): ObservedStatus {
    this.statusValue = s;
    return s;
  }
}
