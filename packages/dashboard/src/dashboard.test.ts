/** The whole server over the in-memory store (the browser test runs the same paths against etcd and agents). */
import { connect } from 'node:net';
import { parseFleet } from '@l4fleet/config';
import { type DesiredChanges, MemoryFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { REFUSED_RECORDED_PER_MINUTE } from './actions.js';
import { type Dashboard, startDashboard } from './dashboard.js';
import { createTimeline } from './timeline.js';

const TOKEN = 'test-token-0123456789';
const logger = pino({ level: 'silent' });

async function fleetStore(): Promise<MemoryFleetStore> {
  const store = new MemoryFleetStore();
  await store.apply(
    parseFleet({
      hashSeed: 5,
      pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    }),
  );
  await store.registerNode({ name: 'n1', address: '198.18.0.11' });
  return store;
}

/** Reads SSE records from /api/stream until `want` says stop (bounded by time). */
async function readStream(url: string, want: (events: { event: string; data: unknown }[]) => boolean) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 5_000);
  const events: { event: string; data: unknown }[] = [];
  try {
    const res = await fetch(`${url}api/stream`, { signal: abort.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let buf = '';
    while (!want(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const rec = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(rec)?.[1];
        const data = /^data: (.*)$/m.exec(rec)?.[1];
        if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
      }
    }
    return events;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

describe('dashboard server', () => {
  let store: MemoryFleetStore;
  let dash: Dashboard | undefined;
  beforeEach(async () => {
    store = await fleetStore();
  });
  afterEach(async () => {
    await dash?.close();
    dash = undefined;
    await store.close();
  });

  const post = (path: string, token?: string) =>
    fetch(`${dash?.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: '{}',
    });

  test('dashboard - without a token writes are refused (403), reads work, and the refusal is in the timeline', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await post('api/nodes/n1/drain', TOKEN);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toMatch(/writes are disabled/);
    expect((await store.listNodes())[0]?.drained).toBe(false);
    const state = (await (await fetch(`${dash.url}api/state`)).json()) as {
      writes: boolean;
      view: { nodes: { name: string }[] };
      timeline: { kind: string; data: { result: string } }[];
    };
    expect(state.writes).toBe(false);
    expect(state.view.nodes.map((n) => n.name)).toEqual(['n1']);
    expect(state.timeline.at(-1)).toMatchObject({ kind: 'action', data: { result: 'refused' } });
  });

  test('dashboard - a wrong token is 401; the right one drains the node and the member, each in the timeline', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0', token: TOKEN });
    expect((await post('api/nodes/n1/drain', 'wrong-token-0123456789')).status).toBe(401);
    expect((await post('api/nodes/n1/drain', TOKEN)).status).toBe(200);
    expect((await store.listNodes())[0]?.drained).toBe(true);
    const m = await post('api/pools/web/members/a/drain', TOKEN);
    expect(await m.json()).toMatchObject({
      action: 'member drain',
      target: 'web/a',
      revision: expect.any(Number),
      churn: [{ vip: '198.51.100.10:80/tcp', fraction: 1 }], // the pool's only member: every slot moves
    });
    expect((await store.getDesired()).fleet.pools[0]?.members[0]?.state).toBe('draining');
    expect((await post('api/pools/web/members/zz/drain', TOKEN)).status).toBe(404);
    expect((await post('api/pools/nope/members/a/drain', TOKEN)).status).toBe(404); // a missing pool, not a 503
    expect((await post('api/nodes/nobody/drain', TOKEN)).status).toBe(404);
    const events = await readStream(dash.url, (evs) => evs.some((e) => e.event === 'timeline'));
    const timeline = events.find((e) => e.event === 'timeline')?.data as { data: { action: string; result: string } }[];
    expect(timeline.map((e) => `${e.data.action} ${e.data.result}`)).toEqual([
      'node drain refused',
      'node drain ok',
      'member drain ok',
      'member drain failed',
      'member drain failed',
      'node drain failed',
    ]);
  });

  test('dashboard - vip disable, drain and enable: the VIP key in the path, the fleet edited, each in the timeline', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0', token: TOKEN });
    const path = (verb: string, key = '198.51.100.10:80/tcp') => `api/vips/${encodeURIComponent(key)}/${verb}`;
    expect((await post(path('disable'), undefined)).status).toBe(401); // no token sent
    const off = await post(path('disable'), TOKEN);
    const written = (await off.json()) as { revision: number };
    expect(written).toMatchObject({ action: 'vip disable', target: '198.51.100.10:80/tcp' });
    expect((await store.getDesired()).fleet.vips[0]?.state).toBe('disabled');
    expect((await store.getDesired()).revision).toBe(written.revision);
    expect(await (await post(path('disable'), TOKEN)).json()).toEqual({
      action: 'vip disable',
      target: '198.51.100.10:80/tcp',
    }); // disabled already: nothing written
    expect((await store.getDesired()).revision).toBe(written.revision);
    expect((await store.getDesiredHistory({ limit: 1 })).revisions[0]?.appliedBy).toMatch(
      /^dashboard, from 127\.0\.0\.1 \(vip disable 198\.51\.100\.10:80\/tcp\)$/,
    );
    expect((await post(path('drain'), TOKEN)).status).toBe(200);
    expect((await store.getDesired()).fleet.vips[0]?.state).toBe('draining');
    expect((await post(path('enable'), TOKEN)).status).toBe(200);
    expect((await store.getDesired()).fleet.vips[0]).not.toHaveProperty('state');
    const missing = await post(path('enable', '198.51.100.99:80/tcp'), TOKEN);
    expect([missing.status, ((await missing.json()) as { error: string }).error]).toEqual([
      404,
      `vip 198.51.100.99:80/tcp: not in the fleet (revision ${(await store.getDesired()).revision})`,
    ]);
    const bad = await post(path('enable', 'web'), TOKEN);
    expect([bad.status, ((await bad.json()) as { error: string }).error]).toEqual([
      400,
      'vip: "web" is not ADDR:PORT/tcp|udp (IPv6 as [ADDR]:PORT/PROTO)',
    ]);
    const events = await readStream(dash.url, (evs) => evs.some((e) => e.event === 'timeline'));
    const timeline = events.find((e) => e.event === 'timeline')?.data as { data: { action: string; result: string } }[];
    expect(timeline.map((e) => `${e.data.action} ${e.data.result}`)).toEqual([
      'vip disable refused',
      'vip disable ok',
      'vip disable ok',
      'vip drain ok',
      'vip enable ok',
      'vip enable failed',
      'vip enable failed',
    ]);
  });

  test('dashboard - /api/changes: the last writes newest first, each with what it changed (a member drained from the page)', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0', token: TOKEN });
    const changes = async (): Promise<DesiredChanges> =>
      (await (await fetch(`${dash?.url}api/changes`)).json()) as DesiredChanges;
    const first = await changes();
    expect(first).toMatchObject({ more: false, compacted: false, revisions: [{ current: true, note: 'first write' }] });
    const drained = await post('api/pools/web/members/a/drain', TOKEN);
    const { revision } = (await drained.json()) as { revision: number };
    // The page asks once its view shows the new revision; the answer is read once per revision (then shared).
    const viewRevision = async () =>
      ((await (await fetch(`${dash?.url}api/state`)).json()) as { view: { revision: number } }).view.revision;
    for (let i = 0; i < 100 && (await viewRevision()) !== revision; i++) await new Promise((r) => setTimeout(r, 20));
    const reads = vi.spyOn(store, 'getDesiredHistory');
    const after = await changes();
    expect(await changes()).toEqual(after);
    expect(reads).toHaveBeenCalledTimes(1);
    expect(after.revisions).toHaveLength(2);
    expect(after.revisions[0]).toMatchObject({
      current: true,
      appliedBy: 'dashboard, from 127.0.0.1 (member drain web/a)',
      changes: [{ kind: 'changed', subject: 'member web/a', detail: 'state "active" -> "draining"' }],
    });
    expect(after.revisions[1]).toMatchObject({ current: false, revision: first.revisions[0]?.revision });
  });

  test('dashboard - the stream sends the view first, then each etcd change; assets are local with a CSP', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const url = dash.url;
    setTimeout(() => void store.setNodeDrain('n1', true), 300);
    const events = await readStream(url, (evs) =>
      evs.some((e) => e.event === 'view' && (e.data as { nodes: { drained: boolean }[] }).nodes[0]?.drained),
    );
    expect(events[0]?.event).toBe('hello');
    expect((events[1]?.data as { nodes: { drained: boolean }[] } | undefined)?.nodes[0]?.drained).toBe(false);
    const page = await fetch(url);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    for (const src of html.match(/(?:src|href)="[^"]+"/g) ?? []) {
      const path = (/"\/(.*)"/.exec(src) as RegExpExecArray)[1];
      expect((await fetch(`${url}${path}`)).status, path).toBe(200);
    }
    expect((await fetch(`${url}assets/../package.json`)).status).toBe(404);
  });

  test('dashboard - a cross-site or non-JSON write is refused before anything is recorded (no forged timeline entries)', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0', token: TOKEN });
    const url = dash.url;
    const send = (headers: Record<string, string>, body = '{}') =>
      fetch(`${url}api/nodes/n1/drain`, { method: 'POST', headers, body });
    // What the page itself sends: same origin, JSON, the token.
    const own = await send({
      'content-type': 'application/json',
      origin: url.slice(0, -1),
      'sec-fetch-site': 'same-origin',
      authorization: `Bearer ${TOKEN}`,
    });
    expect(own.status).toBe(200);
    // A cross-site form or no-cors fetch: text/plain and a foreign Origin, many times over.
    const forged = await Promise.all(
      Array.from({ length: 600 }, (_, i) =>
        send({ 'content-type': 'text/plain', origin: 'https://evil.example' }, `x${i}`),
      ),
    );
    expect(new Set(forged.map((r) => r.status))).toEqual(new Set([403]));
    expect(((await forged[0]?.json()) as { error: string } | undefined)?.error).toBe(
      'origin: "https://evil.example" is not this dashboard (writes are taken from its own page only)',
    );
    const fetchSite = await send({ 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' });
    expect([fetchSite.status, ((await fetchSite.json()) as { error: string }).error]).toEqual([
      403,
      'sec-fetch-site: "cross-site" is not same-origin (writes are taken from the dashboard\'s own page only)',
    ]);
    const plain = await send({ 'content-type': 'text/plain', authorization: `Bearer ${TOKEN}` });
    expect([plain.status, ((await plain.json()) as { error: string }).error]).toEqual([
      415,
      'content-type: "text/plain" is not application/json',
    ]);
    // The right token does not make a foreign page's write go through.
    await store.setNodeDrain('n1', false);
    const withToken = await send({
      'content-type': 'application/json',
      origin: 'https://evil.example',
      authorization: `Bearer ${TOKEN}`,
    });
    expect(withToken.status).toBe(403);
    expect((await store.listNodes())[0]?.drained).toBe(false);
    const state = (await (await fetch(`${url}api/state`)).json()) as { timeline: { data: { result: string } }[] };
    expect(state.timeline.map((e) => e.data.result)).toEqual(['ok']);
  });

  test('dashboard - refused writes are recorded one by one up to a limit a minute, not one entry each', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0', token: TOKEN });
    for (let i = 0; i < 30; i++) expect((await post('api/nodes/n1/drain')).status).toBe(401);
    const state = (await (await fetch(`${dash.url}api/state`)).json()) as { timeline: { data: { result: string } }[] };
    expect(state.timeline.filter((e) => e.data.result === 'refused')).toHaveLength(REFUSED_RECORDED_PER_MINUTE);
  });

  test('dashboard - hello names the server process, so a page reconnected to a restarted dashboard starts its list over', async () => {
    const instanceOf = async (d: Dashboard) => {
      const events = await readStream(d.url, (evs) => evs.some((e) => e.event === 'hello'));
      return (events.find((e) => e.event === 'hello')?.data as { instance?: unknown } | undefined)?.instance;
    };
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const first = await instanceOf(dash);
    expect(first).toEqual(expect.any(String));
    expect(await instanceOf(dash)).toBe(first); // a reconnect to the same process keeps it
    await dash.close();
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const second = await instanceOf(dash);
    expect(second).toEqual(expect.any(String));
    expect(second).not.toBe(first);
  });

  test('dashboard - hello names the build of the page served, so a page left open across an upgrade reloads', async () => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const events = await readStream(dash.url, (evs) => evs.some((e) => e.event === 'hello'));
    const build = (events.find((e) => e.event === 'hello')?.data as { build?: unknown } | undefined)?.build;
    expect(build).toMatch(/^[0-9a-f]{16}$/);
    const html = await (await fetch(dash.url)).text();
    expect(/<meta id="build" name="l4fleet-build" content="([^"]*)">/.exec(html)?.[1]).toBe(build);
    const state = (await (await fetch(`${dash.url}api/state`)).json()) as { build?: unknown };
    expect(state.build).toBe(build);
  });

  test('dashboard - each scrape sends pages its one new column, not the whole history again', async () => {
    let packets = 0;
    const body = () =>
      [
        `l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} ${(packets += 100)}`,
        'l4fleet_dataplane_flow_entries 4',
        'l4fleet_dataplane_backend_packets{backend="198.18.0.21:80"} 7',
      ].join('\n');
    dash = await startDashboard({
      store,
      logger,
      listen: '127.0.0.1:0',
      metricsTargets: new Map([['n1', 'http://n1/metrics']]),
      scrapeIntervalMs: 150, // columns are 0.1 s apart at least (their times are rounded to that)
      fetchText: async () => body(),
    });
    const url = dash.url;
    // Let the history hold a few columns first: the full state goes to a page once, when it connects.
    for (let i = 0; i < 250; i++) {
      const h = ((await (await fetch(`${url}api/state`)).json()) as { metrics: { t: number[] } }).metrics;
      if (h.t.length >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const events = await readStream(url, (evs) => evs.filter((e) => e.event === 'metrics-column').length >= 3);
    const full = events.find((e) => e.event === 'metrics')?.data as { t: number[] };
    expect(full.t.length).toBeGreaterThanOrEqual(3);
    expect(events.filter((e) => e.event === 'metrics')).toHaveLength(1); // on connect only
    const columns = events.filter((e) => e.event === 'metrics-column').map((e) => e.data);
    expect(columns).toHaveLength(3);
    for (const c of columns) {
      expect(c).toEqual({
        t: expect.any(Number),
        prevT: expect.any(Number),
        packetsPerNode: { n1: expect.any(Number) },
        flowsPerNode: { n1: 4 },
        packetsPerBackend: { '198.18.0.21:80': expect.any(Number) },
        dropsPerNode: { n1: expect.any(Number) },
        errors: {},
        capacity: 300,
      });
    }
  });

  test('dashboard - a bad listen address or a short token fails the start naming the option', async () => {
    await expect(startDashboard({ store, logger, listen: 'nowhere' })).rejects.toThrow(
      /listen: "nowhere" is not ADDRESS:PORT/,
    );
    await expect(startDashboard({ store, logger, listen: '127.0.0.1:0', token: 'short' })).rejects.toThrow(
      /token: 5 characters/,
    );
  });

  test.each([[''], [null], [true], ['0x50'], [[80]], [65536], [-1], [1.5], [' 80'], ['1e3']])(
    'dashboard - /api/explain refuses sport %j (400 naming sport)',
    async (sport) => {
      dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
      const res = await fetch(`${dash.url}api/explain`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ src: '198.18.113.7', sport, vip: '198.51.100.10:80/tcp' }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe(
        `sport: ${JSON.stringify(sport)} is not a port (an integer 0-65535)`,
      );
    },
  );

  test.each([[40000], ['40000'], [0], ['65535']])('dashboard - /api/explain takes sport %j', async (sport) => {
    dash = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const res = await fetch(`${dash.url}api/explain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ src: '198.18.113.7', sport, vip: '198.51.100.10:80/tcp' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { flow: string }).flow).toContain(`:${Number(sport)}`);
  });

  test('dashboard - close() ends a request whose body never finishes arriving (SIGTERM does not hang)', {
    timeout: 10_000,
  }, async () => {
    const started = await startDashboard({ store, logger, listen: '127.0.0.1:0' });
    const { hostname, port } = new URL(started.url);
    const sock = connect(Number(port), hostname);
    sock.on('error', () => undefined);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    // The headers promise 100 bytes; 1 comes. The server has the request, so it is not an idle connection.
    sock.write(
      'POST /api/explain HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{',
    );
    await new Promise((r) => setTimeout(r, 200));
    try {
      await started.close();
      await closed;
    } finally {
      sock.destroy();
    }
  });
});

