/**
 * `l4fleet backend agent` and `l4fleet backend state` as a user runs them (the built CLI, two processes), answering
 * the node's own agent-check probe (@l4fleet/agent probeMember) on loopback: ready, drained with a reason by
 * `backend state`, ready again; SIGTERM ends the agent with exit 0.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { probeMember } from '@l4fleet/agent';
import { afterAll, describe, expect, test } from 'vitest';

const CLI_BIN = fileURLToPath(new URL('../packages/cli/bin/l4fleet.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'l4fleet-backend-agent-int-'));
const stateFile = join(dir, 'var', 'state');
let agent: ChildProcess | undefined;

afterAll(() => {
  agent?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const state = (...args: string[]) =>
  spawnSync('node', [CLI_BIN, 'backend', 'state', ...args, '--state-file', stateFile], { encoding: 'utf8' });

describe('l4fleet backend agent | state', () => {
  test('the node probe sees ready, then drain with its reason, then ready; SIGTERM exits 0', async () => {
    const child = spawn('node', [CLI_BIN, 'backend', 'agent', '--listen', '127.0.0.1:0', '--state-file', stateFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent = child;
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no "listening" line within 15 s')), 15_000);
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`backend agent exited ${code}`)));
    });
    const m = /^backend agent: listening on 127\.0\.0\.1:(\d+), answering ready from (.*)$/.exec(first);
    expect(m?.[2]).toBe(stateFile);
    const port = Number(m?.[1]);
    const probe = () =>
      probeMember(
        { address: '127.0.0.1', port: 80 },
        { type: 'agent', port, intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1 },
      );
    expect(await probe()).toMatchObject({ ok: true });

    const drained = state('drain', '--reason', 'deploying v42');
    expect(drained.status).toBe(0);
    expect(drained.stdout.trim()).toBe(
      `ready -> drain # deploying v42 (${stateFile}; the nodes see it at their next probes)`,
    );
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says drain: deploying v42' });
    expect(JSON.parse(state('-o', 'json').stdout)).toEqual({ stateFile, state: 'drain', reason: 'deploying v42' });

    const refused = state('sometimes');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('state: "sometimes" is not a state (one of ready | up | drain');
    expect(await probe()).toMatchObject({ ok: false, reason: 'agent says drain: deploying v42' });

    expect(state('ready').status).toBe(0);
    expect(await probe()).toMatchObject({ ok: true });

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    agent = undefined;
  });
});
