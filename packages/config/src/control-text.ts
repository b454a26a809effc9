/**
 * Control characters in text a message shows: the one rule of the config parsers' and the store's messages, which
 * reach logs, `l4fleet` errors and terminals.
 */

/** Every control character: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F). */
const CONTROL = /\p{Cc}/gu;

/**
 * `text` with each control character as `\uXXXX` (JSON's escape), everything else as it is. JSON.stringify escapes
 * C0 only: DEL and C1 stayed raw, and U+009B (CSI, a terminal's `ESC [`) in a hostile value or etcd key reached
 * logs and terminals as a control sequence.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
