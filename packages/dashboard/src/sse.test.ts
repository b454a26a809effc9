/** The event hub against fake responses: what each stream is sent, and a page that stopped reading. */
import { EventEmitter, once } from 'node:events';
import { createServer, get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { createSseHub, SSE_MAX_BUFFERED_BYTES, type SseHub, sseRecord } from './sse.js';

/**
 * A response that keeps what is written; `writableLength` is what it has not sent yet (a reader's backlog), until
 * flush() sends it all and calls the writes' callbacks, as a socket does once the kernel took the bytes.
 */
function fakeResponse() {
  const res = Object.assign(new EventEmitter(), {
    written: [] as string[],
    writableLength: 0,
    destroyed: false,
    unsent: [] as (() => void)[],
    writeHead: () => res,
    write(chunk: string, cb?: () => void) {
      res.written.push(chunk);
      res.writableLength += Buffer.byteLength(chunk);
      if (cb) res.unsent.push(cb);
      return true;
    },
    flush() {
      res.writableLength = 0;
      for (const cb of res.unsent.splice(0)) cb();
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

  test('sse - a stream still sending a view larger than the cap is not cut; it gets the newest view next, none between', () => {
    hub = createSseHub();
    const slow = fakeResponse();
    attach(hub, slow);
    const big = { rows: 'x'.repeat(SSE_MAX_BUFFERED_BYTES + 1024) };
    hub.broadcast('view', big);
    hub.broadcast('view', { revision: 2 });
    hub.broadcast('timeline', [{ id: 1 }]);
    hub.broadcast('view', { revision: 3 });
    expect(slow.destroyed).toBe(false);
    expect(slow.written.slice(1)).toEqual([sseRecord('view', big), sseRecord('timeline', [{ id: 1 }])]);
    slow.flush();
    expect(slow.written.slice(3)).toEqual([sseRecord('view', { revision: 3 })]);
    slow.flush();
    hub.broadcast('view', { revision: 4 });
    expect(slow.written.slice(4)).toEqual([sseRecord('view', { revision: 4 })]);
    expect(hub.size()).toBe(1);
  });

  test('sse - a stream more than the cap behind besides the view it is sending is cut', () => {
    hub = createSseHub();
    const stuck = fakeResponse();
    attach(hub, stuck);
    const big = { rows: 'x'.repeat(SSE_MAX_BUFFERED_BYTES + 1024) };
    hub.broadcast('view', big);
    const small = sseRecord('timeline', [{ id: 1, text: 'y'.repeat(1024) }]);
    let sent = 0;
    while (!stuck.destroyed && sent < 10_000) {
      hub.broadcast('timeline', [{ id: 1, text: 'y'.repeat(1024) }]);
      sent += 1;
    }
    expect(stuck.destroyed).toBe(true);
    expect(sent * small.length).toBeGreaterThan(SSE_MAX_BUFFERED_BYTES);
    expect(hub.size()).toBe(0);
  });

  test('sse - the heartbeat is a named ping event (a page sees it: comments never reach its scripts) saying how often', async () => {
    hub = createSseHub(10);
    const res = fakeResponse();
    attach(hub, res);
    for (let i = 0; i < 500 && res.written.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(res.written[1]).toBe(sseRecord('ping', { everyMs: 10 }));
    expect(res.written[1]).toBe('event: ping\ndata: {"everyMs":10}\n\n');
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

describe('sse hub over a socket', () => {
  test('sse - a page reading slower than views come gets the first and the newest, whole, and is not cut', async () => {
    const hub = createSseHub();
    const server = createServer((_req, res) => hub.attach(res, [['hello', {}]]));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const req = get(`http://127.0.0.1:${port}/`);
    try {
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      res.pause(); // the page stops reading: the view stays in the server's buffer
      const until = Date.now() + 10_000;
      while (hub.size() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      // Larger than the kernel's socket buffers on loopback, so most of it waits in the process.
      const big = { rows: 'x'.repeat(8 * SSE_MAX_BUFFERED_BYTES) };
      hub.broadcast('view', big);
      for (let revision = 2; revision <= 4; revision++) hub.broadcast('view', { revision });
      hub.broadcast('timeline', [{ id: 1 }]);
      expect(hub.size()).toBe(1);
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.resume();
      const last = sseRecord('view', { revision: 4 });
      while (!text.endsWith(last) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      const events = text
        .split('\n\n')
        .filter((r) => r !== '')
        .map((r) => r.split('\n')[0]);
      expect(events).toEqual(['event: hello', 'event: view', 'event: timeline', 'event: view']);
      expect(text).toContain(sseRecord('view', big));
      expect(text.endsWith(last)).toBe(true);
      expect(hub.size()).toBe(1);
    } finally {
      req.destroy();
      hub.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
