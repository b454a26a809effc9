/** Types of timeline-list.js for the unit tests (the page itself is plain JavaScript). */
export interface PageEntry {
  readonly id: number;
  readonly at: string;
  readonly kind: string;
  readonly node: string;
  readonly data: Readonly<Record<string, unknown>>;
}
export declare const TIMELINE_SHOWN: number;
export declare const TIMELINE_PROBES: number;
export declare function isProbe(e: PageEntry): boolean;
export interface TimelineList {
  hello(instance: string): boolean;
  add<E extends PageEntry>(entries: readonly E[]): { added: E[]; dropped: number[] };
}
export declare function createTimelineList(opts?: { max?: number; maxProbes?: number }): TimelineList;
