/** For this package's tests only (excluded from the build): the CLI run in-process over one memory store. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MemberStatus } from '@l4fleet/config';
import type { MemoryFleetStore } from '@l4fleet/store';
import { afterAll } from 'vitest';
import type { CliIo } from './io.js';
import { runCli } from './program.js';

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/**
 * Runs `l4fleet ARGV` against `store()` (read at each call, so a test may replace the store). The store outlives the
 * command: its close() would end it for the next call.
 */
export function memoryCli(store: () => MemoryFleetStore): (...argv: string[]) => Promise<CliRun> {
  return async (...argv) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    const shared = new Proxy(store(), {
      get: (target, prop) => {
        if (prop === 'close') return async () => undefined;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const code = await runCli(argv, io, { openStore: () => shared });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
}

/** Writes the aggregator's decisions (`pool/member` -> status) as the leader `lb1` would. */
export async function writeDecided(store: MemoryFleetStore, decided: Record<string, MemberStatus>): Promise<void> {
  const leader = await store.campaign('lb1');
  await store.writeDecided(new Map(Object.entries(decided)), { leadership: leader });
}

/** Fleet files in a temporary directory removed after the file's tests: `file(name, text)` writes one, returns its path. */
export function fleetFiles(label: string): (name: string, text: string) => string {
  const dir = mkdtempSync(join(tmpdir(), `l4fleet-${label}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return (name, text) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
}
