/** What every concern of the etcd store shares: the client, the layout namespace, the logger and the open watches. */
import type { Etcd3, Namespace } from 'etcd3';
import type { Logger } from 'pino';
import { StoreError } from './errors.js';
import { NODE_NAME } from './layout.js';

export interface StoreContext {
  readonly client: Etcd3;
  /** Namespace of layout v1: `${prefix}/v1/`. */
  readonly ns: Namespace;
  readonly log: Logger;
  /** Stops the endpoint probes and closes the client. */
  readonly closeClient: () => void;
  /** Deadline of one attempt on one endpoint, in ms (connection.ts). */
  readonly attemptMs: number;
  /** Closers of open watches and leaderships, run by the store's close(). */
  readonly closers: Set<() => Promise<void>>;
}

/** Registers `close` with the store (removed again when it runs) and returns the Watch-style handle. */
export function tracked(ctx: StoreContext, close: () => Promise<void>): { close(): Promise<void> } {
  const once = async () => {
    ctx.closers.delete(once);
    await close();
  };
  ctx.closers.add(once);
  return { close: once };
}

export function assertNodeName(name: string): void {
  if (!NODE_NAME.test(name)) {
    throw new StoreError(
      'INVALID_STATE',
      `node: ${JSON.stringify(name)} is not a node name (1-63 of A-Z a-z 0-9 . _ -)`,
    );
  }
}
