import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentReplyState } from '@l4fleet/agent';
import { afterAll, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';
import {
  BACKEND_STATES,
  backendState,
  MAX_STATE_REASON_CHARS,
  parseStateText,
  readStateFile,
  stateLine,
  writeStateFile,
} from './state-file.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-backend-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('backend state', () => {
  test('every state word reads on the node as the same up or down (the agent check and this file agree)', () => {
    for (const word of BACKEND_STATES) {
      const line = stateLine(backendState(word, 'why', 'state'));
      expect(agentReplyState(line).ok).toBe(word === 'ready' || word === 'up');
    }
    expect(agentReplyState(stateLine(backendState('drain', 'deploying v42', 'state')))).toEqual({
      ok: false,
      reason: 'agent says drain: deploying v42',
    });
  });

  test('words are checked and lower-cased; reasons one printable line of bounded length', () => {
    expect(backendState(' DRAIN ', '  v42 ', 'state')).toEqual({ word: 'drain', reason: 'v42' });
    expect(backendState('ready', '', 'state')).toEqual({ word: 'ready' });
    expect(() => backendState('75%', undefined, 'state')).toThrow(
      'state: "75%" is not a state (one of ready | up | drain | maint | down | stopped | fail)',
    );
    expect(() => backendState('drain', 'a\nup', 'state')).toThrow('state: reason "a\\nup" has a line break');
    expect(() => backendState('drain', 'x'.repeat(MAX_STATE_REASON_CHARS + 1), 'state')).toThrow(
      `state: reason is ${MAX_STATE_REASON_CHARS + 1} characters, more than ${MAX_STATE_REASON_CHARS}`,
    );
  });

  test('a file: its first line; written atomically, read back the same; no file is ready', async () => {
    const file = join(dir, 'sub', 'state');
    expect(await readStateFile(file)).toEqual({ word: 'ready' });
    await writeStateFile(file, { word: 'maint', reason: 'disk swap' });
    expect(await readFile(file, 'utf8')).toBe('maint # disk swap\n');
    expect(await readStateFile(file)).toEqual({ word: 'maint', reason: 'disk swap' });
    expect(parseStateText('drain\r\nready\n', 'f')).toEqual({ word: 'drain' });
  });

  test('written readable by the agent whatever the umask: directories it made 0755, the file 0644', async () => {
    // The unit's dynamic user reads the file root wrote; with umask 027 it got 0750/0640 and answered `ready`.
    const old = process.umask(0o027);
    try {
      const top = join(dir, 'umask');
      const file = join(top, 'lib', 'state');
      await writeStateFile(file, { word: 'maint' });
      expect(statSync(top).mode & 0o777).toBe(0o755);
      expect(statSync(join(top, 'lib')).mode & 0o777).toBe(0o755);
      expect(statSync(file).mode & 0o777).toBe(0o644);
    } finally {
      process.umask(old);
    }
  });

  test('a file that is not a state: an error naming the file and the value', async () => {
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'maybe # who knows\n');
    await expect(readStateFile(bad)).rejects.toThrow(`${bad}: "maybe" is not a state`);
    writeFileSync(bad, 'x'.repeat(5_000));
    await expect(readStateFile(bad)).rejects.toThrow(`${bad}: more than 4096 bytes: not a state file`);
    await expect(readStateFile(dir)).rejects.toThrow(dir);
  });
});

async function stateCommand(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(['backend', 'state', ...argv], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('backend state - the command', () => {
  // docs/backend-host.md: "Delete the file (or `state ready`) to serve again"; the command read the old file first
  // and stopped on its parse error, so it could not replace a bad one.
  test.each([
    ['not a state', 'maybe # who knows\n', '"maybe" is not a state'],
    ['oversized', 'x'.repeat(5_000), 'more than 4096 bytes: not a state file'],
  ])(
    'setting over a file that is %s: written, the old one reported invalid; showing it fails',
    async (_n, text, why) => {
      const file = join(dir, `replace-${_n.replace(/ /g, '-')}`);
      writeFileSync(file, text);
      const shown = await stateCommand('--state-file', file);
      expect(shown.code).toBe(1);
      expect(shown.err).toContain(`${file}: ${why}`);
      const set = await stateCommand('ready', '--state-file', file);
      expect(set.code).toBe(0);
      expect(set.out.startsWith(`previous: invalid (${file}: ${why}`)).toBe(true);
      expect(set.out.endsWith(`) -> ready (${file}; the nodes see it at their next probes)`)).toBe(true);
      expect(await readFile(file, 'utf8')).toBe('ready\n');
      expect((await stateCommand('--state-file', file)).out).toBe(`ready (${file})`);
    },
  );

  test('setting over a good file says what it was', async () => {
    const file = join(dir, 'good');
    writeFileSync(file, 'maint # disk swap\n');
    const set = await stateCommand('drain', '--reason', 'v42', '--state-file', file, '-o', 'json');
    expect(JSON.parse(set.out)).toEqual({
      stateFile: file,
      state: 'drain',
      reason: 'v42',
      previous: 'maint # disk swap',
    });
  });
});