describe('dashboard timeline', () => {
  const probe = (i: number) => ({
    at: '2026-12-06T00:00:00.000Z',
    kind: 'member.health',
    node: `n${i % 3}`,
    data: { member: 'web/a', status: 'up', changed: false },
  });

  test('timeline - unchanged probes do not push actions and withdrawals out of the list', () => {
    const t = createTimeline();
    t.add({ at: '2026-12-06T00:00:00.000Z', kind: 'action', node: 'dashboard', data: { result: 'ok' } });
    t.add({ at: '2026-12-06T00:00:00.000Z', kind: 'vip.withdrawn', node: 'n1', data: {} });
    t.add({ ...probe(0), data: { member: 'web/a', status: 'down', changed: true } });
    for (let i = 0; i < 2_000; i++) t.add(probe(i));
    const kinds = t.list().map((e) => (e.data.changed === false ? 'probe' : e.kind));
    expect(kinds.filter((k) => k !== 'probe')).toEqual(['action', 'vip.withdrawn', 'member.health']);
    // Some probes are still kept (the page shows them when asked), the newest ones, in id order with the rest.
    const probes = t.list().filter((e) => e.data.changed === false);
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.length).toBeLessThan(2_000);
    expect(probes.at(-1)?.id).toBe(2_003);
    const ids = t.list().map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  test('timeline - shown entries are still bounded (oldest dropped first)', () => {
    const t = createTimeline(5);
    for (let i = 0; i < 12; i++) t.add({ at: '2026-12-06T00:00:00.000Z', kind: 'node.state', node: 'n1', data: {} });
    expect(t.list().map((e) => e.id)).toEqual([8, 9, 10, 11, 12]);
  });
});
