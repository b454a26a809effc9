/**
 * The page: follows /api/stream (server-sent events) and re-renders; actions ask for confirmation and send the
 * token as a bearer header (kept in sessionStorage for this tab only).
 */

import { renderChanges, renderFlows, renderTimeline } from './activity.js';
import { createCharts } from './charts.js';
import { el } from './dom.js';
import { renderMembers, renderNodes, renderVips } from './render.js';
import { createTimelineList } from './timeline-list.js';

const $ = (id) => document.getElementById(id);
const state = { writes: false, view: undefined };
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
    `revision ${v.revision} · leader ${v.leader ?? '(none)'} · ${v.nodes.length} nodes · ${v.vips.length} VIPs`;
  $('writes').textContent = state.writes ? 'writes enabled' : 'read-only (no token configured)';
  $('writes').className = `badge ${state.writes ? 'on' : 'warn'}`;
  $('token-box').hidden = !state.writes;
  $('problems').hidden = v.problems.length === 0;
  $('problems').textContent = v.problems.join('\n');
  renderNodes($('nodes').tBodies[0], v, state.writes, act);
  renderVips($('vips').tBodies[0], v, state.writes, act);
  renderMembers($('members').tBodies[0], v, state.writes, act);
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

const live = $('live');
const stream = new EventSource('/api/stream');
stream.addEventListener('open', () => {
  live.textContent = 'live';
  live.className = 'badge on';
});
stream.addEventListener('error', () => {
  live.textContent = 'reconnecting';
  live.className = 'badge off';
});
// The timeline's ids are the server process's: a hello from another process (the dashboard restarted) clears it.
const timelineList = createTimelineList();
stream.addEventListener('hello', (e) => {
  const hello = JSON.parse(e.data);
  state.writes = hello.writes;
  if (timelineList.hello(hello.instance)) $('timeline').replaceChildren();
  render();
});
stream.addEventListener('view', (e) => {
  state.view = JSON.parse(e.data);
  render();
});
stream.addEventListener('timeline', (e) => renderTimeline($('timeline'), JSON.parse(e.data), timelineList));
stream.addEventListener('metrics', (e) => charts.update(JSON.parse(e.data)));
stream.addEventListener('metrics-column', (e) => charts.append(JSON.parse(e.data)));
let flows;
stream.addEventListener('flows', (e) => {
  flows = JSON.parse(e.data);
  renderFlows($('flows-section'), flows);
});
// Ticks arrive every second while `lab watch` runs: re-render so the panel says so once they stop.
setInterval(() => flows && renderFlows($('flows-section'), flows), 2_000);
