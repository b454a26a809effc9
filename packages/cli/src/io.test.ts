import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { endQuietlyOnClosedOutput, processIo } from './io.js';

/** An error as a stream emits it when its reader went away (`| head -1`), or with another code. */
const streamError = (code: string) => Object.assign(new Error(`write ${code}`), { code });

// processIo's state is this module's (one per test file): once stdout is gone here it stays gone, so the tests run in
// order, before and after the EPIPE.
describe('cli io - a closed stdout or stderr ends that output (endQuietlyOnClosedOutput)', () => {
  type Listeners = ReturnType<typeof process.stdout.listeners>;
  let listeners: { stdout: Listeners; stderr: Listeners };
  beforeEach(() => {
    listeners = { stdout: process.stdout.listeners('error'), stderr: process.stderr.listeners('error') };
    endQuietlyOnClosedOutput();
  });
  afterEach(() => {
    // Only the listeners endQuietlyOnClosedOutput added go: the streams are left as the test found them.
    for (const name of ['stdout', 'stderr'] as const) {
      for (const fn of process[name].listeners('error')) {
        if (!listeners[name].includes(fn)) process[name].removeListener('error', fn as (err: Error) => void);
      }
      expect(process[name].listeners('error')).toEqual(listeners[name]);
    }
    vi.restoreAllMocks();
  });

  test('an error other than EPIPE on stdout is thrown, and the output stays open', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    expect(() => process.stdout.emit('error', streamError('EIO'))).toThrow('write EIO');
    expect(processIo.closed?.aborted).toBe(false);
    processIo.out('still here');
    expect(write).toHaveBeenCalledWith('still here\n');
  });

  // 0da5448: without the abort, `l4fleet events -o json | head -1` went on following NATS for ever, writing to nobody.
  test('EPIPE on stdout aborts io.closed and drops later writes', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    processIo.out('first');
    expect(write).toHaveBeenCalledTimes(1);
    expect(process.stdout.emit('error', streamError('EPIPE'))).toBe(true);
    expect(processIo.closed?.aborted).toBe(true);
    processIo.out('second');
    expect(write).toHaveBeenCalledTimes(1);
  });

  test('EPIPE on stderr drops later error lines', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    processIo.err('first');
    expect(write).toHaveBeenCalledWith('first\n');
    process.stderr.emit('error', streamError('EPIPE'));
    processIo.err('second');
    expect(write).toHaveBeenCalledTimes(1);
  });
});
