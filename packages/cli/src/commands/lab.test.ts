/** `l4fleet lab ...` hands its arguments to l4fleet-lab, which prints its own errors. */
import { describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';

describe('cli - lab', () => {
  test('a failing lab command keeps its exit status and adds no second error line of its own', async () => {
    const err: string[] = [];
    const io: CliIo = { out: () => {}, err: (t) => err.push(t) };
    // An unknown subcommand: l4fleet-lab refuses it (usage, exit 2) before touching any lab.
    const code = await runCli(['lab', 'no-such-lab-command'], io);
    expect(code).toBe(2);
    expect(err).toEqual([]);
  });
});
