/**
 * The one Node warning this process drops on purpose.
 *
 * Node warns (DEP0123) when a TLS client sends an IP address as the SNI server name, which RFC 6066 §3 does not
 * allow ("Literal IPv4 and IPv6 addresses are not permitted in HostName"). @grpc/grpc-js (1.14) sets the server
 * name to the endpoint's host whatever it is, so every command and agent given `--etcd https://10.0.0.1:2379`
 * printed that warning on stderr although nothing is wrong with the operator's setup: the server's certificate is
 * still checked against the address (its IP SAN), and etcd needs no SNI. Node will stop sending such a name; then
 * nothing changes for etcd. Every other warning goes through unchanged.
 */

/** The deprecation code Node gives the "TLS ServerName set to an IP address" warning. */
export const IP_SERVERNAME_WARNING_CODE = 'DEP0123';

type EmitWarning = NodeJS.Process['emitWarning'];

/** The warning's code, from either form of `process.emitWarning` (type and code, or an options object). */
function warningCode(warning: unknown, rest: readonly unknown[]): string | undefined {
  const [typeOrOptions, code] = rest;
  if (typeof typeOrOptions === 'object' && typeOrOptions !== null) {
    const c = (typeOrOptions as { code?: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  if (typeof code === 'string') return code;
  const c = warning instanceof Error ? (warning as Error & { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : undefined;
}

/** Makes `proc.emitWarning` drop DEP0123 only; returns a function that puts the original back. */
export function dropIpServernameWarning(proc: { emitWarning: EmitWarning } = process): () => void {
  const original = proc.emitWarning;
  const filtered = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    if (warningCode(warning, rest) === IP_SERVERNAME_WARNING_CODE) return;
    (original as (...args: unknown[]) => void).call(this ?? proc, warning, ...rest);
  };
  proc.emitWarning = filtered as EmitWarning;
  return () => {
    proc.emitWarning = original;
  };
}
