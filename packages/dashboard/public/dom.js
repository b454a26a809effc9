/** DOM helpers of the page's scripts. Text goes in through textContent only (never as HTML). */

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

export const badge = (text, cls) => el('span', { class: `badge ${cls}` }, text);

export function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

export function actionButton(label, enabled, onClick, testId) {
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
