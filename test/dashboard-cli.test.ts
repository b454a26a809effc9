/**
 * `l4fleet dashboard` refuses bad options before it listens: exit 2, the option and the value named (a token file that
 * cannot be read: exit 1).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '@l4fleet/cli';
import { MemoryFleetStore } from '@l4fleet/store';
import { describe, expect, test } from 'vitest';

async function cli(args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const io = { out: () => undefined, err: (s: string) => err.push(s) };
  const code = await runCli(args, io, { openStore: () => new MemoryFleetStore() });
  return { code, err: err.join('\n') };
}

describe('l4fleet dashboard options', () => {
  test.each([
    [['--agent-metrics', 'n1'], /--agent-metrics: "n1" is not NODE=http:\/\/HOST:PORT\[\/metrics\]/],
    [['--agent-metrics', 'n1=http://a:1,n1=http://b:1'], /--agent-metrics: node "n1" given twice/],
    [['--listen', 'nowhere'], /listen: "nowhere" is not ADDRESS:PORT/],
  ])('dashboard %j: exit 2', async (flags, message) => {
    const r = await cli(['dashboard', '--listen', '127.0.0.1:0', ...flags]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  test('dashboard --token-file that cannot be read: exit 1 (a named file that cannot be read is not a usage error)', async () => {
    const r = await cli(['dashboard', '--listen', '127.0.0.1:0', '--token-file', '/nonexistent/token']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--token-file: cannot read \/nonexistent\/token/);
  });

  test('dashboard: a token shorter than 16 characters is refused, never used', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'l4fleet-dash-cli-'));
    try {
      await writeFile(join(dir, 'token'), 'short\n');
      const r = await cli(['dashboard', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token')]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/token: 5 characters is too short \(at least 16\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
