/** Text tables for people (`get nodes`, `status`, `get members`, `history`). */
import { printableText } from './printable.js';

/**
 * A left-aligned text table with a header row. Every cell goes through printableText: cells hold etcd data (a node's
 * address, a table's VIP key), and a newline or an escape sequence in one would forge a row or take over the terminal.
 */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((r) => r.map(printableText));
  // A loop, not Math.max(...rows): spreading 100,000+ rows into one call overflows the stack.
  const widths = header.map((h) => h.length);
  for (const r of cells) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i] as number, (r[i] ?? '').length);
  }
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}
