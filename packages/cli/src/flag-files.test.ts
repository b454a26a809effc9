import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { MAX_SECRET_FILE_BYTES, readPemFlag, readSecretFlag } from './flag-files.js';
import { CliError, type CliIo } from './io.js';
import { writeTestPem } from './pem.test-helper.js';
import { runCli } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-flag-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refusal(file: string): CliError {
  try {
    readSecretFlag('--token-file', file);
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return err as CliError;
  }
  throw new Error(`expected ${file} to be refused`);
}

describe('cli flag files - a secret file is bounded and never empty', () => {
  test('the secret, trimmed', () => {
    const f = join(dir, 'token');
    writeFileSync(f, '  s3cret-of-the-fleet\n');
    expect(readSecretFlag('--token-file', f)).toBe('s3cret-of-the-fleet');
  });

  test('a regular file over the bound: refused by its size, exit 1', () => {
    const f = join(dir, 'big');
    writeFileSync(f, '');
    truncateSync(f, MAX_SECRET_FILE_BYTES + 1);
    const err = refusal(f);
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(
      `--token-file: ${f} is ${MAX_SECRET_FILE_BYTES + 1} bytes, more than ${MAX_SECRET_FILE_BYTES} bytes (MAX_SECRET_FILE_BYTES): not a secret`,
    );
  });

  test('/dev/zero (endless): refused once past the bound, exit 1', () => {
    const err = refusal('/dev/zero');
    expect(err.exitCode).toBe(1);
    expect(err.message).toContain(`--token-file: /dev/zero is more than ${MAX_SECRET_FILE_BYTES} bytes`);
  });
});

/**
 * A FIFO at a fresh path whose writer (a shell: its redirect opens the FIFO at once, so the read's open cannot wait
 * for ever) writes `source`'s content, or nothing. The read runs synchronously, so the writer is another process.
 */
function fifoOf(name: string, source?: string): { path: string; writer: ChildProcess } {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const script = source === undefined ? ': > "$1"' : 'cat "$2" > "$1"';
  const writer = spawn('sh', ['-c', script, 'sh', path, ...(source === undefined ? [] : [source])], {
    stdio: 'ignore',
  });
  return { path, writer };
}

function pemRefusal(flag: string, file: string): CliError {
  try {
    readPemFlag(flag, file, 'certificates');
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return err as CliError;
  }
  throw new Error(`expected ${file} to be refused`);
}

