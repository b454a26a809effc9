/** `l4fleet events`: its flags are checked before NATS is dialled, and its login options reach followEvents. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FollowEventsOptions } from '@l4fleet/agent';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { CliIo } from '../io.js';
import { writeTestPem } from '../pem.test-helper.js';
import { runCli } from '../program.js';

/** followEvents as a recorder: what the command would dial NATS with (nothing is dialled). */
const followed = vi.hoisted(() => ({
  calls: [] as unknown[],
  messages: [] as [text: string, subject: string][],
  /** Then follows on (as on a quiet fleet) until the signal aborts; onFollowing runs once it does. */
  untilAborted: false,
  onFollowing: () => {},
}));
vi.mock('@l4fleet/agent', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/agent')>()),
  followEvents: async (opts: FollowEventsOptions) => {
    followed.calls.push(opts);
    // The messages a test queued, as NATS would deliver them: until `max` were delivered or the signal aborts.
    let delivered = 0;
    for (const [text, subject] of followed.messages) {
      if (opts.signal?.aborted || (opts.max !== undefined && delivered >= opts.max)) break;
      delivered += 1;
      opts.onMessage(text, subject);
    }
    if (!followed.untilAborted || opts.signal?.aborted) return;
    const signal = opts.signal;
    const stopped = new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
    followed.onFollowing();
    // Bounded: a test whose stop never came ends here (and fails on the status).
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]);
  },
}));

async function events(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(['events', ...argv], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cli events - --timeout-ms and --count', () => {
  // setTimeout() clamps a delay over 2^31-1 ms to 1 ms: `--timeout-ms 9007199254740991` exited at once with 0.
  test.each(['2147483648', '9007199254740991', '0', '1e3', ''])('--timeout-ms %j: usage error naming it', async (v) => {
    const r = await events('--nats', 'nats://127.0.0.1:1', '--timeout-ms', v);
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toBe(`error: --timeout-ms: ${JSON.stringify(v)} is not an integer (1-2147483647)`);
  });

  test('--count 0: usage error naming it', async () => {
    const r = await events('--nats', 'nats://127.0.0.1:1', '--count', '0');
    expect(r).toMatchObject({ code: 2 });
    expect(r.err).toContain('--count: "0" is not an integer (1-');
  });
});

describe('cli events - subject flags', () => {
  // A fleet `a.b`, an empty one, a node `>` or a prefix `x y` followed nothing (or every node) and exited 0.
  test.each([
    ['--fleet', 'a.b', 'a subject token'],
    ['--fleet', '', 'a subject token'],
    ['--subject-prefix', 'x y', 'a subject token'],
    ['--node', '>', 'a node name'],
    ['--node', 'lb1.*', 'a node name'],
  ])('%s %j: usage error naming it, NATS not dialled', async (flag, v, what) => {
    const r = await events('--nats', 'nats://127.0.0.1:1', flag, v);
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toContain(`error: ${flag}: ${JSON.stringify(v)} is not ${what}`);
  });
});

// dashboard.env sourced, where an empty L4FLEET_NATS means no timeline: events said `--nats: no servers in ""`,
// blaming a flag never given. Empty is unset, as for every other l4fleet variable.
describe('cli events - L4FLEET_NATS', () => {
  beforeEach(() => {
    followed.calls.length = 0;
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });
  const servers = () => (followed.calls[0] as FollowEventsOptions | undefined)?.servers;

  test('empty: the default server', async () => {
    vi.stubEnv('L4FLEET_NATS', '');
    const r = await events();
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(servers()).toEqual(['nats://127.0.0.1:4222']);
  });

  test('set: its servers', async () => {
    vi.stubEnv('L4FLEET_NATS', 'nats://198.19.0.2:4222,nats://198.19.0.3:4222');
    expect((await events()).code).toBe(0);
    expect(servers()).toEqual(['nats://198.19.0.2:4222', 'nats://198.19.0.3:4222']);
  });

  test('an empty --nats given is still refused, naming it', async () => {
    vi.stubEnv('L4FLEET_NATS', 'nats://198.19.0.2:4222');
    const r = await events('--nats', '');
    expect(r).toMatchObject({ code: 2, err: 'error: --nats: no servers in ""' });
    expect(followed.calls).toEqual([]);
  });
});

