/**
 * The page's scripts (public/app.js and its modules) against a small hand-made DOM built from the real
 * public/index.html, a fake EventSource the test drives, and uPlot, fetch, confirm and sessionStorage stubs. The
 * package has no jsdom; the harness covers what the page's scripts use (elements, text, classes, attributes,
 * listeners, simple selectors) and nothing more. Timers are vitest's fake ones, so no test waits for real.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { withBuild } from './assets.js';

class FakeNode {
  parent: FakeElement | undefined;
  get textContent(): string {
    return '';
  }
  remove(): void {
    if (!this.parent) return;
    const siblings = this.parent.childNodes;
    siblings.splice(siblings.indexOf(this), 1);
    this.parent = undefined;
  }
  replaceWith(node: FakeNode): void {
    const p = this.parent;
    if (!p) return;
    node.remove();
    p.childNodes.splice(p.childNodes.indexOf(this), 1, node);
    node.parent = p;
    this.parent = undefined;
  }
}

class FakeText extends FakeNode {
  constructor(public data: string) {
    super();
  }
  override get textContent(): string {
    return this.data;
  }
}

type Listener = (ev: unknown) => void;

/** `tag#id[attr="value"]` parts, matched against one element. */
interface SimpleSelector {
  readonly tag?: string;
  readonly id?: string;
  readonly attrs: readonly (readonly [string, string | undefined])[];
  readonly classes: readonly string[];
}

