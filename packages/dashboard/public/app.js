/**
 * The page: follows /api/stream (server-sent events) and re-renders; actions ask for confirmation and send the
 * token as a bearer header (kept in sessionStorage for this tab only). Until a stream has sent its own view the page
 * says what it shows is the last state known (dimmed, "last known") and its write buttons are off: a drain must not
 * be decided on a stale view.
 */

import { renderChanges, renderFlows, renderTimeline } from './activity.js';
import { createCharts } from './charts.js';
import { el } from './dom.js';
import { renderMembers, renderNodes, renderVips } from './render.js';
import { createTimelineList } from './timeline-list.js';

const $ = (id) => document.getElementById(id);
const state = { writes: false, live: false, view: undefined, outdated: false };
const charts = createCharts($('charts'), $('charts-note'));
const tokenInput = $('token');
tokenInput.value = sessionStorage.getItem('l4fleet-token') ?? '';
tokenInput.addEventListener('change', () => sessionStorage.setItem('l4fleet-token', tokenInput.value));

async function post(path, body) {
  const headers = { 'content-type': 'application/json' };
  if (tokenInput.value) headers.authorization = `Bearer ${tokenInput.value}`;
  const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body ?? {}) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

/** Every write is confirmed first; the outcome (and a refusal) also lands in the timeline from the server. */
async function act(question, path) {
  if (!window.confirm(question)) return;
  try {
    await post(path);
  } catch (err) {
    window.alert(`refused: ${err.message}`);
  }
}

/** The changes list is read once per desired revision (GET /api/changes), not pushed: it costs etcd reads. */
let changesRevision;
async function refreshChanges(revision) {
  if (revision === changesRevision) return;
  changesRevision = revision;
  try {
    const res = await fetch('/api/changes');
    const data = await res.json();
    if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
    renderChanges($('changes').tBodies[0], $('changes-note'), data);
  } catch (err) {
    changesRevision = undefined; // read again with the next view
    $('changes-note').textContent = `changes: ${err.message}`;
  }
}

function render() {
  const v = state.view;
  if (!v) return;
  void refreshChanges(v.revision);
  $('summary').textContent =
    `${state.live ? '' : 'last known: '}revision ${v.revision} · leader ${v.leader ?? '(none)'} · ${v.nodes.length} nodes · ${v.vips.length} VIPs` +
    (state.outdated ? ' · this page is older than the dashboard: reload it' : '');
  $('writes').textContent = state.writes ? 'writes enabled' : 'read-only (no token configured)';
  $('writes').className = `badge ${state.writes ? 'on' : 'warn'}`;
  $('token-box').hidden = !state.writes;
  $('problems').hidden = v.problems.length === 0;
  // One line each: several problems (etcd down, a table mismatch) must not run together.
  $('problems').replaceChildren(...v.problems.map((p) => el('div', { class: 'problem' }, p)));
  const writes = state.writes && state.live;
  renderNodes($('nodes').tBodies[0], v, writes, act);
  renderVips($('vips').tBodies[0], v, writes, act);
  renderMembers($('members').tBodies[0], v, writes, act);
  const select = $('explain').elements.vip;
  const chosen = select.value;
  select.replaceChildren(...v.vips.map((x) => el('option', { value: x.key, selected: x.key === chosen }, x.key)));
}

$('explain').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  const out = $('explain-result');
  try {
    // The field as typed: Number('') is 0, a port the operator never gave; the server refuses anything but 0-65535.
    const r = await post('/api/explain', { src: f.src.value.trim(), sport: f.sport.value.trim(), vip: f.vip.value });
    out.textContent = [
      `flow:     ${r.flow}`,
      `slot:     ${r.slot} of ${r.tableSize} (hash ${r.hash}, seed 0x${r.seed.toString(16)}, checksum ${r.checksum}, revision ${r.revision})`,
      `backend:  ${r.backend ? `${r.backend} (${r.address}, pool ${r.pool})` : r.served === false ? '(none: the VIP is disabled)' : '(none: the data plane drops it)'}`,
      ...r.why.map((w) => `why:      ${w}`),
    ].join('\n');
  } catch (err) {
    out.textContent = `error: ${err.message}`;
  }
});