describe('cli events - a secured NATS (--nats-token-file, --nats-user, --nats-ca)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-events-'));
    followed.calls.length = 0;
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const auth = () => (followed.calls[0] as FollowEventsOptions | undefined)?.auth;

  test('--nats-token-file and --nats-ca reach followEvents (the token trimmed, the CA as PEM text)', async () => {
    const token = file('token', 'nats-token-of-the-fleet\n');
    const ca = writeTestPem(dir).cert;
    const r = await events('--nats', 'tls://198.19.0.2:4222', '--nats-token-file', token, '--nats-ca', ca);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect((followed.calls[0] as FollowEventsOptions).servers).toEqual(['tls://198.19.0.2:4222']);
    expect(auth()).toEqual({ token: 'nats-token-of-the-fleet', ca: readFileSync(ca, 'utf8') });
  });

  // commander kept the last of a repeated option: `--nats-ca a.pem --nats-ca b.pem` trusted b.pem alone, silently.
  test.each(['--nats-token-file', '--nats-ca'])(
    '%s given twice: usage error naming it, nothing dialled',
    async (flag) => {
      const r = await events('--nats', 'tls://198.19.0.2:4222', flag, file('a', 'x'), flag, file('b', 'y'));
      expect(r).toMatchObject({ code: 2, out: '' });
      expect(r.err).toContain(`error: ${flag}: given twice (`);
      expect(followed.calls).toEqual([]);
    },
  );

  test('L4FLEET_NATS_TOKEN gives the token', async () => {
    vi.stubEnv('L4FLEET_NATS_TOKEN', 't0k3n');
    expect((await events('--nats', 'nats://127.0.0.1:4222')).code).toBe(0);
    expect(auth()).toEqual({ token: 't0k3n' });
  });

  test('--nats-user with L4FLEET_NATS_PASSWORD', async () => {
    vi.stubEnv('L4FLEET_NATS_PASSWORD', 'N3wS3cret');
    expect((await events('--nats', 'nats://127.0.0.1:4222', '--nats-user', 'ops')).code).toBe(0);
    expect(auth()).toEqual({ user: 'ops', password: 'N3wS3cret' });
  });

  test('no login flags: no auth', async () => {
    expect((await events('--nats', 'nats://127.0.0.1:4222')).code).toBe(0);
    expect(auth()).toEqual({});
  });

  test.each([
    [
      ['--nats', 'nats://ops:N3wS3cret@198.19.0.2:4222'],
      '--nats: "nats://***@198.19.0.2:4222": a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)',
    ],
    [
      // A value with an '@' is masked whole, to its last '@': a piece of it may be a piece of a password.
      ['--nats', 'nats://127.0.0.1:4222,tls://N3wS3cret@198.19.0.2:4222'],
      '--nats: "nats://***@198.19.0.2:4222": a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)',
    ],
    [
      // The password 'Xy9@a,Tq7' holds the list's separator: split first, its first half showed as "nats://***@a".
      ['--nats', 'nats://u:Xy9@a,Tq7@198.19.0.2:4222'],
      '--nats: "nats://***@198.19.0.2:4222": a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)',
    ],
    [
      ['--nats', 'ops:N3wS3cret@198.19.0.2:4222'],
      '--nats: "***@198.19.0.2:4222": a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)',
    ],
    [['--nats', ','], '--nats: no servers in ","'],
    [['--nats-user', 'ops'], '--nats-user: needs the password in L4FLEET_NATS_PASSWORD'],
    [['--nats-user', ''], '--nats-user: "" is not a user name'],
  ])('%j: usage error, NATS not dialled, no secret shown', async (argv, message) => {
    const r = await events(...(argv[0] === '--nats' ? argv : ['--nats', 'nats://127.0.0.1:4222', ...argv]));
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toBe(`error: ${message}`);
    expect(followed.calls).toEqual([]);
  });

  test('a token and a user: usage error', async () => {
    vi.stubEnv('L4FLEET_NATS_TOKEN', 't0k3n');
    vi.stubEnv('L4FLEET_NATS_PASSWORD', 'N3wS3cret');
    const r = await events('--nats', 'nats://127.0.0.1:4222', '--nats-user', 'ops');
    expect(r).toMatchObject({ code: 2 });
    expect(r.err).toBe(
      'error: --nats-user: a user and a token (--nats-token-file or L4FLEET_NATS_TOKEN) do not go together',
    );
    expect(r.err).not.toMatch(/t0k3n|N3wS3cret/);
  });

  test('L4FLEET_NATS_PASSWORD without --nats-user: usage error', async () => {
    vi.stubEnv('L4FLEET_NATS_PASSWORD', 'N3wS3cret');
    const r = await events('--nats', 'nats://127.0.0.1:4222');
    expect(r).toMatchObject({ code: 2 });
    expect(r.err).toBe('error: L4FLEET_NATS_PASSWORD is set: it needs --nats-user');
  });

  test.each([
    [['--nats-token-file', '/nonexistent/token'], '--nats-token-file: cannot read /nonexistent/token: ENOENT', 1],
    [['--nats-ca', '/nonexistent/ca.pem'], '--nats-ca: "/nonexistent/ca.pem" cannot be read (ENOENT)', 1],
  ])('%j: exit 1 naming the flag and the file', async (argv, message, code) => {
    const r = await events('--nats', 'nats://127.0.0.1:4222', ...argv);
    expect(r.code).toBe(code);
    expect(r.err).toContain(`error: ${message}`);
    expect(followed.calls).toEqual([]);
  });

  // An empty or blank token file (a failed provisioning) is no token: exit 1 as any file that is not what it
  // should be (README "Exit codes"), never a login without one.
  test.each(['', '\n', ' \t\n'])('a token file of %j: exit 1 naming the flag and the file', async (text) => {
    const r = await events('--nats', 'nats://127.0.0.1:4222', '--nats-token-file', file('token', text));
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toBe(`error: --nats-token-file: ${join(dir, 'token')} is empty`);
    expect(followed.calls).toEqual([]);
  });

  // nats.js skips an empty `ca` (node_transport: `else if (ca)`): Node's public roots were trusted and the token sent
  // to any server with a publicly trusted certificate. The agent's own reader (readTlsFile) refuses these files.
  test.each<[string, () => string, string]>([
    ['empty', () => file('ca.pem', ''), 'is empty'],
    ['no certificate', () => file('ca.pem', 'PEM\n'), 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)'],
    [
      'a certificate that does not parse',
      () => file('ca.pem', '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n'),
      'certificate 1 of 1 does not parse',
    ],
    [
      'a directory',
      () => {
        mkdirSync(join(dir, 'ca.pem'));
        return join(dir, 'ca.pem');
      },
      'is not a regular file',
    ],
  ])('--nats-ca %s: exit 1 naming the flag and the file, NATS not dialled', async (_, make, why) => {
    const ca = make();
    const r = await events(
      '--nats',
      'tls://198.19.0.2:4222',
      '--nats-token-file',
      file('token', 't0k3n'),
      '--nats-ca',
      ca,
    );
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toContain(`error: --nats-ca: "${ca}" ${why}`);
    expect(followed.calls).toEqual([]);
  });
});

