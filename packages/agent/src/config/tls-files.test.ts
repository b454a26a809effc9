import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '@l4fleet/daemons';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { parseAgentConfig } from './parse.js';
import {
  MAX_HEALTH_CA_FILE_BYTES,
  MAX_TLS_FILE_BYTES,
  readHealthCa,
  readTlsFile,
  readTlsFiles,
  tlsFileDigests,
} from './tls-files.js';

let dir: string;
let caPem: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-health-ca-'));
  await makeCerts(dir);
  caPem = await readFile(join(dir, 'ca.pem'));
}, 30_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function refusal(file: string): AgentError {
  try {
    readHealthCa(file);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error(`expected ${file} to be refused`);
}

describe('readHealthCa - health.caFile, checked before the agent uses it', () => {
  test('a PEM bundle is read whole (two roots here)', async () => {
    const bundle = join(dir, 'bundle.pem');
    await writeFile(bundle, Buffer.concat([caPem, Buffer.from('\n# a comment between roots\n'), caPem]));
    expect(readHealthCa(bundle).toString()).toContain('# a comment');
  });

  test.each<[string, () => Promise<string>, string, string]>([
    ['missing', async () => join(dir, 'missing.pem'), 'CONFIG_UNREADABLE', 'cannot be read (ENOENT)'],
    [
      'a directory',
      async () => {
        await mkdir(join(dir, 'sub'), { recursive: true });
        return join(dir, 'sub');
      },
      'CONFIG_INVALID',
      'is not a regular file',
    ],
    ['a device (/dev/zero: endless)', async () => '/dev/zero', 'CONFIG_INVALID', 'is not a regular file'],
    [
      'empty',
      async () => {
        await writeFile(join(dir, 'empty.pem'), '');
        return join(dir, 'empty.pem');
      },
      'CONFIG_INVALID',
      'is empty',
    ],
    ['a key, not a certificate', async () => join(dir, 'server.key'), 'CONFIG_INVALID', 'holds no PEM certificate'],
    [
      'a corrupt second certificate',
      async () => {
        const body = caPem.toString().replace(/^(-----BEGIN CERTIFICATE-----\n)(.{10})/m, '$1AAAAAAAAAA');
        await writeFile(join(dir, 'corrupt.pem'), `${caPem.toString()}${body}`);
        return join(dir, 'corrupt.pem');
      },
      'CONFIG_INVALID',
      'certificate 2 of 2 does not parse',
    ],
    [
      'over 1 MiB',
      async () => {
        await writeFile(join(dir, 'huge.pem'), caPem);
        await truncate(join(dir, 'huge.pem'), MAX_HEALTH_CA_FILE_BYTES + 1);
        return join(dir, 'huge.pem');
      },
      'CONFIG_INVALID',
      `is ${MAX_HEALTH_CA_FILE_BYTES + 1} bytes, more than ${MAX_HEALTH_CA_FILE_BYTES} (MAX_HEALTH_CA_FILE_BYTES)`,
    ],
  ])('refused: %s', async (_name, make, code, why) => {
    const file = await make();
    const err = refusal(file);
    expect(err.code).toBe(code);
    expect(err.message.startsWith(`health.caFile: "${file}" ${why}`)).toBe(true);
    expect(err.problems).toEqual([{ path: 'health.caFile', message: expect.stringMatching(/^"/) }]);
    expect(`health.caFile: ${err.problems[0]?.message}`).toBe(err.message);
  });
});

describe('health.caFile in agent.yaml', () => {
  const minimal = {
    node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
    bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
  };

  test('parsed as a path; a non-string is named', () => {
    expect(parseAgentConfig({ ...minimal, health: { caFile: '/etc/l4fleet/backends-ca.pem' } }).health.caFile).toBe(
      '/etc/l4fleet/backends-ca.pem',
    );
    expect(() => parseAgentConfig({ ...minimal, health: { caFile: 7 } })).toThrow(
      'health.caFile: 7 is not a file path',
    );
  });

  test('its digest is kept, so a reload after the file changed says only a restart uses it', () => {
    const file = join(dir, 'ca.pem');
    const digests = tlsFileDigests(parseAgentConfig({ ...minimal, health: { caFile: file } }));
    expect(digests.get('health.caFile')).toMatchObject({ file });
    expect(digests.get('health.caFile')?.digest).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('tlsFileDigests - only a regular file of bounded size is read', () => {
  const minimal = {
    node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
    bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  };
  const withCa = (ca: string) =>
    parseAgentConfig({
      ...minimal,
      etcd: { endpoints: ['https://127.0.0.1:2379'], tls: { ca } },
      health: { caFile: ca },
    });
  let writer: ChildProcess | undefined;

  afterEach(() => {
    // timeout leads a process group of its own: the group goes, the sh blocked opening the FIFO with it.
    try {
      if (writer?.pid !== undefined) process.kill(-writer.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    writer = undefined;
  });

  test('a FIFO is never opened for a blocking read (the event loop would wait for a writer for good)', async () => {
    const fifo = join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    try {
      // Should a read block on the FIFO, this writer ends each wait after 1 s (3 times, bounded by timeout 10), so
      // the test fails on the digest it then reads instead of hanging.
      const writes = `for i in 1 2 3; do sleep 1; echo not-a-ca > '${fifo}'; done`;
      writer = spawn('timeout', ['10', 'sh', '-c', writes], { stdio: 'ignore' });
      const digests = tlsFileDigests(withCa(fifo));
      expect(digests.get('etcd.tls.ca')).toMatchObject({ file: fifo, digest: 'unreadable (not a regular file)' });
      expect(digests.get('health.caFile')).toMatchObject({ file: fifo, digest: 'unreadable (not a regular file)' });
      expect(refusal(fifo).message).toBe(`health.caFile: "${fifo}" is not a regular file`);
    } finally {
      await rm(fifo, { force: true });
    }
  });

  test.each([
    ['a device (/dev/zero: endless)', async () => '/dev/zero', 'unreadable (not a regular file)'],
    [
      'over MAX_TLS_FILE_BYTES',
      async () => {
        await writeFile(join(dir, 'huge-tls.pem'), caPem);
        await truncate(join(dir, 'huge-tls.pem'), MAX_TLS_FILE_BYTES + 1);
        return join(dir, 'huge-tls.pem');
      },
      `unreadable (${MAX_TLS_FILE_BYTES + 1} bytes, more than ${MAX_TLS_FILE_BYTES})`,
    ],
    ['missing', async () => join(dir, 'missing.pem'), 'unreadable (ENOENT)'],
  ])('%s: unreadable, never read', async (_what, make, digest) => {
    const file = await make();
    expect(tlsFileDigests(withCa(file)).get('etcd.tls.ca')).toMatchObject({ file, digest });
  });
});

// The etcd client and the NATS link were handed paths they read with a blocking readFileSync, at the start and (NATS)
// on every connect attempt: a FIFO held the event loop for good, a file deleted since failed every reconnect.
describe('readTlsFiles - etcd.tls and nats.tls, read once at the start', () => {
  let writer: ChildProcess | undefined;
  afterEach(() => {
    try {
      if (writer?.pid !== undefined) process.kill(-writer.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    writer = undefined;
  });

  const refused = (section: 'etcd' | 'nats', tls: { ca?: string; cert?: string; key?: string }): AgentError => {
    try {
      readTlsFiles(section, tls);
    } catch (err) {
      expect(err).toBeInstanceOf(AgentError);
      return err as AgentError;
    }
    throw new Error(`expected ${JSON.stringify(tls)} to be refused`);
  };

  test('the files are read into buffers; no tls section reads nothing', () => {
    const tls = { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') };
    const got = readTlsFiles('nats', tls);
    expect(got?.ca?.equals(caPem)).toBe(true);
    expect(got?.cert?.toString()).toContain('-----BEGIN CERTIFICATE-----');
    expect(got?.key?.toString()).toContain('PRIVATE KEY-----');
    expect(readTlsFiles('etcd', { ca: join(dir, 'ca.pem') })).toEqual({ ca: caPem });
    expect(readTlsFiles('etcd', undefined)).toBeUndefined();
  });

  test('a FIFO is refused, never read (the event loop would wait for a writer for good)', async () => {
    const fifo = join(dir, 'nats-ca.fifo');
    execFileSync('mkfifo', [fifo]);
    try {
      // Should the read block, this writer ends each wait after 1 s, so the test fails instead of hanging.
      const writes = `for i in 1 2 3; do sleep 1; echo not-a-ca > '${fifo}'; done`;
      writer = spawn('timeout', ['10', 'sh', '-c', writes], { stdio: 'ignore' });
      const err = refused('nats', { ca: fifo });
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message).toBe(`nats.tls.ca: "${fifo}" is not a regular file`);
      expect(err.problems).toEqual([{ path: 'nats.tls.ca', message: `"${fifo}" is not a regular file` }]);
    } finally {
      await rm(fifo, { force: true });
    }
  });

  test.each<[string, () => Promise<string>, string, string]>([
    ['missing', async () => join(dir, 'missing.pem'), 'CONFIG_UNREADABLE', 'cannot be read (ENOENT)'],
    ['a device (/dev/zero: endless)', async () => '/dev/zero', 'CONFIG_INVALID', 'is not a regular file'],
    [
      'over MAX_TLS_FILE_BYTES',
      async () => {
        await writeFile(join(dir, 'huge-key.pem'), caPem);
        await truncate(join(dir, 'huge-key.pem'), MAX_TLS_FILE_BYTES + 1);
        return join(dir, 'huge-key.pem');
      },
      'CONFIG_INVALID',
      `is ${MAX_TLS_FILE_BYTES + 1} bytes, more than ${MAX_TLS_FILE_BYTES} (MAX_TLS_FILE_BYTES)`,
    ],
  ])('refused, naming the field and the file: %s', async (_what, make, code, why) => {
    const file = await make();
    const err = refused('etcd', { ca: join(dir, 'ca.pem'), key: file });
    expect(err.code).toBe(code);
    expect(err.message).toBe(`etcd.tls.key: "${file}" ${why}`);
    expect(err.problems).toEqual([{ path: 'etcd.tls.key', message: `"${file}" ${why}` }]);
  });

  // An empty nats.tls.ca became ca '' (Node's tls: the default public roots, the private CA silently replaced); an
  // empty etcd CA failed every handshake without naming the field; a CA or certificate file holding no certificate the
  // same. Refused at the start like health.caFile, by the same check.
  test.each<[string, 'ca' | 'cert' | 'key', () => Promise<string>, string]>([
    ['an empty CA', 'ca', async () => written('empty-ca.pem', ''), 'is empty'],
    ['an empty certificate', 'cert', async () => written('empty-cert.pem', ''), 'is empty'],
    ['an empty key', 'key', async () => written('empty-key.pem', ''), 'is empty'],
    [
      'a CA holding no certificate',
      'ca',
      async () => written('not-a-ca.pem', 'not a certificate\n'),
      'holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    ],
    ['a key where the certificate is due', 'cert', async () => join(dir, 'client.key'), 'holds no PEM certificate'],
    [
      'a corrupt CA',
      'ca',
      async () =>
        written('corrupt-ca.pem', caPem.toString().replace(/^(-----BEGIN CERTIFICATE-----\n)(.{10})/m, '$1AAAAAAAAAA')),
      'certificate 1 of 1 does not parse',
    ],
  ])('refused as CONFIG_INVALID naming the field and the file: %s', async (_what, field, make, why) => {
    const file = await make();
    const tls = { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key'), [field]: file };
    const err = refused('nats', tls);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message.startsWith(`nats.tls.${field}: "${file}" ${why}`)).toBe(true);
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]?.path).toBe(`nats.tls.${field}`);
    expect(`nats.tls.${field}: ${err.problems[0]?.message}`).toBe(err.message);
  });
});

describe('readTlsFile - a field of another name (the CLI: --cacert, --key) says what its file holds', () => {
  test('kind "key": a key is taken under a name not ending .key; "certificates": a key is refused', () => {
    const key = join(dir, 'client.key');
    expect(readTlsFile('--key', key, 'key').toString()).toContain('PRIVATE KEY-----');
    expect(() => readTlsFile('--cert', key, 'certificates')).toThrow(`--cert: "${key}" holds no PEM certificate`);
    expect(() => readTlsFile('--nats-ca', join(dir, 'missing.pem'), 'certificates')).toThrow(
      `--nats-ca: "${join(dir, 'missing.pem')}" cannot be read (ENOENT)`,
    );
  });
});

async function written(name: string, content: string): Promise<string> {
  await writeFile(join(dir, name), content);
  return join(dir, name);
}
