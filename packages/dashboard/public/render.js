/** Renders the fleet view into the page's tables. Text goes in through textContent only (never as HTML). */

/** Colours for backends and nodes, stable by position. */
export const PALETTE = ['#2b6cb0', '#c05621', '#2f855a', '#805ad5', '#b83280', '#2c7a7b', '#975a16', '#4a5568'];

/** `el('td', {class: 'x'}, 'text', child)`. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Number.POSITIVE_INFINITY)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const badge = (text, cls) => el('span', { class: `badge ${cls}` }, text);

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function actionButton(label, enabled, onClick, testId) {
  return el(
    'button',
    {
      type: 'button',
      disabled: !enabled,
      title: enabled ? undefined : 'writes are disabled (no token)',
      'data-action': testId,
      onclick: onClick,
    },
    label,
  );
}

/** Per peer: the BFD state (RFC 5880 §4.1) as the node reported it; `-` when the node runs no BFD. */
function bfdCell(bfd) {
  const peers = Object.entries(bfd ?? {});
  if (!peers.length) return '-';
  return peers.map(([peer, state]) =>
    el('div', { 'data-peer': peer }, badge(state, state === 'up' ? 'on' : 'off'), ' ', el('code', {}, peer)),
  );
}

export function renderNodes(tbody, view, writes, act) {
  fill(
    tbody,
    view.nodes.map((n) => {
      const sessions = Object.entries(n.bgp).map(([peer, state]) =>
        el('div', {}, badge(state, state === 'established' ? 'on' : 'off'), ' ', el('code', {}, peer)),
      );
      const tables = n.tables.map((t) =>
        el(
          'div',
          { class: t.match ? '' : 'mismatch', 'data-vip': t.vip },
          el('code', {}, t.vip),
          ' ',
          el('code', {}, t.checksum ?? 'missing'),
          t.match ? '' : ' ≠ expected',
        ),
      );
      return el(
        'tr',
        { 'data-node': n.name },
        el(
          'td',
          {},
          el('strong', {}, n.name),
          n.leader ? ' ' : '',
          n.leader ? badge('leader', 'on') : '',
          el('div', { class: 'note' }, n.address ?? ''),
        ),
        el('td', {}, badge(n.alive ? 'up' : 'gone', n.alive ? 'on' : 'off')),
        el('td', {}, sessions.length ? sessions : '-'),
        el('td', { 'data-field': 'bfd' }, bfdCell(n.bfd)),
        el('td', { 'data-field': 'drained' }, n.drained ? badge('drained', 'drained') : 'no'),
        el('td', { 'data-field': 'failStatic' }, n.failStatic ? badge('fail-static', 'warn') : 'no'),
        el(
          'td',
          { 'data-field': 'announced' },
          n.announced.map((v) => el('div', {}, el('code', {}, v))),
        ),
        el('td', {}, tables),
        el('td', {}, n.desiredRevision ?? '-'),
        el(
          'td',
          {},
          n.drained
            ? actionButton(
                'undrain',
                writes,
                () => act(`undrain node ${n.name}?`, `/api/nodes/${encodeURIComponent(n.name)}/undrain`),
                'undrain',
              )
            : actionButton(
                'drain',
                writes,
                () =>
                  act(
                    `drain node ${n.name}? It withdraws its VIPs from BGP.`,
                    `/api/nodes/${encodeURIComponent(n.name)}/drain`,
                  ),
                'drain',
              ),
        ),
      );
    }),
  );
}

export function renderVips(tbody, view, writes, act) {
  fill(
    tbody,
    view.vips.map((v) => {
      const bar = el(
        'div',
        { class: 'share', title: 'table slots per backend' },
        v.shares.map((s, i) =>
          el('span', {
            style: `width:${(100 * s.fraction).toFixed(2)}%;background:${PALETTE[i % PALETTE.length]}`,
            title: `${s.backend}: ${s.slots} slots`,
          }),
        ),
      );
      const legend = el(
        'div',
        { class: 'legend' },
        v.shares.map((s, i) => [
          el('i', { style: `background:${PALETTE[i % PALETTE.length]}` }),
          `${s.backend} ${(100 * s.fraction).toFixed(1)}%`,
        ]),
        v.emptySlots ? ` · ${v.emptySlots} slots without a backend` : '',
      );
      return el(
        'tr',
        { 'data-vip': v.key },
        el(
          'td',
          {},
          el('code', {}, v.key),
          // vips[].state: in the fleet, served by no node (disabled), or refusing new flows (draining).
          v.state === 'enabled'
            ? ''
            : el(
                'div',
                {
                  'data-field': 'state',
                  title:
                    v.state === 'disabled'
                      ? 'no node serves or announces it'
                      : 'announced; open flows continue, new flows are refused',
                },
                badge(v.state, 'draining'),
              ),
        ),
        el(
          'td',
          {},
          v.pool,
          v.sources
            ? el(
                'div',
                { class: 'note', 'data-field': 'sources', title: v.sources.join(', ') },
                `clients ${v.sources.slice(0, 3).join(', ')}${v.sources.length > 3 ? ` +${v.sources.length - 3}` : ''} only`,
              )
            : '',
        ),
        el('td', {}, v.hash),
        el('td', {}, v.tableSize),
        el('td', {}, el('code', {}, v.checksum ?? '-')),
        el(
          'td',
          {},
          v.announcedBy.join(', ') || '-',
          // The fleet's rule withdraws it: no member, or fewer than the pool's minUpMembers, take new flows.
          v.notAnnounced
            ? el('div', { class: 'note', 'data-field': 'not-announced' }, `withdrawn: ${v.notAnnounced}`)
            : '',
        ),
        el('td', {}, bar, legend),
        el('td', {}, ...vipButtons(v, writes, act)),
      );
    }),
  );
}

