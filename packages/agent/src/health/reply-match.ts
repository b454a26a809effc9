/**
 * A health check's `expect`: whether a reply (a TCP stream, a datagram, an HTTP body) contains the text, matched as
 * bytes across chunk boundaries. At most MAX_PROBE_REPLY_BYTES are kept: a member that streams without end fails
 * the check once that much has come without the text, instead of growing the agent's memory.
 */

/** How much of a reply a probe reads looking for `expect` (F5 reads the first 5,120 bytes; 64 KiB is generous). */
export const MAX_PROBE_REPLY_BYTES = 65_536;
/** Characters of the reply shown in a failure's reason. */
const SHOWN_REPLY_CHARS = 60;

export interface ReplyMatcher {
  /** Adds a chunk; true once the text has been seen. */
  push(chunk: Buffer): boolean;
  /** MAX_PROBE_REPLY_BYTES read without the text: the probe stops reading. */
  readonly full: boolean;
  /** Bytes searched so far, all pushes together: at most (chunk + text length) per push, whatever came before. */
  readonly searchedBytes: number;
  /** The failure's reason: `body lacks "ok" (got "maintenance")`. */
  lacks(what: 'reply' | 'body'): string;
  /** The failure's reason when the text must not be there: `body contains "MAINTENANCE" (expectNot)`. */
  contains(what: 'reply' | 'body', field: string): string;
}

/**
 * Each push copies its chunk once into one buffer of MAX_PROBE_REPLY_BYTES and searches only what can hold a match
 * that was not there before: the last `text length - 1` bytes already seen, and the chunk. Concatenating and
 * searching everything seen at every chunk was quadratic: a member dripping its reply a byte per write cost a probe
 * about 250 ms of the agent's CPU.
 */
export function createReplyMatcher(expect: string): ReplyMatcher {
  const wanted = Buffer.from(expect, 'utf8');
  let seen: Buffer | undefined; // allocated at the first chunk: a datagram's matcher may never get one
  let length = 0;
  let searchedBytes = 0;
  let found = false;
  return {
    push(chunk) {
      if (found) return true; // as when everything seen was searched again
      const room = MAX_PROBE_REPLY_BYTES - length;
      if (room <= 0) return false;
      seen ??= Buffer.allocUnsafe(MAX_PROBE_REPLY_BYTES);
      const from = Math.max(0, length - Math.max(0, wanted.length - 1));
      length += chunk.copy(seen, length, 0, Math.min(chunk.length, room));
      searchedBytes += length - from;
      found = seen.subarray(from, length).includes(wanted);
      return found;
    },
    get full() {
      return length >= MAX_PROBE_REPLY_BYTES;
    },
    get searchedBytes() {
      return searchedBytes;
    },
    lacks(what) {
      const text = (seen ?? Buffer.alloc(0))
        .toString('utf8', 0, Math.min(length, SHOWN_REPLY_CHARS * 4))
        .slice(0, SHOWN_REPLY_CHARS);
      const more = length > Buffer.byteLength(text) ? '...' : '';
      const within = this.full ? ` in its first ${MAX_PROBE_REPLY_BYTES} bytes` : '';
      return `${what} lacks ${JSON.stringify(expect)}${within} (got ${JSON.stringify(text)}${more})`;
    },
    contains(what, field) {
      return `${what} contains ${JSON.stringify(expect)} (${field})`;
    },
  };
}
