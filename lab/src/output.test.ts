/**
 * lineWriter(): the lab CLI's stdout and stderr when they go away under a running command (`lab watch`): a terminal
 * that hung up (EIO: an ssh session that dropped, whose SIGHUP also stops watch) or a pipe's reader that left (EPIPE).
 */
import { EventEmitter } from 'node:events';
import { ConfigError } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { labLogLevel, lineWriter } from './output.js';

/** A stream as Node's: a failed write is reported later as an 'error' event, which throws with no listener. */
class FakeStream extends EventEmitter {
  readonly written: string[] = [];
  write(text: string): boolean {
    this.written.push(text);
    return true;
  }
  fail(code: string): void {
    this.emit('error', Object.assign(new Error(`write ${code}`), { code }));
  }
}

describe('lab output - a stream that went away', () => {
  test.each(['EIO', 'EPIPE'])('%s ends that output quietly: no uncaught error, later writes dropped', (code) => {
    const stream = new FakeStream();
    const write = lineWriter(stream);
    write('frame 1');
    // With nothing listening for 'error', this threw: an uncaught exception that ended watch before its summary.
    expect(() => stream.fail(code)).not.toThrow();
    write('frame 2');
    write('watch --check: ok\n');
    expect(stream.written).toEqual(['frame 1\n']);
  });

  test('any other error still throws (a failure, not an output that went away)', () => {
    const stream = new FakeStream();
    lineWriter(stream)('x');
    expect(() => stream.fail('ENOSPC')).toThrow('write ENOSPC');
  });

  test('each text is one line: a newline added only when missing', () => {
    const stream = new FakeStream();
    const write = lineWriter(stream);
    write('a');
    write('b\n');
    expect(stream.written).toEqual(['a\n', 'b\n']);
  });
});

describe('lab log level', () => {
  test.each([
    { env: {}, terminal: true, level: 'warn' },
    { env: {}, terminal: false, level: 'info' },
    { env: { L4FLEET_LOG_LEVEL: 'debug' }, terminal: true, level: 'debug' },
    { env: { L4FLEET_LOG_LEVEL: 'info' }, terminal: false, level: 'info' },
    { env: { L4FLEET_LOG_LEVEL: '' }, terminal: true, level: 'warn' },
  ])(
    '$env at a terminal $terminal: $level (JSON event lines only for scripts and logs, or when asked)',
    ({ env, terminal, level }) => {
      expect(labLogLevel(env, terminal)).toBe(level);
    },
  );
});

test('lab log level: an unknown L4FLEET_LOG_LEVEL is refused naming the variable and the levels (pino said "default level:verbose must be included in custom levels")', () => {
  expect(() => labLogLevel({ L4FLEET_LOG_LEVEL: 'verbose' }, true)).toThrow(
    expect.objectContaining({
      code: 'OPTION_INVALID',
      // The words every l4fleet process uses (logLevelFromEnv, @l4fleet/config), kept as the cause.
      message: 'L4FLEET_LOG_LEVEL: "verbose" is not one of fatal, error, warn, info, debug, trace, silent',
      cause: expect.any(ConfigError),
    }),
  );
});
