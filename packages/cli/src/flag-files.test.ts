import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { MAX_SECRET_FILE_BYTES, readSecretFlag } from './flag-files.js';
import { CliError } from './io.js';

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
