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
  /** The failure's reason: `body lacks "ok" (got "maintenance")`. */
  lacks(what: 'reply' | 'body'): string;
  /** The failure's reason when the text must not be there: `body contains "MAINTENANCE" (expectNot)`. */
  contains(what: 'reply' | 'body', field: string): string;
}

export function createReplyMatcher(expect: string): ReplyMatcher {
  const wanted = Buffer.from(expect, 'utf8');
  let seen = Buffer.alloc(0);
  return {
    push(chunk) {
      const room = MAX_PROBE_REPLY_BYTES - seen.length;
      if (room <= 0) return false;
      seen = Buffer.concat([seen, chunk.subarray(0, room)]);
      return seen.includes(wanted);
    },
    get full() {
      return seen.length >= MAX_PROBE_REPLY_BYTES;
    },
    lacks(what) {
      const text = seen.toString('utf8', 0, Math.min(seen.length, SHOWN_REPLY_CHARS * 4)).slice(0, SHOWN_REPLY_CHARS);
      const more = seen.length > Buffer.byteLength(text) ? '...' : '';
      const within = this.full ? ` in its first ${MAX_PROBE_REPLY_BYTES} bytes` : '';
      return `${what} lacks ${JSON.stringify(expect)}${within} (got ${JSON.stringify(text)}${more})`;
    },
    contains(what, field) {
      return `${what} contains ${JSON.stringify(expect)} (${field})`;
    },
  };
}
