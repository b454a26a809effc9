import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, test } from 'vitest';
import { createBatchWriter, nftBatchAvailable } from './batch.js';

// Stand-ins for l4fleet-nft-batch that speak its stdout protocol; the real one is tested against the
// kernel in test/dataplane/nftables.int.test.ts.
const dir = mkdtempSync(join(tmpdir(), 'l4batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fake(name: string, script: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${script}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A stand-in that answers every "commit" with `answer`. */
const answering = (name: string, answer: string): string =>
  fake(name, `while read l; do [ "$l" = commit ] && echo "${answer}"; done`);

const logger = pino({ level: 'silent' });

describe('batch writer', () => {
  test('answers "ok" - resolves, commit after commit', async () => {
    // Answers each "commit" line with "ok"; two commits in a row.
    const path = answering('ok', 'ok');
    const w = createBatchWriter({ table: 't', logger, path });
    await w.commit('add s 1\n');
    await w.commit('delete s 1\n');
    await w.close();
  });

  test('answers "error" - NFT_FAILED with the reason', async () => {
    const path = answering('err', 'error delete element(s) of set s: No such file');
    const w = createBatchWriter({ table: 't', logger, path });
    await expect(w.commit('delete s 1\n')).rejects.toMatchObject({
      code: 'NFT_FAILED',
      message: 'l4fleet-nft-batch: delete element(s) of set s: No such file',
    });
    await w.close();
  });

  test('answers "error" naming a VIP\'s set - the VIP it belongs to is named after the kernel\'s text', async () => {
    const why = 'delete element(s) of set v_c6120201_tcp_80_over (first key 5): No such file or directory';
    const path = answering('errvip', `error ${why}`);
    const w = createBatchWriter({ table: 't', logger, path });
    await expect(w.commit('delete v_c6120201_tcp_80_over 5\n')).rejects.toMatchObject({
      code: 'NFT_FAILED',
      message: `l4fleet-nft-batch: ${why} (vip 198.18.2.1:80/tcp: v_c6120201_tcp_80_over)`,
    });
    await w.close();
  });

  test('answers "lost" - NFT_BATCH_LOST (the outcome is unknown)', async () => {
    const path = answering('lost', "lost reading the kernel's answer: No buffer space available");
    const w = createBatchWriter({ table: 't', logger, path });
    await expect(w.commit('add s 1\n')).rejects.toMatchObject({ code: 'NFT_BATCH_LOST' });
    await w.close();
  });

  test('dies during a commit - NFT_BATCH_LOST, and the next commit starts it again', async () => {
    const marker = join(dir, 'died-once');
    const path = fake(
      'dies',
      `if [ ! -e ${marker} ]; then touch ${marker}; echo "out of memory" >&2; exit 1; fi\n` +
        'while read l; do [ "$l" = commit ] && echo ok; done',
    );
    const w = createBatchWriter({ table: 't', logger, path });
    await expect(w.commit('add s 1\n')).rejects.toMatchObject({ code: 'NFT_BATCH_LOST' });
    await w.commit('add s 1\n');
    await w.close();
  });

  test('available - only an executable file', () => {
    expect(nftBatchAvailable(join(dir, 'missing'))).toBe(false);
    const notExec = join(dir, 'plain');
    writeFileSync(notExec, '');
    expect(nftBatchAvailable(notExec)).toBe(false);
    expect(nftBatchAvailable(fake('x', 'exit 0'))).toBe(true);
  });
});