/**
 * `vips[].state`: drain an enabled VIP (new flows refused, open ones kept), disable a served one (confirmed: its flows
 * end), enable a draining or disabled one.
 */
function vipButtons(v, writes, act) {
  const path = `/api/vips/${encodeURIComponent(v.key)}`;
  const enable = actionButton(
    'enable',
    writes,
    () => act(`enable VIP ${v.key}? Every node serves it and gives its new flows backends.`, `${path}/enable`),
    'vip-enable',
  );
  const drain = actionButton(
    'drain',
    writes,
    () =>
      act(
        `drain VIP ${v.key}? Every node keeps announcing it and forwarding its open connections, and refuses new ones.`,
        `${path}/drain`,
      ),
    'vip-drain',
  );
  const disable = actionButton(
    'disable',
    writes,
    () => act(`disable VIP ${v.key}? Every node withdraws it and its open connections end.`, `${path}/disable`),
    'vip-disable',
  );
  if (v.state === 'disabled') return [enable];
  return v.state === 'draining' ? [enable, disable] : [drain, disable];
}

export function renderMembers(tbody, view, writes, act) {
  const rows = [];
  for (const p of view.pools) {
    for (const m of p.members) {
      const path = `/api/pools/${encodeURIComponent(p.name)}/members/${encodeURIComponent(m.name)}`;
      rows.push(
        el(
          'tr',
          { 'data-member': `${p.name}/${m.name}` },
          el(
            'td',
            {},
            p.name,
            el('div', { class: 'note' }, `check ${p.healthCheck}`),
            p.backupsServing
              ? el('div', { 'data-field': 'backups-serving' }, badge('backups serving', 'draining'))
              : '',
          ),
          el('td', {}, m.name),
          el('td', {}, el('code', {}, m.endpoint)),
          el('td', {}, m.weight),
          el('td', { 'data-field': 'state' }, badge(m.state, m.state === 'active' ? 'on' : 'draining')),
          el(
            'td',
            { 'data-field': 'decided' },
            badge(m.decided, m.decided),
            m.slowStartPercent === null || m.slowStartPercent === undefined
              ? ''
              : el('div', { class: 'note', 'data-field': 'slow-start' }, `slow start ${m.slowStartPercent}%`),
          ),
          el(
            'td',
            {},
            Object.entries(m.health).map(([node, s]) => el('span', {}, badge(`${node} ${s}`, s), ' ')),
            Object.entries(m.downReasons ?? {}).map(([node, why]) =>
              el('div', { class: 'note', 'data-field': 'down-reason' }, `${node}: ${why}`),
            ),
          ),
          el(
            'td',
            {},
            m.state === 'active'
              ? actionButton(
                  'drain',
                  writes,
                  () => act(`drain member ${p.name}/${m.name}? It takes no new flows.`, `${path}/drain`),
                  'drain',
                )
              : actionButton(
                  'enable',
                  writes,
                  () => act(`enable member ${p.name}/${m.name}?`, `${path}/enable`),
                  'enable',
                ),
          ),
        ),
      );
    }
  }
  fill(tbody, rows);
}

function describeEntry(e) {
  const fields = Object.entries(e.data)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${e.at} ${e.node} ${e.kind} ${fields}`;
}

/** Prepends entries the list does not show yet (by id), newest first, keeping at most `max`. */
export function renderTimeline(ol, entries, max = 200) {
  const seen = Number(ol.dataset.last ?? 0);
  for (const e of entries) {
    if (e.id <= seen) continue;
    const result = e.data.result ? ` ${e.data.result}` : '';
    // Every probe is an event; the ones that changed nothing are hidden unless asked for (see index.html).
    const probe = e.kind === 'member.health' && e.data.changed === false ? ' probe' : '';
    const cls = `${e.kind === 'action' ? 'action' : ''}${result}${probe}`;
    ol.prepend(el('li', { class: cls, 'data-kind': e.kind }, describeEntry(e)));
    ol.dataset.last = String(e.id);
  }
  while (ol.children.length > max) ol.lastElementChild.remove();
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

/** The live flows of `lab watch`: per node, per backend, broken, longest pause; marked stale when ticks stop. */
export function renderFlows(section, f, staleMs = 5_000) {
  section.hidden = false;
  const age = Date.now() - Date.parse(f.at);
  const summary = section.querySelector('#flows-summary');
  summary.replaceChildren(
    `lab ${f.lab} · flows ${f.total} · open ${f.open} · `,
    el('span', { 'data-field': 'broken', class: f.broken ? 'mismatch' : '' }, `broken ${f.broken}`),
    ' · ',
    el('span', { 'data-field': 'longestPause' }, `longest pause ${f.longestPauseMs} ms`),
    ` · at ${new Date(f.at).toLocaleTimeString()}`,
    age > staleMs ? el('span', { class: 'badge warn', 'data-field': 'stale' }, 'stale: lab watch stopped?') : '',
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
