/** runAgent's reads before anything starts: the TLS files the etcd client and the NATS link are handed. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseAgentConfig } from './config/parse.js';
import { AgentError } from './errors.js';
import { type RunningAgent, runAgent } from './runtime.js';

const logger = pino({ level: 'silent' });
const base = {
  node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  dataplane: { driver: 'dry-run' },
  metrics: { listen: '127.0.0.1:0' },
  state: { enabled: false },
};

let dir: string;
let writer: ChildProcess | undefined;
let running: RunningAgent | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-runtime-'));
});
afterEach(async () => {
  try {
    // timeout leads a process group of its own: the sh blocked opening the FIFO goes with it.
    if (writer?.pid !== undefined) process.kill(-writer.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  writer = undefined;
  await running?.close();
  running = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<RunningAgent>): Promise<AgentError> {
  try {
    running = await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected runAgent to refuse the start');
}

// They were read with a blocking readFileSync: a FIFO held the event loop (NATS: again on every connect attempt).
describe('runAgent - etcd.tls and nats.tls', () => {
  test('a FIFO as nats.tls.ca refuses the start, never read', async () => {
    const fifo = join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    // Should the read block, this writer ends each wait after 1 s, so the test fails instead of hanging.
    writer = spawn('timeout', ['10', 'sh', '-c', `for i in 1 2 3; do sleep 1; echo x > '${fifo}'; done`], {
      stdio: 'ignore',
    });
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      nats: { servers: ['nats://127.0.0.1:1'], tls: { ca: fifo } },
    });
    const err = await refusal(
      runAgent(config, {
        logger,
        store: new MemoryFleetStore(),
        speaker: createFakeSpeaker(),
        dataPlane: createRecordingDataPlane(),
      }),
    );
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: `nats.tls.ca: "${fifo}" is not a regular file` });
  });

  test('a missing etcd.tls.ca refuses the start naming the field and the file', async () => {
    const ca = join(dir, 'missing-ca.pem');
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['https://127.0.0.1:2379'], tls: { ca } },
    });
    const err = await refusal(
      runAgent(config, { logger, speaker: createFakeSpeaker(), dataPlane: createRecordingDataPlane() }),
    );
    expect(err).toMatchObject({ code: 'CONFIG_UNREADABLE', message: `etcd.tls.ca: "${ca}" cannot be read (ENOENT)` });
  });
});
