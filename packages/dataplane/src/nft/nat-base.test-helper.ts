/**
 * For this package's tests only (excluded from the build): the NAT table's base part (natBaseTable) as `nft list
 * table` prints it (tabs, one statement a line, no table line), to put inside a listing a test builds.
 */
import { natBaseTable } from './nat-ruleset.js';

/**
 * `without`: chains and objects left out (deleted by hand, or older than them); `flushed`: chains listed without rules; `elements`: a set's or map's
 * elements, as nft prints them between the braces.
 */
export function natBaseListing(
  opts: { without?: readonly string[]; flushed?: readonly string[]; elements?: Readonly<Record<string, string>> } = {},
): string {
  const out: string[] = [];
  let skip = false;
  let flushed = false;
  for (const line of natBaseTable('l4t_nat').split('\n').slice(1, -2)) {
    const chain = /^ {2}chain (\S+) \{$/.exec(line)?.[1];
    if (chain !== undefined) {
      skip = opts.without?.includes(chain) ?? false;
      flushed = opts.flushed?.includes(chain) ?? false;
    }
    const object = /^ {2}((?:counter|map|set) (\S+)) \{ (.*)\}$/.exec(line);
    if (object) {
      skip = false;
      if (opts.without?.includes(object[2] as string)) continue;
      const body = (object[3] as string).replace(/;\s*$/, '');
      const elements = opts.elements?.[object[2] as string];
      out.push(`\t${object[1]} {`, ...(body === '' ? [] : [`\t\t${body}`]));
      if (elements !== undefined) out.push(`\t\telements = { ${elements} }`);
      out.push('\t}');
      continue;
    }
    if (skip) continue;
    const inner = /^ {4}(.*)$/.exec(line)?.[1];
    if (inner !== undefined) {
      if (!flushed || inner.startsWith('type ')) out.push(`\t\t${inner}`);
      continue;
    }
    out.push(line.replace(/^ {2}/, '\t'));
  }
  return `${out.join('\n')}\n`;
}