describe('cli events - -o json prints one JSON object per line', () => {
  beforeEach(() => {
    followed.calls.length = 0;
  });
  afterEach(() => {
    followed.messages.length = 0;
  });
  const SUBJECT = 'l4fleet.default.vip.announced.lb1';

  test('a message spread over lines is printed on one line, the same object', async () => {
    const ev = {
      at: '2026-01-01T00:00:00.000Z',
      node: 'lb1',
      kind: 'vip.announced',
      data: { vip: '198.51.100.10:80/tcp' },
    };
    followed.messages.push([JSON.stringify(ev, null, 2), SUBJECT]);
    const r = await events('--nats', 'nats://127.0.0.1:4222', '-o', 'json');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out.split('\n')).toEqual([JSON.stringify(ev)]);
  });

  test.each([
    ['text', 'not json at all', 'not json at all'],
    ['JSON cut short over two lines', '{"at":\n', '{\\"at\\":\\n'],
    ['a JSON number, not an object', '42', '42'],
    // jq .kind fails on both ('Cannot index array'), so neither may reach stdout.
    ['a JSON array', '[1,2]', '[1,2]'],
    ['JSON null', 'null', 'null'],
    ['1000 characters', 'x'.repeat(1000), `${'x'.repeat(120)}"... (1000 chars)`],
  ])(
    'a message that is not a JSON object (%s): a warning naming the subject on stderr, nothing on stdout',
    async (_, text, shown) => {
      followed.messages.push([text, SUBJECT], ['{"kind":"vip.withdrawn"}', SUBJECT]);
      const r = await events('--nats', 'nats://127.0.0.1:4222', '-o', 'json');
      expect(r.code).toBe(0);
      expect(r.out).toBe('{"kind":"vip.withdrawn"}');
      expect(r.err).toContain(`warning: ${SUBJECT}: not JSON, skipped:`);
      expect(r.err).toContain(shown);
      // Bounded: a long message is not copied whole to the terminal.
      expect(r.err.length).toBeLessThan(400);
      expect(r.err.split('\n')).toHaveLength(1);
    },
  );
});

