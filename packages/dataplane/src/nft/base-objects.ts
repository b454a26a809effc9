/**
 * The table's own maps, sets and counters (baseTable), each declared on its own: one deleted by hand is declared again
 * (plan.ts). Only an object no rule names can be deleted (the kernel refuses the others): a flow map of a family or
 * protocol no VIP uses (`flows4_udp` on a node with TCP VIPs only, the IPv6 ones on an IPv4 node), `flow_table_full`
 * with no VIP. Left missing, the first VIP whose rules name it was refused (No such file or directory) at every apply,
 * also after a restart, and verify found it missing at every run (a full read each time) and wrote nothing.
 */
import { baseTable, type Layout } from './ruleset.js';

/** The `add` statement of each base object, by name; `add` leaves an existing object alone. */
export function baseObjects(layout: Layout): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of baseTable(layout).matchAll(/^ {2}(map|set|counter) (\S+) (\{.*\})$/gm)) {
    const [, kind, name, body] = m as unknown as [string, string, string, string];
    out.set(name, `add ${kind} netdev ${layout.table} ${name}${kind === 'counter' ? '' : ` ${body}`}`);
  }
  return out;
}

/** The names of the base objects (they do not depend on the layout's values). */
export function baseObjectNames(): string[] {
  const names = { table: 't', iface: 'i', ifaceMac: '00:00:00:00:00:00' };
  return [...baseObjects({ ...names, flowTimeoutTcpS: 1, flowTimeoutUdpS: 1, flowTableSize: 1 }).keys()];
}

/** Of the base objects, those neither in `objects` (maps and sets) nor in `counters`, as a listing names them. */
export function missingBaseObjects(objects: ReadonlySet<string>, counters: ReadonlySet<string>): Set<string> {
  return new Set(baseObjectNames().filter((n) => !objects.has(n) && !counters.has(n)));
}
