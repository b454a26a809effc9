/** `l4fleet events` against a real NATS server, fed by the agent's own publisher and NATS link. */
import { createEventPublisher, createNatsLink, parseAgentConfig } from '@l4fleet/agent';
import { runCli } from '@l4fleet/cli';
import { type NatsHandle, startNats } from '@l4fleet/daemons';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: 'silent' });

describe('l4fleet events', () => {
  let nats: NatsHandle;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  test('follows one kind of one fleet as JSON lines, and exits after --count', async () => {
    const cfg = parseAgentConfig({
      node: { name: 'n1', interface: 'lo', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      nats: { servers: [nats.url] },
    });
    const link = createNatsLink({ config: cfg.nats, name: 'test', logger });
    const pub = createEventPublisher({ prefix: 'l4fleet', fleet: 'evt', node: 'n1', maxPending: 10, logger });
    pub.setTransport(link);
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`ERR ${s}`) };
    const done = runCli(
      ['events', '--nats', nats.url, '--fleet', 'evt', '--kind', 'vip.withdrawn', '--count', '2', '-o', 'json'],
      io,
    );
    // Publish until the follower has seen two (it subscribes asynchronously); other kinds must be filtered out.
    const deadline = Date.now() + 10_000;
    let code: number | undefined;
    void done.then((c) => (code = c));
    while (code === undefined && Date.now() < deadline) {
      pub.flush();
      pub.emit('vip.announced', { vip: '198.51.100.10:80/tcp', prefix: '198.51.100.10/32', nextHop: '198.18.0.11' });
      pub.emit('vip.withdrawn', { vip: '198.51.100.10:80/tcp', prefix: '198.51.100.10/32', reason: 'draining' });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await done).toBe(0);
    const events = out.map(
      (l) => JSON.parse(l) as { kind: string; fleet: string; node: string; data: { reason: string } },
    );
    expect(events).toHaveLength(2);
    expect(events.every((e) => e.kind === 'vip.withdrawn' && e.fleet === 'evt' && e.node === 'n1')).toBe(true);
    expect(events[0]?.data.reason).toBe('draining');
    await link.close();
  });

  test('usage errors exit 2, an unreachable server exits 1', async () => {
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
    expect(await runCli(['events', '--kind', 'nope'], io)).toBe(2);
    expect(out.join('\n')).toMatch(/--kind: "nope" is not one of node.state/);
    expect(await runCli(['events', '--nats', 'nats://127.0.0.1:1', '--count', '1'], io)).toBe(1);
  });
});