describe('cli events - --count counts the events printed', () => {
  beforeEach(() => {
    followed.calls.length = 0;
  });
  afterEach(() => {
    followed.messages.length = 0;
  });
  const SUBJECT = 'l4fleet.default.vip.announced.lb1';

  // Counted as NATS messages, a skipped one used up `--count 1 -o json`: exit 0 with nothing for `| jq`.
  test('-o json --count 1: a message that is not JSON is skipped, not counted; the next object is printed', async () => {
    followed.messages.push(
      ['not json', SUBJECT],
      ['{"kind":"vip.announced"}', SUBJECT],
      ['{"kind":"vip.withdrawn"}', SUBJECT],
    );
    const r = await events('--nats', 'nats://127.0.0.1:4222', '-o', 'json', '--count', '1');
    expect(r.code).toBe(0);
    expect(r.out).toBe('{"kind":"vip.announced"}');
    expect(r.err).toContain(`warning: ${SUBJECT}: not JSON, skipped:`);
  });

  // An event's fields and a message that is not JSON are a publisher's words: an escape sequence in one would retitle
  // or clear the terminal, a newline would pass for an event line of its own.
  test('text: control characters in an event or in a message that is not JSON are shown escaped', async () => {
    const ev = {
      at: '2026-01-01T00:00:00.000Z',
      node: 'lb1\u001b[2J',
      kind: 'member.down',
      data: { reason: 'drain # \u009b2J\u001b]0;owned\u0007', detail: { why: '\u009b' } },
    };
    followed.messages.push([JSON.stringify(ev), SUBJECT], ['raw \u001b]0;owned\u0007\nlb9 vip.announced', SUBJECT]);
    const r = await events('--nats', 'nats://127.0.0.1:4222', '--count', '2');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect([...r.out].filter((c) => '\u001b\u009b\u0007'.includes(c))).toEqual([]); // ESC, CSI, BEL
    expect(r.out.split('\n')).toEqual([
      '2026-01-01T00:00:00.000Z lb1\\x1b[2J member.down reason=drain # \\x9b2J\\x1b]0;owned\\x07 detail={"why":"\\x9b"}',
      `${SUBJECT} raw \\x1b]0;owned\\x07\\x0alb9 vip.announced`,
    ]);
  });

  test('text --count 2: every message is a line, two printed, the follow ended', async () => {
    followed.messages.push(['not json', SUBJECT], ['{"kind":"vip.announced"}', SUBJECT], ['{"kind":"x"}', SUBJECT]);
    const r = await events('--nats', 'nats://127.0.0.1:4222', '--count', '2');
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out.split('\n')).toEqual([`${SUBJECT} not json`, '- - vip.announced']);
  });
});

describe('cli events - how a follow ends: the exit status tells an interrupt from an end it was asked for', () => {
  beforeEach(() => {
    followed.calls.length = 0;
    followed.untilAborted = true;
  });
  afterEach(() => {
    followed.untilAborted = false;
    followed.onFollowing = () => {};
  });

  // Ctrl-C aborted the follow and the action returned normally: exit 0, as for --count or --timeout-ms.
  test('SIGINT (Ctrl-C): exit 130, no error line; its handler removed', async () => {
    const before = new Set(process.listeners('SIGINT'));
    let ours: (() => void)[] = [];
    followed.onFollowing = () => {
      // The command's own handler, called directly: emitting SIGINT would reach the test runner's too.
      ours = process.listeners('SIGINT').filter((l) => !before.has(l)) as (() => void)[];
      for (const l of ours) l();
    };
    const r = await events('--nats', 'nats://127.0.0.1:4222');
    expect(ours).toHaveLength(1);
    expect(r).toEqual({ code: 130, out: '', err: '' });
    expect(process.listeners('SIGINT').filter((l) => !before.has(l))).toEqual([]);
  });

  test('--timeout-ms: exit 0', async () => {
    const r = await events('--nats', 'nats://127.0.0.1:4222', '--timeout-ms', '1');
    expect(r).toEqual({ code: 0, out: '', err: '' });
  });

  // `l4fleet events -o json | head -1`: the follow went on after the reader had gone, then died of EPIPE.
  test("stdout's reader gone (io.closed): the follow stops, exit 0", async () => {
    const closed = new AbortController();
    followed.onFollowing = () => closed.abort();
    const io: CliIo = { out: () => {}, err: () => {}, closed: closed.signal };
    expect(await runCli(['events', '--nats', 'nats://127.0.0.1:4222'], io)).toBe(0);
    expect(followed.calls).toHaveLength(1);
    expect((followed.calls[0] as FollowEventsOptions).signal?.aborted).toBe(true);
  });
});