$('all-probes').addEventListener('change', (ev) => $('timeline').classList.toggle('hide-probes', !ev.target.checked));

/** The server's heartbeat (src/sse.ts SSE_HEARTBEAT_MS) until its first `ping` says how often it comes. */
const HEARTBEAT_MS = 15_000;
/** No event for this many heartbeats: the connection is dead though it never errored (half-open TCP). */
const SILENT_HEARTBEATS = 2.5;
/**
 * Until a stream's full state is in (its first `metrics`, the last record the server sends on connect: src/server.ts),
 * each record may take this long. The pings are written behind the view (~22 MiB at 100 VIPs of 1,000 members) and
 * the timeline (up to 500 entries of 64 KiB), which a slow link (a VPN) needs minutes for: cut after 2.5 heartbeats,
 * every new stream would be sent it all again and cut again, and the page would never become live.
 */
const LOADING_LIMIT_MS = 10 * 60_000;
/** A new EventSource after one the browser gave up on: 1 s, doubling up to 30 s, back to 1 s once one works. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

const live = $('live');
function showLink(on, text) {
  live.textContent = text;
  live.className = `badge ${on ? 'on' : 'off'}`;
  if (state.live === on) return;
  state.live = on;
  document.body.classList.toggle('stale', !on);
  render();
}

/**
 * The build this page's scripts are (src/assets.ts writes it into index.html); empty or absent (the file as on disk):
 * unknown, never compared.
 */
const LOADED_BUILD = $('build')?.getAttribute('content') || undefined;
/**
 * sessionStorage key: the builds this tab reloaded for and has not yet been served as its own build since (JSON
 * array). A build stays in it while reloads for it come back with other scripts, so they never loop.
 */
const RELOADED_FOR = 'l4fleet-reloaded-for';
/** Builds remembered: enough for any upgrade, and the list stays small. */
const RELOADED_KEPT = 16;

function reloadedFor() {
  try {
    const done = JSON.parse(sessionStorage.getItem(RELOADED_FOR) ?? '[]');
    return Array.isArray(done) ? done : [];
  } catch {
    return [];
  }
}

/**
 * Reloads the page when the dashboard serves another build than the one its scripts are: they were loaded once, and
 * would draw the new build's views with the old code (a member's health as `disagree [object Object]`). Once per build
 * until the dashboard serves this page its own build, so a reload that comes back with the old scripts (a cache, a
 * proxy, two dashboards of different builds behind one address) never loops: the page then runs on and says it is
 * older. True: reloading.
 */
function reloadForBuild(build) {
  if (LOADED_BUILD === undefined || typeof build !== 'string' || build === '') {
    state.outdated = false; // nothing to compare: no note that could be wrong
    return false;
  }
  const done = reloadedFor();
  if (build === LOADED_BUILD) {
    state.outdated = false; // a rollback, or the proxy's other dashboard: these scripts are the dashboard's again
    // Page and dashboard agree, so a reload for this build (if any) arrived: forget it, or a later change back to it
    // (upgrade, roll back, upgrade again) would find it here and draw its views with the old scripts. Not when the
    // page merely loads: behind a proxy alternating two builds, every reload would land and reload again.
    if (done.includes(build)) sessionStorage.setItem(RELOADED_FOR, JSON.stringify(done.filter((b) => b !== build)));
    return false;
  }
  if (done.includes(build)) {
    state.outdated = true;
    return false;
  }
  sessionStorage.setItem(RELOADED_FOR, JSON.stringify([...done, build].slice(-RELOADED_KEPT)));
  location.reload();
  return true;
}

