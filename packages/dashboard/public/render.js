/** Renders the fleet view into the page's tables: nodes, VIPs, members. Text goes in through textContent only (never as HTML). */
import { actionButton, badge, el, fill, PALETTE } from './dom.js';

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

/**
 * A member's health cell (src/fleet-view.ts MemberHealth): how many nodes see it up, down or not at all, the few that
 * disagree with the decision by name (the server names at most 8 and counts the rest), and why nodes see it down.
 */
function memberHealth(m) {
  const h = m.health;
  const counts = [
    ['up', h.up],
    ['down', h.down],
    ['unknown', h.unknown],
  ].filter(([, n]) => n > 0);
  const more = (n, what) => (n > 0 ? ` and ${n} more${what}` : '');
  const only = h.disagree.length === 1 && h.disagreeOmitted === 0 ? h.disagree[0] : undefined;
  return [
    el(
      'div',
      { 'data-field': 'health-counts' },
      counts.map(([s, n], i) => [i > 0 ? ' ' : '', badge(`${n} ${s}`, s)]),
    ),
    only
      ? el('div', { class: 'note', 'data-field': 'disagree' }, `${only.node} sees it ${only.status} alone`)
      : h.disagree.length > 0
        ? el(
            'div',
            { class: 'note', 'data-field': 'disagree' },
            `disagree: ${h.disagree.map((d) => `${d.node} ${d.status}`).join(', ')}${more(h.disagreeOmitted, '')}`,
          )
        : '',
    Object.entries(m.downReasons).map(([node, why]) =>
      el('div', { class: 'note', 'data-field': 'down-reason' }, `${node}: ${why}`),
    ),
    m.downReasonsOmitted > 0
      ? el(
          'div',
          { class: 'note', 'data-field': 'down-reasons-omitted' },
          more(m.downReasonsOmitted, ' nodes with a reason').trim(),
        )
      : '',
  ];
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
          el('td', {}, memberHealth(m)),
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
