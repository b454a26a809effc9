/**
 * `agent` checks: the member's own word on whether it should take traffic (HAProxy's agent-check, docs 5.2
 * "agent-check"; Loadbalancer.org's feedback agent works the same way). The probe connects to the agent's port,
 * sends `payload` if the check has one (HAProxy's `agent-send`), and reads one line: words separated by spaces,
 * commas or tabs, an optional description after `#`. `up` and `ready` mean up; `down`, `fail`, `stopped`, `maint`
 * and `drain` mean down, with the word and the description as the reason, so an application about to restart can
 * take itself out of every node's table and put itself back. A reply without any of these words is up (the agent
 * answered). Weights (`75%`) and other words are ignored: a member's weight comes from the fleet file, so that every
 * node builds the same table from the same input (Maglev §3.4); an agent that answers per node could not promise
 * that.
 *
 * `drain` is down here: the member gets no new flows, and with the pool's default `onMemberDown: keep` its open flows
 * stay on it, which is what HAProxy's drain does.
 */
import { connect } from 'node:net';
import { errCode, guarded, type PortProbe, timedFinisher } from './probe-common.js';

/** The longest agent reply read: a state, a weight and a short description fit many times over. */
export const MAX_AGENT_REPLY_BYTES = 1_024;
/** Characters of the agent's description kept in a reason. */
const SHOWN_DESCRIPTION_CHARS = 80;

/** The words an agent says for up, and for down (HAProxy's agent-check; `l4fleet backend state` writes them). */
export const AGENT_UP_WORDS: readonly string[] = ['ready', 'up'];
export const AGENT_DOWN_WORDS: readonly string[] = ['drain', 'maint', 'down', 'stopped', 'fail'];
const DOWN_WORDS = new Set(AGENT_DOWN_WORDS);

/**
 * `text` with every run of control characters (C0, DEL, C1: \p{Cc}) and white space made one space, trimmed: for an
 * agent's description, unquoted free text read as words, where a tab or a line end is a space.
 */
const spaced = (text: string): string => text.replace(/[\p{Cc}\s]+/gu, ' ').trim();

/**
 * What an agent's reply line says: `{ok: true}` for up (or no state word), `{ok: false, reason}` for a down word,
 * the first one it names (`agent says drain: deploying v42`). Case-insensitive, as HAProxy reads it.
 */
export function agentReplyState(line: string): { ok: boolean; reason?: string } {
  const hash = line.indexOf('#');
  const words = (hash < 0 ? line : line.slice(0, hash))
    .split(/[\s,]+/)
    .map((w) => w.toLowerCase())
    .filter((w) => w !== '');
  // The description is free text, not quoted: its control characters are spaces (spaced), before the cut, so that it
  // keeps its 80 shown characters instead of spending them on `\uXXXX`.
  const description =
    hash < 0
      ? ''
      : spaced(line.slice(hash + 1))
          .slice(0, SHOWN_DESCRIPTION_CHARS)
          .trim();
  const down = words.find((w) => DOWN_WORDS.has(w));
  if (down) return { ok: false, reason: `agent says ${down}${description ? `: ${description}` : ''}` };
  return { ok: true };
}

/**
 * Connects to the agent's port, sends `payload`, and reads up to the first line end (or the connection's end, or
 * MAX_AGENT_REPLY_BYTES); nothing before the timeout is down (`timeout`), as is a connection refused.
 */
export const probeAgent: PortProbe = (target, port, check, opts) =>
  new Promise((resolve) => {
    const started = performance.now();
    const sock = connect({
      host: target.address,
      port,
      ...(opts?.sourceAddress ? { localAddress: opts.sourceAddress } : {}),
    });
    const finish = timedFinisher(started, check.timeoutMs, resolve, () => sock.destroy(), { signal: opts?.signal });
    let seen = Buffer.alloc(0);
    const decide = () => {
      const text = seen.toString('utf8');
      const end = text.search(/[\r\n]/);
      const state = agentReplyState(end < 0 ? text : text.slice(0, end));
      finish(state.ok, state.reason);
    };
    sock.once('connect', () => {
      if (check.payload !== undefined) sock.write(check.payload, 'utf8');
    });
    sock.on(
      'data',
      guarded(finish, (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk.subarray(0, MAX_AGENT_REPLY_BYTES - seen.length)]);
        if (seen.includes(0x0a) || seen.includes(0x0d) || seen.length >= MAX_AGENT_REPLY_BYTES) decide();
      }),
    );
    sock.once(
      'end',
      guarded(finish, () => (seen.length > 0 ? decide() : finish(false, 'the agent closed without a reply'))),
    );
    sock.once('error', (err) => finish(false, errCode(err)));
  });