// The timeline's ids are the server process's: a hello from another process (the dashboard restarted) clears it.
const timelineList = createTimelineList();
/** The last flows record and performance.now() when it came: its age is the browser's, not the lab host's clock. */
let flows;
const handlers = {
  hello(data) {
    if (reloadForBuild(data.build)) {
      // Nothing more of this stream: its view is the new build's, for the new scripts.
      stop('reloading (new version)');
      return;
    }
    state.writes = data.writes;
    if (timelineList.hello(data.instance)) $('timeline').replaceChildren();
    render();
  },
  view(data) {
    state.view = data;
    if (state.live) render();
    else showLink(true, 'live'); // this stream's own view: what the page shows is current again
  },
  timeline: (data) => renderTimeline($('timeline'), data, timelineList),
  metrics(data) {
    loadedMs ??= performance.now() - openedAtMs; // first: a chart that fails to draw still ends the full state
    charts.update(data);
  },
  'metrics-column'(data) {
    // Not the column after the page's last (the server moved its time axis back after a wall clock step): a new
    // stream sends the whole history again, where skipping would freeze the charts until the clock caught up.
    if (charts.append(data) === 'out-of-step') reopen('reloading charts');
  },
  flows(data) {
    flows = { record: data, atMs: performance.now() };
    renderFlows($('flows-section'), data, 0);
  },
  ping(data) {
    if (Number.isFinite(data?.everyMs) && data.everyMs > 0) heartbeatMs = data.everyMs;
  },
};

let stream;
let heartbeatMs = HEARTBEAT_MS;
let retryMs = RETRY_FIRST_MS;
let retryTimer;
let silenceTimer;
/** performance.now() at this connection's `open`, and how long its full state then took (undefined: still coming). */
let openedAtMs = 0;
let loadedMs;

/**
 * Arms (again) the check that something arrives in time: LOADING_LIMIT_MS while the full state comes, then
 * SILENT_HEARTBEATS heartbeats plus the time the full state took, as a later view takes about as long and holds back
 * the pings written behind it (a half-open connection is still found, later on a slower link).
 */
function watchSilence() {
  clearTimeout(silenceTimer);
  const limitMs = loadedMs === undefined ? LOADING_LIMIT_MS : SILENT_HEARTBEATS * heartbeatMs + loadedMs;
  silenceTimer = setTimeout(() => reopen(`stale: nothing for ${Math.round(limitMs / 1000)} s`), limitMs);
}

function connect() {
  retryTimer = undefined;
  loadedMs = 0; // until it opens: the heartbeat limit, as before any full state
  const es = new EventSource('/api/stream');
  stream = es;
  const mine = (fn) => (e) => {
    if (es === stream) fn(e);
  };
  es.addEventListener(
    'open',
    mine(() => {
      // Not live yet: until this stream's view comes, the page shows the last one (stale, writes off), and a drain
      // must not be decided on it. Also after the browser's own retry, which opens the same EventSource again.
      showLink(false, 'loading');
      openedAtMs = performance.now();
      loadedMs = undefined;
      watchSilence();
    }),
  );
  es.addEventListener(
    'error',
    mine(() => {
      // CLOSED: the browser gave up (a response that was not a 200 event stream, as a proxy's 502 while the
      // dashboard restarts; WHATWG HTML §9.2) and never retries: a new EventSource must. Otherwise it retries itself.
      if (es.readyState === EventSource.CLOSED) reopen('reconnecting');
      else showLink(false, 'reconnecting');
    }),
  );
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(
      name,
      mine((e) => {
        if (name === 'hello') retryMs = RETRY_FIRST_MS; // the server answered with its stream: it works again
        try {
          fn(JSON.parse(e.data));
        } finally {
          if (es === stream) watchSilence(); // after a ping: with the interval it gave
        }
      }),
    );
  }
  watchSilence();
}

/** Drops the current stream and opens none (the page is reloading). */
function stop(why) {
  stream?.close();
  stream = undefined;
  clearTimeout(silenceTimer);
  clearTimeout(retryTimer);
  retryTimer = undefined;
  showLink(false, why);
}

/** Drops the current stream and opens a new one after the backoff (one pending at a time). */
function reopen(why) {
  stream?.close();
  stream = undefined;
  clearTimeout(silenceTimer);
  showLink(false, why);
  if (retryTimer !== undefined) return;
  retryTimer = setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
}

connect();
// Ticks arrive every second while `lab watch` runs: re-render so the panel says so once they stop.
setInterval(() => flows && renderFlows($('flows-section'), flows.record, performance.now() - flows.atMs), 2_000);
