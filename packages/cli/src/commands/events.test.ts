/** `l4fleet events`: its numeric flags are checked before NATS is dialled. */
import { describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';

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
