/** Fan-out of events to any number of async iterators, each with its own bounded queue. */

/** Events kept per slow consumer before the oldest are dropped. */
export const DEFAULT_EVENT_QUEUE_LENGTH = 1_024;

interface Subscriber<T> {
  queue: T[];
  wake: (() => void) | undefined;
}

export class EventHub<T> {
  private readonly subscribers = new Set<Subscriber<T>>();
  private closed = false;
  /** Events dropped because a consumer fell more than `maxQueue` behind. */
  dropped = 0;

  constructor(private readonly maxQueue = DEFAULT_EVENT_QUEUE_LENGTH) {}

  publish(event: T): void {
    for (const s of this.subscribers) {
      s.queue.push(event);
      if (s.queue.length > this.maxQueue) {
        s.queue.shift();
        this.dropped++;
      }
      s.wake?.();
    }
  }

  /** Ends every iterator after it has drained its queue. */
  close(): void {
    this.closed = true;
    for (const s of this.subscribers) s.wake?.();
  }

  subscribe(): AsyncIterable<T> {
    const hub = this;
    return {
      [Symbol.asyncIterator](): AsyncIterator<T> {
        const sub: Subscriber<T> = { queue: [], wake: undefined };
        if (!hub.closed) hub.subscribers.add(sub);
        return {
          async next(): Promise<IteratorResult<T>> {
            while (sub.queue.length === 0) {
              if (hub.closed || !hub.subscribers.has(sub)) return { done: true, value: undefined };
              await new Promise<void>((resolve) => {
                sub.wake = resolve;
              });
              sub.wake = undefined;
            }
            return { done: false, value: sub.queue.shift() as T };
          },
          async return(): Promise<IteratorResult<T>> {
            hub.subscribers.delete(sub);
            sub.wake?.();
            return { done: true, value: undefined };
          },
        };
      },
    };
  }
}