describe('cli flag files - a PEM flag takes a pipe (--cacert <(vault ...)) and checks it as the agent does', () => {
  // 1034f4a read these flags by the agent's regular-file rule (which keeps a FIFO from holding the agent's event
  // loop): `--cacert <(vault ...)` became '"/dev/fd/63" is not a regular file', exit 1. A one-shot command may wait.
  test('a CA through a FIFO is taken, byte for byte', () => {
    const pem = writeTestPem(dir);
    const { path, writer } = fifoOf('ca.fifo', pem.cert);
    try {
      expect(readPemFlag('--cacert', path, 'certificates').toString()).toBe(readFileSync(pem.cert, 'utf8'));
    } finally {
      writer.kill();
    }
  });

  test('a key through a FIFO is taken (not read as certificates)', () => {
    const pem = writeTestPem(dir);
    const { path, writer } = fifoOf('key.fifo', pem.key);
    try {
      expect(readPemFlag('--key', path, 'key').toString()).toBe(readFileSync(pem.key, 'utf8'));
    } finally {
      writer.kill();
    }
  });

  test('an empty pipe: refused naming the flag and the file, exit 1', () => {
    const { path, writer } = fifoOf('empty.fifo');
    try {
      const err = pemRefusal('--nats-ca', path);
      expect(err.exitCode).toBe(1);
      expect(err.message).toBe(`--nats-ca: "${path}" is empty`);
    } finally {
      writer.kill();
    }
  });

  test("a pipe holding no certificate: refused in the agent's words", () => {
    const text = join(dir, 'not-pem');
    writeFileSync(text, 'PEM\n');
    const { path, writer } = fifoOf('text.fifo', text);
    try {
      expect(pemRefusal('--cacert', path).message).toBe(
        `--cacert: "${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      );
    } finally {
      writer.kill();
    }
  });

  test('/dev/zero (endless): refused once past MAX_TLS_FILE_BYTES, exit 1', () => {
    const err = pemRefusal('--cacert', '/dev/zero');
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(`--cacert: "/dev/zero" is more than 16777216 bytes (MAX_TLS_FILE_BYTES)`);
  });

  test('a regular file over the bound: refused by its size before it is read', () => {
    const f = join(dir, 'big.pem');
    writeFileSync(f, '');
    truncateSync(f, 16 * 1024 * 1024 + 1);
    expect(pemRefusal('--cacert', f).message).toBe(
      `--cacert: "${f}" is 16777217 bytes, more than 16777216 (MAX_TLS_FILE_BYTES)`,
    );
  });
});

describe('cli flag files - a pipe is read once per process', () => {
  // `l4fleet rollback --cacert <(cat ca.pem)` opens the store twice (history, then apply): the second read of
  // /dev/fd/63 found the pipe drained, '--cacert: "/dev/fd/63" is empty', exit 1. The writer here opens the FIFO a
  // second time with nothing in it, as a drained pipe reads.
  function drainedAfterOne(name: string, source: string): { path: string; writer: ChildProcess } {
    const path = join(dir, name);
    execFileSync('mkfifo', [path]);
    const writer = spawn('sh', ['-c', 'cat "$2" > "$1"; : > "$1"', 'sh', path, source], { stdio: 'ignore' });
    return { path, writer };
  }

  test('a PEM flag naming a FIFO twice: the same content both times', () => {
    const pem = writeTestPem(dir);
    const { path, writer } = drainedAfterOne('twice-ca.fifo', pem.cert);
    try {
      const first = readPemFlag('--cacert', path, 'certificates').toString();
      expect(first).toBe(readFileSync(pem.cert, 'utf8'));
      expect(readPemFlag('--cacert', path, 'certificates').toString()).toBe(first);
    } finally {
      writer.kill();
    }
  });

  test('a secret flag naming a FIFO twice: the same secret both times', () => {
    const token = join(dir, 'twice-token');
    writeFileSync(token, 'tok-of-the-fleet\n');
    const { path, writer } = drainedAfterOne('twice-token.fifo', token);
    try {
      expect(readSecretFlag('--token-file', path)).toBe('tok-of-the-fleet');
      expect(readSecretFlag('--token-file', path)).toBe('tok-of-the-fleet');
    } finally {
      writer.kill();
    }
  });

  /**
   * Ends `writer` and lets go of any writer it left blocked in open() of the FIFO at `path` (one no read reached):
   * a read end opened without waiting wakes it, and closed at once it ends on its first write (SIGPIPE).
   */
  function release(path: string, writer: ChildProcess): void {
    writer.kill();
    closeSync(openSync(path, constants.O_RDONLY | constants.O_NONBLOCK));
  }

  // b1618c7: a pipe read once under one flag's bound is not another flag's read: cached by path alone, a 70 KiB pipe
  // read for --cacert (bound 16 MiB) was then taken as a 70 KiB secret, past MAX_SECRET_FILE_BYTES.
  test("a FIFO read by a PEM flag and then by a secret flag is read again, under the secret's bound", () => {
    const big = join(dir, 'big-text');
    writeFileSync(big, 'x'.repeat(70 * 1024));
    const path = join(dir, 'pem-then-token.fifo');
    const go = join(dir, 'pem-then-token.go');
    execFileSync('mkfifo', [path]);
    // The second copy waits for `go`, made once the first read is over: opened while that read still drained the
    // first, it would be read with it, and the second read would wait for a writer for ever.
    const script = 'cat "$2" > "$1"; while [ ! -e "$3" ]; do sleep 0.01; done; cat "$2" > "$1"';
    const writer = spawn('sh', ['-c', script, 'sh', path, big, go], { stdio: 'ignore' });
    try {
      expect(pemRefusal('--cacert', path).message).toBe(
        `--cacert: "${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      );
      writeFileSync(go, '');
      expect(refusal(path).message).toBe(
        `--token-file: ${path} is more than ${MAX_SECRET_FILE_BYTES} bytes (MAX_SECRET_FILE_BYTES): not a secret`,
      );
    } finally {
      writeFileSync(go, '');
      release(path, writer);
    }
  });

  // b1618c7: a read that failed is kept as a read is: not kept, the second use of the flag read what the path held
  // then, and reported another error than the first (or none) for the same flag in the same command.
  test('a failed read is kept: the second read of the path reports the same error, not what the path holds now', () => {
    const token = join(dir, 'late-token');
    writeFileSync(token, 'tok-that-came-late\n');
    const path = join(dir, 'late.fifo');
    const first = refusal(path);
    expect(first.message).toContain(`--token-file: cannot read ${path}: `);
    expect(first.message).toContain('ENOENT');
    // The path is now a FIFO whose writer has the token: not read, the first read's error stands.
    const { writer } = fifoOf('late.fifo', token);
    try {
      expect(refusal(path).message).toBe(first.message);
    } finally {
      release(path, writer);
    }
  });

  test('a regular file is read again: a change between reads is seen', () => {
    const f = join(dir, 'rotated-token');
    writeFileSync(f, 'one\n');
    expect(readSecretFlag('--token-file', f)).toBe('one');
    writeFileSync(f, 'two\n');
    expect(readSecretFlag('--token-file', f)).toBe('two');
  });
});

/** Runs `l4fleet ARGV` with a store opener that records the flags it was given and opens nothing. */
async function cli(...argv: string[]): Promise<{ code: number; err: string; opened: Record<string, unknown>[] }> {
  const err: string[] = [];
  const io: CliIo = { out: () => undefined, err: (t) => err.push(t) };
  const opened: Record<string, unknown>[] = [];
  const code = await runCli(argv, io, {
    openStore: (flags) => {
      opened.push({ ...flags });
      throw new CliError('the test opens no store', 1);
    },
  });
  return { code, err: err.join('\n'), opened };
}

// README "CLI reference": an option that names one file or list given twice is refused (exit 2). These took the
// last one silently: `--etcd http://127.0.0.1:1 --etcd http://127.0.0.1:2 get vips` contacted :2.
describe('cli flag files - an option naming one file or list given twice is refused, exit 2', () => {
  const a = join(dir, 'a.pem');
  const b = join(dir, 'b.pem');
  test.each([
    {
      argv: ['--etcd', 'http://127.0.0.1:1', '--etcd', 'http://127.0.0.1:2', 'get', 'vips'],
      flag: '--etcd',
      x: 'http://127.0.0.1:1',
      y: 'http://127.0.0.1:2',
    },
    { argv: ['--cacert', a, '--cacert', b, 'get', 'vips'], flag: '--cacert', x: a, y: b },
    { argv: ['--cert', a, 'get', 'vips', '--cert', b], flag: '--cert', x: a, y: b },
    { argv: ['--key', a, '--key', b, 'status'], flag: '--key', x: a, y: b },
    { argv: ['dashboard', '--token-file', a, '--token-file', b], flag: '--token-file', x: a, y: b },
    { argv: ['probe', 'web', '--ca-file', a, '--ca-file', b], flag: '--ca-file', x: a, y: b },
    { argv: ['backend', 'state', '--state-file', a, '--state-file', b], flag: '--state-file', x: a, y: b },
    { argv: ['backend', 'agent', '--state-file', a, '--state-file', b], flag: '--state-file', x: a, y: b },
  ])('$flag twice: usage error naming both, nothing opened', async ({ argv, flag, x, y }) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${flag}: given twice (${JSON.stringify(x)}, then ${JSON.stringify(y)}); give it once`);
    expect(r.opened).toEqual([]);
  });

  test('--etcd from L4FLEET_ETCD alone is taken; the flag given once wins over it', async () => {
    const saved = process.env.L4FLEET_ETCD;
    process.env.L4FLEET_ETCD = 'http://127.0.0.1:3';
    try {
      expect((await cli('get', 'vips')).opened).toMatchObject([{ etcd: 'http://127.0.0.1:3' }]);
      expect((await cli('--etcd', 'http://127.0.0.1:4', 'get', 'vips')).opened).toMatchObject([
        { etcd: 'http://127.0.0.1:4' },
      ]);
    } finally {
      if (saved === undefined) delete process.env.L4FLEET_ETCD;
      else process.env.L4FLEET_ETCD = saved;
    }
  });
});
