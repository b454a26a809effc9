/** The event hub against fake responses: what each stream is sent, and a page that stopped reading. */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { createSseHub, SSE_MAX_BUFFERED_BYTES, type SseHub } from './sse.js';

/** A response that keeps what is written; `writableLength` is what it has not sent yet (a reader's backlog). */
function fakeResponse() {
  const res = Object.assign(new EventEmitter(), {
    written: [] as string[],
    writableLength: 0,
    destroyed: false,
    writeHead: () => res,
    write(chunk: string) {
      res.written.push(chunk);
      return true;
    },
    end() {
      res.destroy();
    },
    destroy() {
      if (res.destroyed) return;
      res.destroyed = true;
      res.emit('close');
    },
  });
  return res;
}
const attach = (hub: SseHub, res: ReturnType<typeof fakeResponse>) =>
  hub.attach(res as unknown as ServerResponse, [['hello', {}]]);

describe('sse hub', () => {
  let hub: SseHub;
  afterEach(() => hub.close());

  test('sse - each stream gets the initial records, then every broadcast', () => {
    hub = createSseHub();
    const res = fakeResponse();
    attach(hub, res);
    hub.broadcast('view', { revision: 3 });
    expect(res.written).toEqual(['event: hello\ndata: {}\n\n', 'event: view\ndata: {"revision":3}\n\n']);
    expect(hub.size()).toBe(1);
  });

  test('sse - a stream whose backlog passed the cap is ended, not written to; the others carry on', () => {
    hub = createSseHub();
    const stuck = fakeResponse();
    const reading = fakeResponse();
    attach(hub, stuck);
    attach(hub, reading);
    stuck.writableLength = SSE_MAX_BUFFERED_BYTES + 1;
    hub.broadcast('view', { revision: 4 });
    expect(stuck.destroyed).toBe(true);
    expect(stuck.written).toEqual(['event: hello\ndata: {}\n\n']);
    expect(reading.written).toHaveLength(2);
    expect(hub.size()).toBe(1);
  });

  test('sse - the heartbeat too skips and ends a stream that stopped reading', async () => {
    hub = createSseHub(10);
    const stuck = fakeResponse();
    attach(hub, stuck);
    stuck.writableLength = SSE_MAX_BUFFERED_BYTES + 1;
    await new Promise((r) => setTimeout(r, 50));
    expect(stuck.destroyed).toBe(true);
    expect(stuck.written).toEqual(['event: hello\ndata: {}\n\n']);
  });
});
