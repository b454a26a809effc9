/** Renders the page's activity: the event timeline, the lab's flows, the fleet's changes. Text through textContent only. */
import { badge, el, fill, PALETTE } from './dom.js';
import { isProbe } from './timeline-list.js';

function describeEntry(e) {
  const fields = Object.entries(e.data)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${e.at} ${e.node} ${e.kind} ${fields}`;
}

/**
 * Applies a `timeline` record to the list: prepends the entries it does not show yet, newest first, and removes
 * those `list` (timeline-list.js) dropped.
 */
export function renderTimeline(ol, entries, list) {
  const { added, dropped } = list.add(entries);
  for (const e of added) {
    const result = e.data.result ? ` ${e.data.result}` : '';
    // Every probe is an event; the ones that changed nothing are hidden unless asked for (see index.html).
    const probe = isProbe(e) ? ' probe' : '';
    const cls = `${e.kind === 'action' ? 'action' : ''}${result}${probe}`;
    ol.prepend(el('li', { class: cls, 'data-kind': e.kind, 'data-id': e.id }, describeEntry(e)));
  }
  for (const id of dropped) ol.querySelector(`li[data-id="${id}"]`)?.remove();
}

/** One row per name: count, a bar of its share of the open flows, and a flag (killed / failed / not in ECMP). */
function flowRows(tbody, attr, names, counts, open, flag) {
  fill(
    tbody,
    names.map((name) => {
      const n = counts[name] ?? 0;
      const pct = open ? (100 * n) / open : 0;
      const why = flag(name);
      return el(
        'tr',
        { [attr]: name, class: why ? 'off' : undefined },
        el('td', {}, name, why ? el('span', { class: 'note' }, ` ${why}`) : ''),
        el('td', { 'data-field': 'flows' }, n),
        el(
          'td',
          {},
          el('div', { class: 'share' }, el('span', { style: `width:${pct.toFixed(1)}%;background:${PALETTE[0]}` })),
        ),
      );
    }),
  );
}

/**
 * The live flows of `lab watch`: per node, per backend, broken, longest pause; marked stale when ticks stop.
 * `ageMs`: since the record arrived, on the browser's steady clock (`f.at` is the lab host's clock, not this one's).
 */
export function renderFlows(section, f, ageMs, staleMs = 5_000) {
  section.hidden = false;
  const summary = section.querySelector('#flows-summary');
  summary.replaceChildren(
    `lab ${f.lab} · flows ${f.total} · open ${f.open} · `,
    el('span', { 'data-field': 'broken', class: f.broken ? 'mismatch' : '' }, `broken ${f.broken}`),
    ' · ',
    el('span', { 'data-field': 'longestPause' }, `longest pause ${f.longestPauseMs} ms`),
    ` · at ${new Date(f.at).toLocaleTimeString()}`,
    ageMs > staleMs ? el('span', { class: 'badge warn', 'data-field': 'stale' }, 'stale: lab watch stopped?') : '',
  );
  const extra = (all, known) =>
    Object.keys(all)
      .filter((k) => !known.includes(k))
      .sort();
  flowRows(
    section.querySelector('#flows-nodes tbody'),
    'data-flow-node',
    [...f.nodes, ...extra(f.perNode, f.nodes)],
    f.perNode,
    f.open,
    (n) => (f.down.includes(n) ? 'killed' : f.nodes.includes(n) && !f.nextHops.includes(n) ? 'not in ECMP' : ''),
  );
  flowRows(
    section.querySelector('#flows-backends tbody'),
    'data-flow-backend',
    [...f.backends, ...extra(f.perBackend, f.backends)],
    f.perBackend,
    f.open,
    (b) => (f.down.includes(b) ? 'failed' : ''),
  );
}

/** One change as `l4fleet apply` prints it: `+ vip ...`, `- member web/be3`, `~ member web/be1: weight 1 -> 2`. */
function changeText(c) {
  const sign = c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~';
  return `${sign} ${c.subject}${c.detail ? `: ${c.detail}` : ''}`;
}

/** The fleet's last writes (GET /api/changes): newest first, the current one marked, each with what it changed. */
export function renderChanges(tbody, note, data) {
  fill(
    tbody,
    data.revisions.map((r) => {
      const what =
        r.invalid !== undefined
          ? [el('span', { class: 'badge off' }, 'invalid'), ` ${r.invalid}`]
          : r.changes === null
            ? el('span', { class: 'note' }, `(${r.note ?? 'changes unknown'})`)
            : r.changes.length === 0
              ? 'no changes'
              : el('ul', { class: 'changes' }, ...r.changes.map((c) => el('li', {}, changeText(c))));
      return el(
        'tr',
        { 'data-revision': r.revision },
        el('td', {}, String(r.revision), r.current ? [' ', badge('now', 'on')] : null),
        el('td', {}, r.appliedAt || '-', r.appliedBy ? el('div', { class: 'note' }, `by ${r.appliedBy}`) : null),
        el('td', {}, what),
      );
    }),
  );
  note.textContent = [
    data.more ? 'earlier writes: `l4fleet history --limit N`' : '',
    data.compacted ? 'earlier writes were compacted by etcd' : '',
  ]
    .filter(Boolean)
    .join(' · ');
}
