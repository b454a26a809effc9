/**
 * The global etcd TLS flags (--cacert, --cert, --key): checked by the agent's own rules (checkTlsContent; read from a
 * file or a pipe, flag-files.ts) before the store is opened, so a file that is not what it should be is named, flag
 * and file, instead of failing every handshake.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFleetStore } from '@l4fleet/store';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { writeTestPem } from '../pem.test-helper.js';
import { runCli } from '../program.js';
import { openEtcdStore } from './context.js';

/** The real store opener: the files are checked before any connection is tried. */
async function etcdCli(...argv: string[]) {
  const err: string[] = [];
  const io: CliIo = { out: () => undefined, err: (t) => err.push(t) };
  return { code: await runCli(['--etcd', 'https://127.0.0.1:1', ...argv, 'get', 'vips'], io), err: err.join('\n') };
}

describe('cli context - the etcd TLS files (--cacert, --cert, --key)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-context-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  test('a CA, a certificate and its key are taken (the key is not read as certificates)', async () => {
    const pem = writeTestPem(dir);
    const store = openEtcdStore({ etcd: 'https://127.0.0.1:1', cacert: pem.cert, cert: pem.cert, key: pem.key });
    await store.close();
  });

  // An empty --cacert was handed to the etcd client as it was: every handshake failed, the flag never named; a CA
  // that is no certificate the same. The rules (and words) are the agent's for etcd.tls and nats.tls.
  test.each<[string, string, string]>([
    ['--cacert', '', 'is empty'],
    ['--cacert', 'PEM\n', 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)'],
    ['--cacert', '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n', 'certificate 1 of 1 does not parse'],
    ['--cert', '', 'is empty'],
    ['--cert', 'PEM\n', 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)'],
    ['--key', '', 'is empty'],
  ])('%s holding %j: exit 1 naming the flag and the file, etcd not dialled', async (flag, text, why) => {
    const path = file('tls.pem', text);
    const r = await etcdCli(flag, path);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: ${flag}: "${path}" ${why}`);
  });

  test.each(['--cacert', '--cert', '--key'])(
    '%s naming a directory: exit 1, not a regular file or a pipe',
    async (flag) => {
      const sub = join(dir, 'sub');
      mkdirSync(sub);
      const r = await etcdCli(flag, sub);
      expect(r).toEqual({ code: 1, err: `error: ${flag}: "${sub}" is not a regular file or a pipe (a directory)` });
    },
  );
});

// pino was handed any L4FLEET_LOG_LEVEL: `verbose` failed every store command with pino's "default level:verbose must
// be included in custom levels" (exit 1, the variable never named), and an empty one failed too.
describe('cli context - L4FLEET_LOG_LEVEL', () => {
  const saved = process.env.L4FLEET_LOG_LEVEL;
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LOG_LEVEL;
    else process.env.L4FLEET_LOG_LEVEL = saved;
  });
  async function getVips() {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    const code = await runCli(['get', 'vips', '-o', 'json'], io, { openStore: () => new MemoryFleetStore() });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  test('an unknown level: usage error naming the variable, the value and the levels (exit 2)', async () => {
    process.env.L4FLEET_LOG_LEVEL = 'verbose';
    const r = await getVips();
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      'error: L4FLEET_LOG_LEVEL: "verbose" is not one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  test.each(['', 'debug', 'silent'])('%j is taken (empty as unset)', async (level) => {
    process.env.L4FLEET_LOG_LEVEL = level;
    const r = await getVips();
    expect(r).toMatchObject({ code: 0, out: '[]' });
  });
});