function parseSelector(part: string): SimpleSelector {
  const m = /^([a-z0-9]*)(#[\w-]+)?((?:\.[\w-]+)*)((?:\[[\w-]+(?:="[^"]*")?\])*)$/i.exec(part);
  if (!m) throw new Error(`page-harness: selector "${part}" is not supported`);
  const attrs = [...(m[4] ?? '').matchAll(/\[([\w-]+)(?:="([^"]*)")?\]/g)].map((a) => [a[1] as string, a[2]] as const);
  return {
    ...(m[1] ? { tag: m[1].toLowerCase() } : {}),
    ...(m[2] ? { id: m[2].slice(1) } : {}),
    attrs,
    classes: (m[3] ?? '').split('.').filter(Boolean),
  };
}

class FakeElement extends FakeNode {
  readonly childNodes: FakeNode[] = [];
  readonly attributes = new Map<string, string>();
  readonly listeners = new Map<string, Listener[]>();
  hidden = false;
  value = '';
  checked = false;
  constructor(readonly tagName: string) {
    super();
  }
  get id(): string {
    return this.attributes.get('id') ?? '';
  }
  get className(): string {
    return this.attributes.get('class') ?? '';
  }
  set className(v: string) {
    this.attributes.set('class', v);
  }
  get classList() {
    const list = () => this.className.split(/\s+/).filter(Boolean);
    const set = (names: string[]) => {
      this.className = names.join(' ');
    };
    return {
      contains: (c: string) => list().includes(c),
      add: (c: string) => set([...list().filter((x) => x !== c), c]),
      remove: (c: string) => set(list().filter((x) => x !== c)),
      toggle: (c: string, force?: boolean) => {
        const on = force ?? !list().includes(c);
        set(on ? [...list().filter((x) => x !== c), c] : list().filter((x) => x !== c));
        return on;
      },
    };
  }
  get disabled(): boolean {
    return this.attributes.has('disabled');
  }
  get children(): FakeElement[] {
    return this.childNodes.filter((c): c is FakeElement => c instanceof FakeElement);
  }
  get tBodies(): FakeElement[] {
    return this.children.filter((c) => c.tagName === 'tbody');
  }
  /** A form's named controls (`form.elements.vip`). */
  get elements(): Record<string, FakeElement> {
    return Object.fromEntries(
      this.all()
        .filter((e) => e.attributes.has('name'))
        .map((e) => [e.attributes.get('name') as string, e]),
    );
  }
  override get textContent(): string {
    return this.childNodes.map((c) => c.textContent).join('');
  }
  override set textContent(text: string) {
    this.replaceChildren(new FakeText(text));
  }
  setAttribute(name: string, value: string): void {
    this.attributes.set(name, String(value));
  }
  getAttribute(name: string): string | null {
    return this.attributes.get(name) ?? null;
  }
  append(...nodes: (FakeNode | string)[]): void {
    for (const n of nodes) this.insert(this.childNodes.length, n);
  }
  prepend(...nodes: (FakeNode | string)[]): void {
    nodes.forEach((n, i) => {
      this.insert(i, n);
    });
  }
  replaceChildren(...nodes: (FakeNode | string)[]): void {
    for (const c of [...this.childNodes]) c.remove();
    this.append(...nodes);
  }
  addEventListener(type: string, fn: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  dispatch(type: string, ev: Record<string, unknown> = {}): void {
    for (const fn of this.listeners.get(type) ?? []) fn({ target: this, preventDefault() {}, ...ev });
  }
  click(): void {
    if (!this.disabled) this.dispatch('click');
  }
  /** Every element below this one, in document order. */
  all(): FakeElement[] {
    return this.children.flatMap((c) => [c, ...c.all()]);
  }
  matches(sel: SimpleSelector): boolean {
    if (sel.tag && this.tagName !== sel.tag) return false;
    if (sel.id && this.id !== sel.id) return false;
    if (!sel.classes.every((c) => this.classList.contains(c))) return false;
    return sel.attrs.every(([k, v]) => this.attributes.has(k) && (v === undefined || this.attributes.get(k) === v));
  }
  /** Descendant selectors of simple parts only (`#flows-nodes tbody`, `li[data-id="3"]`). */
  querySelectorAll(selector: string): FakeElement[] {
    const parts = selector.trim().split(/\s+/).map(parseSelector);
    let found: FakeElement[] = [this];
    for (const part of parts) found = [...new Set(found.flatMap((e) => e.all().filter((d) => d.matches(part))))];
    return found;
  }
  querySelector(selector: string): FakeElement | null {
    return this.querySelectorAll(selector)[0] ?? null;
  }
  private insert(at: number, n: FakeNode | string): void {
    const node = typeof n === 'string' ? new FakeText(n) : n;
    node.remove();
    this.childNodes.splice(at, 0, node);
    node.parent = this;
  }
}

const VOID = new Set(['meta', 'link', 'input', 'br', 'img']);

/** public/index.html as FakeElements (a small tokenizer: the page is plain, well-formed HTML). */
function parsePage(html: string): FakeElement {
  const root = new FakeElement('html');
  const stack: FakeElement[] = [root];
  const top = () => stack[stack.length - 1] as FakeElement;
  for (const m of html.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>|<![^>]*>|([^<]+)/g)) {
    if (m[4] !== undefined) {
      if (m[4].trim()) top().append(new FakeText(m[4].replace(/&amp;/g, '&')));
      continue;
    }
    if (!m[2]) continue; // doctype
    const tag = m[2].toLowerCase();
    if (tag === 'html' || tag === 'head' || tag === 'body') continue;
    if (m[1]) {
      const i = stack.map((e) => e.tagName).lastIndexOf(tag);
      if (i > 0) stack.length = i;
      continue;
    }
    const e = new FakeElement(tag);
    for (const a of (m[3] ?? '').matchAll(/([\w-]+)(?:="([^"]*)")?/g)) e.setAttribute(a[1] as string, a[2] ?? '');
    if (e.attributes.has('hidden')) e.hidden = true;
    top().append(e);
    if (!VOID.has(tag) && !(m[3] ?? '').trim().endsWith('/')) stack.push(e);
  }
  return root;
}

/** An EventSource the test drives: open(), send(event, data), fail(readyState). */
class FakeEventSource {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  static readonly made: FakeEventSource[] = [];
  readyState = FakeEventSource.CONNECTING;
  closed = false;
  readonly listeners = new Map<string, Listener[]>();
  constructor(readonly url: string) {
    FakeEventSource.made.push(this);
  }
  addEventListener(type: string, fn: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close(): void {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }
  private emit(type: string, ev: unknown): void {
    for (const fn of this.listeners.get(type) ?? []) fn(ev);
  }
  open(): void {
    this.readyState = FakeEventSource.OPEN;
    this.emit('open', {});
  }
  send(event: string, data: unknown): void {
    this.emit(event, { data: JSON.stringify(data) });
  }
  /** A failed connection: CONNECTING (the browser retries by itself) or CLOSED (it gave up: a non-200 answer). */
  fail(readyState: number): void {
    this.readyState = readyState;
    this.emit('error', {});
  }
}

/** A uPlot that keeps its data. */
class FakeUplot {
  static readonly made: FakeUplot[] = [];
  destroyed = false;
  constructor(
    readonly opts: unknown,
    public data: unknown,
    readonly box: FakeElement,
  ) {
    FakeUplot.made.push(this);
  }
  setData(data: unknown): void {
    this.data = data;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

interface Page {
  readonly root: FakeElement;
  readonly $: (id: string) => FakeElement;
  /** The EventSources the page made, oldest first. */
  readonly streams: FakeEventSource[];
  /** The newest EventSource. */
  stream(): FakeEventSource;
  /** The POSTs the page sent. */
  readonly posts: string[];
  /** How many times the page called location.reload(). */
  reloads(): number;
}

interface PageOptions {
  /** The build the served index.html carries (src/assets.ts fills it in); none: the file as it is on disk. */
  readonly build?: string;
  /** The tab's sessionStorage, kept across loads of the page (a reload keeps it); none: a new, empty one. */
  readonly storage?: Map<string, string>;
}

/**
 * Loads public/app.js afresh into a page built from public/index.html. Call vi.useFakeTimers() first to drive the
 * page's timers; undo with vi.unstubAllGlobals() (and vi.useRealTimers()).
 */
async function loadPage(opts: PageOptions = {}): Promise<Page> {
  const file = readFileSync(fileURLToPath(new URL('../public/index.html', import.meta.url)), 'utf8');
  const html = opts.build === undefined ? file : withBuild(file, opts.build);
  const root = parsePage(html);
  const byId = (id: string) => root.all().find((e) => e.id === id) ?? null;
  const body = new FakeElement('body');
  const posts: string[] = [];
  FakeEventSource.made.length = 0;
  FakeUplot.made.length = 0;
  const storage = opts.storage ?? new Map<string, string>();
  let reloads = 0;
  vi.stubGlobal('location', { reload: () => reloads++ });
  vi.stubGlobal('Node', FakeNode);
  vi.stubGlobal('document', {
    body,
    getElementById: byId,
    createElement: (tag: string) => new FakeElement(tag),
    createTextNode: (text: string) => new FakeText(text),
  });
  vi.stubGlobal('sessionStorage', {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => storage.set(k, v),
  });
  vi.stubGlobal('window', { confirm: () => true, alert: () => undefined });
  vi.stubGlobal('EventSource', FakeEventSource);
  vi.stubGlobal('uPlot', FakeUplot);
  vi.stubGlobal('fetch', async (path: string, init?: { method?: string }) => {
    if (init?.method === 'POST') posts.push(path);
    const body = path === '/api/changes' ? { revisions: [], more: false, compacted: false } : {};
    return { ok: true, status: 200, json: async () => body };
  });
  vi.resetModules();
  // A variable specifier: app.js is plain JavaScript without types, and every load is a new module instance.
  const app = '../public/app.js';
  await import(/* @vite-ignore */ app);
  return {
    root,
    $: (id) => {
      const e = byId(id);
      if (!e) throw new Error(`page-harness: no element #${id}`);
      return e;
    },
    streams: FakeEventSource.made,
    stream: () => FakeEventSource.made.at(-1) as FakeEventSource,
    posts,
    reloads: () => reloads,
  };
}

/** A fleet view as the server sends it (src/fleet-view.ts FleetView), with one node and no VIPs. */
function viewRecord(over: Record<string, unknown> = {}) {
  return {
    revision: 7,
    leader: 'n1',
    problems: [],
    nodes: [
      {
        name: 'n1',
        leader: true,
        alive: true,
        address: '198.18.0.11',
        bgp: {},
        bfd: {},
        drained: false,
        failStatic: false,
        announced: [],
        tables: [],
        desiredRevision: 7,
      },
    ],
    vips: [],
    pools: [],
    ...over,
  };
}

const emptyMetrics = () => ({
  t: [] as number[],
  packetsPerNode: {} as Record<string, (number | null)[]>,
  flowsPerNode: {},
  packetsPerBackend: {},
  dropsPerNode: {},
  errors: {},
});

/** One tick of `lab watch` (lab/src/flows/publish.ts LabFlows), stamped by the lab host's clock. */
const labFlows = (at: string) => ({
  lab: 'l1',
  at,
  total: 10,
  open: 10,
  broken: 0,
  longestPauseMs: 0,
  nodes: ['n1'],
  nextHops: ['n1'],
  down: [],
  backends: ['198.18.1.1:80'],
  perNode: { n1: 10 },
  perBackend: { '198.18.1.1:80': 10 },
});

describe('page', () => {
  let page: Page;
  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] });
    page = await loadPage();
  });
  afterEach(() => {
    vi.clearAllTimers();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  /** Opens the newest stream and sends what the server sends on connect (src/server.ts /api/stream), at once. */
  const connected = (view = viewRecord()) => {
    const es = page.stream();
    es.open();
    es.send('hello', { writes: true, instance: 'i1' });
    es.send('view', view);
    es.send('timeline', []);
    es.send('metrics', emptyMetrics());
    return es;
  };
  const drainButton = () => page.$('nodes').querySelector('button[data-action="drain"]') as FakeElement;
  const stale = () =>
    (globalThis as unknown as { document: { body: FakeElement } }).document.body.classList.contains('stale');

  test('page - a stream the browser gave up on (CLOSED) is opened again, 1 s doubling to 30 s; stale and read-only meanwhile', async () => {
    const first = connected();
    expect(page.$('live').textContent).toBe('live');
    expect(drainButton().disabled).toBe(false);
    expect(stale()).toBe(false);

    first.fail(FakeEventSource.CLOSED); // a proxy's 502 while the dashboard restarts
    expect(first.closed).toBe(true);
    expect(page.$('live').className).toBe('badge off');
    expect(stale()).toBe(true);
    expect(page.$('summary').textContent).toMatch(/^last known: revision 7/);
    expect(drainButton().disabled).toBe(true);

    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = page.streams.length;
      let waited = 0;
      while (page.streams.length === before && waited < 60_000) {
        await vi.advanceTimersByTimeAsync(250);
        waited += 250;
      }
      delays.push(waited);
      page.stream().fail(FakeEventSource.CLOSED);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);

    await vi.advanceTimersByTimeAsync(30_000);
    connected();
    expect(page.$('live').textContent).toBe('live');
    expect(stale()).toBe(false);
    expect(drainButton().disabled).toBe(false);
    // Working again: the next failure starts over at 1 s.
    const count = page.streams.length;
    page.stream().fail(FakeEventSource.CLOSED);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(page.streams.length).toBe(count + 1);
  });

  test('page - an error the browser retries itself (CONNECTING) opens no second stream; it says reconnecting', async () => {
    const es = connected();
    es.fail(FakeEventSource.CONNECTING);
    expect(page.$('live').textContent).toBe('reconnecting');
    expect(drainButton().disabled).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(page.streams).toHaveLength(1);
    es.open(); // the old view is still all the page has: live only once the new stream's view came
    expect(page.$('live').textContent).toBe('loading');
    expect(stale()).toBe(true);
    expect(drainButton().disabled).toBe(true);
    es.send('hello', { writes: true, instance: 'i1' });
    es.send('view', viewRecord({ revision: 8 }));
    expect(page.$('live').textContent).toBe('live');
    expect(page.$('summary').textContent).toMatch(/^revision 8/);
    expect(drainButton().disabled).toBe(false);
  });

  test('page - a reopened stream is not live before its view: the last one stays "last known", writes off', async () => {
    connected();
    page.stream().fail(FakeEventSource.CLOSED);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(page.streams).toHaveLength(2);
    const es = page.stream();
    es.open();
    expect(page.$('live').textContent).toBe('loading');
    expect(page.$('live').className).toBe('badge off');
    expect(stale()).toBe(true);
    expect(page.$('summary').textContent).toMatch(/^last known: revision 7/);
    expect(drainButton().disabled).toBe(true);
    es.send('hello', { writes: true, instance: 'i1' });
    expect(stale()).toBe(true);
    expect(drainButton().disabled).toBe(true);
    es.send('view', viewRecord({ revision: 9 }));
    expect(page.$('live').textContent).toBe('live');
    expect(stale()).toBe(false);
    expect(page.$('summary').textContent).toMatch(/^revision 9/);
    expect(drainButton().disabled).toBe(false);
  });

  test('page - a full state that takes longer than 2.5 heartbeats to arrive (a slow link) is not cut', async () => {
    const es = page.stream();
    es.open();
    es.send('hello', { writes: true, instance: 'i1' });
    // The view (~22 MiB at 100 VIPs of 1,000 members) is in transit, the pings written behind it.
    for (let round = 0; round < 3; round++) {
      await vi.advanceTimersByTimeAsync(37_500);
      expect(page.streams).toHaveLength(1);
      expect(es.closed).toBe(false);
    }
    es.send('view', viewRecord());
    expect(page.$('live').textContent).toBe('live');
    expect(drainButton().disabled).toBe(false);
    await vi.advanceTimersByTimeAsync(37_500); // the timeline (up to 500 entries of 64 KiB) after it
    expect(es.closed).toBe(false);
    es.send('timeline', []);
    es.send('metrics', emptyMetrics()); // the full state took 150 s
    es.send('ping', { everyMs: 15_000 });
    // A later view takes as long and holds back the pings behind it: 2.5 heartbeats + 150 s before it counts as dead.
    await vi.advanceTimersByTimeAsync(187_000);
    expect(es.closed).toBe(false);
    es.send('view', viewRecord({ revision: 8 }));
    es.send('ping', { everyMs: 15_000 });
    await vi.advanceTimersByTimeAsync(187_000);
    expect(page.$('live').textContent).toBe('live');
    await vi.advanceTimersByTimeAsync(1_000); // then silence (a half-open connection) is still found
    expect(page.$('live').textContent).toMatch(/^stale/);
    expect(stale()).toBe(true);
    expect(es.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(page.streams).toHaveLength(2);
  });

  test('page - a full state still not complete after 10 minutes: stale, and a new stream', async () => {
    const es = page.stream();
    es.open();
    es.send('hello', { writes: true, instance: 'i1' });
    await vi.advanceTimersByTimeAsync(599_000);
    expect(es.closed).toBe(false);
    es.send('view', viewRecord());
    await vi.advanceTimersByTimeAsync(599_000); // each record of the full state restarts the bound
    expect(es.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(es.closed).toBe(true);
    expect(page.$('live').textContent).toMatch(/^stale/);
    expect(drainButton().disabled).toBe(true);
  });

  test('page - a fast full state: 2.5 heartbeats of silence after it reopen the stream', async () => {
    const es = connected();
    await vi.advanceTimersByTimeAsync(37_400);
    expect(es.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(es.closed).toBe(true);
    expect(page.$('live').textContent).toMatch(/^stale/);
  });

  test('page - nothing for 2.5 heartbeats (a half-open connection): stale, and a new stream', async () => {
    const es = connected();
    es.send('ping', { everyMs: 1_000 });
    await vi.advanceTimersByTimeAsync(2_400);
    es.send('ping', { everyMs: 1_000 });
    await vi.advanceTimersByTimeAsync(2_400);
    expect(page.$('live').textContent).toBe('live');
    expect(page.streams).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(page.$('live').textContent).toMatch(/^stale/);
    expect(stale()).toBe(true);
    expect(drainButton().disabled).toBe(true);
    expect(es.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(page.streams).toHaveLength(2);
  });

  /** A pool `web` with member `a`, decided up, with these health fields (src/fleet-view.ts MemberRow). */
  const memberView = (health: Record<string, unknown>, downReasons: Record<string, string>, downReasonsOmitted = 0) =>
    viewRecord({
      pools: [
        {
          name: 'web',
          healthCheck: 'tcp',
          backupsServing: false,
          members: [
            {
              ...{ name: 'a', endpoint: '198.18.0.21:80', weight: 1, state: 'active', decided: 'up' },
              ...{ slowStartPercent: null, health, downReasons, downReasonsOmitted },
            },
          ],
        },
      ],
    });
  const memberField = (field: string) =>
    page
      .$('members')
      .querySelectorAll(`tr[data-member="web/a"] [data-field="${field}"]`)
      .map((e) => e.textContent);

  test('page - a member shows how many nodes see it up and down, and names the one that disagrees with its reason', () => {
    const health = { up: 63, down: 1, unknown: 0, disagree: [{ node: 'n7', status: 'down' }], disagreeOmitted: 0 };
    connected(memberView(health, { n7: 'ECONNREFUSED' }));
    expect(memberField('health-counts')).toEqual(['63 up 1 down']);
    expect(memberField('disagree')).toEqual(['n7 sees it down alone']);
    expect(memberField('down-reason')).toEqual(['n7: ECONNREFUSED']);
  });

  test('page - of many disagreeing nodes the page names those sent and counts the rest', () => {
    const disagree = Array.from({ length: 8 }, (_, i) => ({ node: `n${i + 1}`, status: 'down' }));
    const health = { up: 44, down: 20, unknown: 2, disagree, disagreeOmitted: 12 };
    const reasons = Object.fromEntries(disagree.map((d) => [d.node, 'timeout']));
    connected(memberView(health, reasons, 12));
    expect(memberField('health-counts')).toEqual(['44 up 20 down 2 unknown']);
    expect(memberField('disagree')).toEqual([
      'disagree: n1 down, n2 down, n3 down, n4 down, n5 down, n6 down, n7 down, n8 down and 12 more',
    ]);
    expect(memberField('down-reason')).toHaveLength(8);
    expect(memberField('down-reasons-omitted')).toEqual(['and 12 more nodes with a reason']);
  });

  test('page - several problems are one line each', () => {
    connected(viewRecord({ problems: ['etcd unreachable since 2026-01-01T00:00:00Z', 'n2: table checksum mismatch'] }));
    const lines = page.$('problems').children.map((c) => c.textContent);
    expect(lines).toEqual(['etcd unreachable since 2026-01-01T00:00:00Z', 'n2: table checksum mismatch']);
    expect(page.$('problems').hidden).toBe(false);
  });

  test("page - lab flows go stale 5 s after the last tick came, whatever the lab host's clock says", async () => {
    const es = connected();
    const staleBadge = () => page.$('flows-section').querySelector('[data-field="stale"]');
    // The lab host's clock is an hour behind the browser's.
    es.send('flows', labFlows(new Date(Date.now() - 3_600_000).toISOString()));
    expect(page.$('flows-section').hidden).toBe(false);
    expect(staleBadge()).toBeNull();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(staleBadge()).toBeNull();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(staleBadge()).not.toBeNull();
    // An hour ahead: stale all the same once ticks stop.
    es.send('flows', labFlows(new Date(Date.now() + 3_600_000).toISOString()));
    expect(staleBadge()).toBeNull();
    await vi.advanceTimersByTimeAsync(6_000);
    expect(staleBadge()).not.toBeNull();
  });

  test('page - a chart whose series change stays where it was', () => {
    const es = connected();
    const m = emptyMetrics();
    m.t.push(1);
    m.packetsPerNode = { n1: [1] };
    es.send('metrics', m);
    const order = () => page.$('charts').children.map((c) => c.getAttribute('data-chart'));
    const before = order();
    expect(before).toEqual(['packetsPerNode', 'flowsPerNode', 'packetsPerBackend', 'dropsPerNode']);
    m.packetsPerNode = { n1: [1], n2: [2] };
    es.send('metrics', m);
    expect(order()).toEqual(before);
  });

  test('page - a metrics column that does not follow the last one held (clock stepped back) reloads the history', async () => {
    const es = connected();
    es.send('metrics', { ...emptyMetrics(), t: [3600, 3602], packetsPerNode: { n1: [1, 2] } });
    const column = {
      t: 4,
      prevT: 2,
      packetsPerNode: { n1: 3 },
      flowsPerNode: {},
      packetsPerBackend: {},
      dropsPerNode: {},
      errors: {},
      capacity: 300,
    };
    es.send('metrics-column', column);
    expect(es.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(page.streams).toHaveLength(2);
    const again = connected();
    again.send('metrics', { ...emptyMetrics(), t: [0, 2, 4], packetsPerNode: { n1: [1, 2, 3] } });
    again.send('metrics-column', { ...column, t: 6, prevT: 4, packetsPerNode: { n1: 4 } });
    expect(again.closed).toBe(false);
    expect(page.$('live').textContent).toBe('live');
  });
});

describe('page build', () => {
  afterEach(() => {
    vi.clearAllTimers();
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });
  /** A page of `build` that has just been (re)loaded in a tab whose sessionStorage is `storage`. */
  const pageOf = async (build: string | undefined, storage: Map<string, string>) => {
    vi.clearAllTimers(); // the page before this one is gone: none of its timers may open streams in this one's list
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'] });
    return loadPage({ ...(build === undefined ? {} : { build }), storage });
  };
  /** The server's first records on a new stream (src/server.ts /api/stream) up to the hello; the view apart. */
  const hello = (p: Page, data: Record<string, unknown>) => {
    const es = p.stream();
    es.open();
    es.send('hello', { writes: true, ...data });
    return es;
  };

  test('page build - a hello from a dashboard serving another build reloads the page once, before its view is drawn', async () => {
    const storage = new Map<string, string>();
    const page = await pageOf('b1', storage);
    const first = hello(page, { instance: 'i1', build: 'b1' });
    first.send('view', viewRecord());
    expect(page.reloads()).toBe(0);
    expect(page.$('summary').textContent).toMatch(/^revision 7/);

    // The dashboard restarts on a new build under the open page: the page's old scripts must not draw its views.
    first.fail(FakeEventSource.CLOSED);
    await vi.advanceTimersByTimeAsync(1_000);
    const second = hello(page, { instance: 'i2', build: 'b2' });
    expect(page.reloads()).toBe(1);
    expect(second.closed).toBe(true);
    second.send('view', viewRecord({ revision: 8 }));
    expect(page.$('summary').textContent).not.toMatch(/revision 8/);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(page.streams).toHaveLength(2); // nothing reopened behind the reload

    // The reload came back with the old build (a cache, a proxy): no second reload, the page says it is older.
    const stale = await pageOf('b1', storage);
    const again = hello(stale, { instance: 'i2', build: 'b2' });
    again.send('view', viewRecord({ revision: 8 }));
    expect(stale.reloads()).toBe(0);
    expect(again.closed).toBe(false);
    expect(stale.$('summary').textContent).toMatch(/^revision 8 .*reload/);
  });

  // No page here is served its own build (each stream went to the other dashboard), so none drops a build from the list.
  test('page build - at most one reload per build in a tab, even between two dashboards of different builds', async () => {
    const storage = new Map<string, string>();
    const one = await pageOf('b1', storage);
    hello(one, { instance: 'i2', build: 'b2' });
    expect(one.reloads()).toBe(1);
    const two = await pageOf('b2', storage);
    hello(two, { instance: 'i1', build: 'b1' }); // a proxy in front of both sent this one to the old dashboard
    expect(two.reloads()).toBe(1);
    const three = await pageOf('b1', storage);
    hello(three, { instance: 'i2', build: 'b2' });
    expect(three.reloads()).toBe(0);
  });

  /** The dashboard restarts under `p` (its stream fails, the page opens another): the new stream's hello. */
  const restart = async (p: Page, data: Record<string, unknown>) => {
    p.stream().fail(FakeEventSource.CLOSED);
    await vi.advanceTimersByTimeAsync(1_000);
    return hello(p, data);
  };

  test('page build - upgrade, roll back, upgrade again: each reloads the page that the dashboard had served its own build', async () => {
    const storage = new Map<string, string>();
    const p1 = await pageOf('b1', storage);
    hello(p1, { instance: 'i1', build: 'b1' }).send('view', viewRecord());
    await restart(p1, { instance: 'i2', build: 'b2' }); // upgrade
    expect(p1.reloads()).toBe(1);

    const p2 = await pageOf('b2', storage); // the reload came back with the new scripts, and the dashboard is b2
    hello(p2, { instance: 'i2', build: 'b2' }).send('view', viewRecord({ revision: 8 }));
    await restart(p2, { instance: 'i3', build: 'b1' }); // rolled back
    expect(p2.reloads()).toBe(1);

    const p3 = await pageOf('b1', storage);
    hello(p3, { instance: 'i3', build: 'b1' }).send('view', viewRecord({ revision: 8 }));
    const again = await restart(p3, { instance: 'i4', build: 'b2' }); // upgraded again: b1's scripts must not draw b2
    again.send('view', viewRecord({ revision: 9 }));
    expect(p3.reloads()).toBe(1);
    expect(again.closed).toBe(true);
    expect(p3.$('summary').textContent).not.toMatch(/revision 9/);

    // That reload comes back stale (a cache): it still does not loop, as b2 was never served to a b2 page since.
    const stale = await pageOf('b1', storage);
    hello(stale, { instance: 'i4', build: 'b2' }).send('view', viewRecord({ revision: 9 }));
    expect(stale.reloads()).toBe(0);
    expect(stale.$('summary').textContent).toMatch(/^revision 9 .*older/);
  });

  test("page build - the note that the page is older goes once the dashboard serves the page's build again", async () => {
    const storage = new Map<string, string>([['l4fleet-reloaded-for', JSON.stringify(['b2'])]]);
    const page = await pageOf('b1', storage); // a reload for b2 that came back with b1's scripts
    hello(page, { instance: 'i2', build: 'b2' }).send('view', viewRecord({ revision: 8 }));
    expect(page.reloads()).toBe(0);
    expect(page.$('summary').textContent).toMatch(/older/);

    const back = await restart(page, { instance: 'i3', build: 'b1' }); // rolled back, or the proxy's other dashboard
    back.send('view', viewRecord({ revision: 9 }));
    expect(page.$('summary').textContent).toMatch(/^revision 9/);
    expect(page.$('summary').textContent).not.toMatch(/older/);

    await restart(page, { instance: 'i4', build: 'b2' }).then((es) => es.send('view', viewRecord({ revision: 10 })));
    expect(page.$('summary').textContent).toMatch(/^revision 10 .*older/);
    const unknown = await restart(page, { instance: 'i5' }); // a dashboard from before builds were sent
    unknown.send('view', viewRecord({ revision: 11 }));
    expect(page.$('summary').textContent).not.toMatch(/older/);
  });

  test('page build - the same build, or a build missing from the page or the hello, never reloads', async () => {
    const storage = new Map<string, string>();
    const same = await pageOf('b1', storage);
    hello(same, { instance: 'i2', build: 'b1' });
    expect(same.reloads()).toBe(0);
    const fromOlder = await pageOf('b1', storage);
    hello(fromOlder, { instance: 'i2' }); // a dashboard from before builds were sent
    expect(fromOlder.reloads()).toBe(0);
    const unfilled = await pageOf(undefined, storage); // index.html as on disk, no build in it
    hello(unfilled, { instance: 'i2', build: 'b2' });
    expect(unfilled.reloads()).toBe(0);
    expect(storage.size).toBe(0);
  });

  test('page build - a tab that reloaded for 20 builds remembers the 16 latest only (the list stays small)', async () => {
    const storage = new Map<string, string>();
    const builds = Array.from({ length: 20 }, (_, i) => `b${i + 1}`);
    for (const build of builds) {
      const page = await pageOf('b0', storage); // each reload came back with the old scripts
      hello(page, { instance: `i-${build}`, build });
      expect(page.reloads()).toBe(1);
    }
    expect(JSON.parse(storage.get('l4fleet-reloaded-for') ?? '')).toEqual(builds.slice(-16));
    const latest = await pageOf('b0', storage);
    hello(latest, { instance: 'i-b20', build: 'b20' });
    expect(latest.reloads()).toBe(0); // still once per build for the ones kept
  });
});
