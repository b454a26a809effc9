/**
 * Text from etcd or NATS made safe to print for people. A probe failure's reason, a refused record's message, an
 * event's fields are other programs' words (a backend agent's, a publisher's on our subjects), and records written
 * by older agents or by hand may hold an escape sequence that would retitle or clear the operator's terminal, or a
 * newline that would pass for a line of our own. `-o json` keeps them as they are: JSON escapes C0, and scripts read it.
 */

/**
 * `text` with each control character (C0, DEL and C1, CSI 0x9b among them) as `\xNN`. JSON.stringify would keep
 * U+007F-U+009F raw.
 */
export function printableText(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => `\\x${(c.codePointAt(0) ?? 0).toString(16).padStart(2, '0')}`);
}
