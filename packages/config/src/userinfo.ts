/**
 * A URL's userinfo hidden before the URL is shown (stderr, logs, events): store (etcd endpoints), agent (etcd.endpoints,
 * nats.servers) and CLI all print URLs an operator typed, and a `user:password@` or a NATS `token@` in one must not
 * reach them. One rule for every caller, so no printer masks less than another.
 */

/**
 * `url` from the start (or after a leading `scheme://`) up to its last `@` as `***@`: an unencoded `@`, `/` or space
 * in a password is taken apart differently by each parser, and a URL without a scheme (`root:pw@host:2379`) has
 * userinfo all the same. The user goes too: a user-only part is a NATS token.
 */
export function maskUserinfo(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, '$1***@');
}

/**
 * `text` (an error message, a list of URLs) with each whitespace-separated word that holds an `@` masked as
 * maskUserinfo does: the words around it are kept, so the message still says what failed.
 */
export function maskUserinfoInText(text: string): string {
  return text
    .split(/(\s+)/)
    .map((word) => (word.includes('@') ? maskUserinfo(word) : word))
    .join('');
}
