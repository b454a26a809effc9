/**
 * Duplicate keys in JSON text. JSON.parse keeps the last of them without a word (`"weight": 5, "weight": 0` drains
 * the member), while the YAML reader refuses them (uniqueKeys); RFC 8259 §4 leaves duplicates' meaning to the reader,
 * so a fleet file refuses them in both formats. Not through the YAML reader: JSON.parse is ~100x faster, and large
 * fleets are generated as JSON (limits.ts).
 */

interface Frame {
  /** The keys seen so far in an object; undefined for an array. */
  readonly keys: Set<string> | undefined;
  /** The current key of an object, or index of an array: where a nested value sits. */
  key: string;
  index: number;
  /** In an object: the next string is a key (after `{` or `,`), not a value. */
  expectKey: boolean;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const keyPart = (key: string): string => (IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);

function pathOf(stack: readonly Frame[], key: string): string {
  let path = '';
  for (let i = 0; i < stack.length - 1; i++) {
    const f = stack[i] as Frame;
    path += f.keys ? keyPart(f.key) : `[${f.index}]`;
  }
  path += keyPart(key);
  return path.startsWith('.') ? path.slice(1) : path;
}

/**
 * The first key given twice in one object of `text`, with its path (`pools[0].members[1].weight`), or undefined.
 * `text` must be JSON that JSON.parse accepted: only strings, brackets, colons and commas are looked at. One pass,
 * no recursion (the depth is bounded before: limits.ts).
 */
export function duplicateJsonKey(text: string): { readonly path: string; readonly key: string } | undefined {
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x22) break;
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++; // the escaped character: a quote there does not end the string
        }
      }
      if (i >= n) return undefined; // an unterminated string: not text JSON.parse accepted
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        // An escaped spelling (`w\u0065ight`) is the same key once decoded.
        const key = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
        if (top.keys.has(key)) return { path: pathOf(stack, key), key };
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
    } else if (c === 0x7b /* { */) stack.push({ keys: new Set(), key: '', index: 0, expectKey: true });
    else if (c === 0x5b /* [ */) stack.push({ keys: undefined, key: '', index: 0, expectKey: false });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
      else if (top) top.index++;
    }
    i++;
  }
  return undefined;
}
