/** A reload through the real BGP sessions over the fake speaker (gobgpd's reconcile itself: test/agent.int). */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { BgpError, createFakeSpeaker, type Peer } from '@l4fleet/bgp';
import { makeCerts } from '@l4fleet/daemons';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createBgpSessions } from '../bgp/sessions.js';
import { systemClock } from '../clock.js';
import { AgentError } from '../errors.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { parseAgentConfigText } from './load.js';
import { parseAgentConfig } from './parse.js';
import { createReloader } from './reloader.js';
import { tlsFileDigests } from './tls-files.js';

const logger = pino({ level: 'silent' });
const ROUTER = { address: '198.18.2.1', asn: 65000 };
const ROUTER2 = { address: '198.18.2.2', asn: 65000 };

const configWith = (bgp: Record<string, unknown> = {}, rest: Record<string, unknown> = {}) =>
  parseAgentConfig({
    node: { name: 'n1', interface: 'eth0', address: '198.18.2.11' },
    bgp: { asn: 65001, peers: [ROUTER], ...bgp },
    etcd: { endpoints: ['http://198.19.0.2:2379'] },
    ...rest,
  });

type Extra = Partial<
  Pick<Parameters<typeof createReloader>[0], 'preflight' | 'tlsFiles' | 'setLogLevel' | 'health' | 'logger' | 'bfd'>
>;

/**
 * The fake speaker as gobgpd applies a list (GobgpSpeaker.applyPeers): the removed peers are deleted first, then an
 * AddPeer of an address in `rejected` is refused for good (GOBGP_REJECTED, not retryable), the deletes already done.
 */
function rejectingSpeaker(rejected: Set<string>) {
  const fake = createFakeSpeaker();
  const setPeers = async (list: readonly Peer[]) => {
    const want = new Set(list.map((p) => p.address));
    const kept = fake.peers.filter((p) => want.has(p.address));
    await fake.setPeers(kept);
    for (const peer of list) {
      if (kept.some((p) => p.address === peer.address)) continue;
      if (rejected.has(peer.address))
        throw new BgpError('GOBGP_REJECTED', `AddPeer ${peer.address}: rejected by gobgpd`, { retryable: false });
      await fake.setPeers([...fake.peers, peer]);
    }
  };
  return Object.create(fake, { setPeers: { value: setPeers } }) as typeof fake;
}

async function setUp(config = configWith(), extra: Extra = {}, speaker = createFakeSpeaker()) {
  const metrics = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
  const bgp = createBgpSessions({
    speaker,
    config: config.bgp,
    clock: systemClock,
    metrics,
    events: { emit: () => undefined },
    logger,
    onChange: () => undefined,
  });
  await speaker.setPeers(config.bgp.peers); // as the sessions' start would
  const bfdPeers: string[][] = [];
  const bfdTimers: string[] = [];
  const bfd = {
    setPeers: async (ps: readonly { address: string }[]) => void bfdPeers.push(ps.map((p) => p.address)),
    setTimers: async (t: { receiveIntervalMs: number; detectMultiplier: number }) =>
      void bfdTimers.push(`${t.receiveIntervalMs} x${t.detectMultiplier}`),
  };
  const emitted: { kind: string; data: unknown }[] = [];
  const events = { emit: (kind: string, data: unknown) => void emitted.push({ kind, data }) };
  const reloader = createReloader({ config, bgp, bfd, metrics, events, logger, ...extra });
  const count = async (result: string) =>
    (await metrics.configReloadsTotal.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  return { speaker, metrics, reloader, count, bgp, bfdPeers, bfdTimers, emitted };
}

describe('agent reload', () => {
  test('a peer added is handed to gobgpd; removed again, its session metrics go', async () => {
    const { speaker, metrics, reloader, count } = await setUp();
    const added = await reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }));
    expect(added.changed).toContain('bgp.peers');
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address, ROUTER2.address]);
    speaker.setPeerState(ROUTER2.address, 'active');
    metrics.setSessionState(ROUTER2.address, 'active');
    await reloader.reload(async () => configWith({ peers: [ROUTER] }));
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
    const series = (await metrics.bgpSessionState.get()).values.map((v) => v.labels.peer);
    expect(series).not.toContain(ROUTER2.address);
    expect(await count('applied')).toBe(2);
  });

  test('logLevel is applied live: the component loggers (made without a level of their own) follow the root', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push((JSON.parse(String(chunk)) as { msg: string }).msg);
        done();
      },
    });
    const root = pino({ level: 'info' }, stream);
    const bgpLog = root.child({ component: 'bgp' });
    const { reloader } = await setUp(configWith(), {
      setLogLevel: (level) => {
        root.level = level;
      },
    });
    bgpLog.debug('hidden');
    const plan = await reloader.reload(async () => configWith({}, { logLevel: 'debug' }));
    expect(plan).toEqual({ changed: ['logLevel'], needRestart: [] });
    bgpLog.debug('shown at debug');
    await reloader.reload(async () => configWith({}, { logLevel: 'warn' }));
    bgpLog.info('hidden at warn');
    bgpLog.warn('shown at warn');
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual(['shown at debug', 'shown at warn']);
  });

  test('BFD sessions follow the peers only while BFD is on', async () => {
    const off = await setUp();
    await off.reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }));
    expect(off.bfdPeers).toEqual([]);
    // Turning BFD on is refused (a restart); nothing reaches bfdd.
    await expect(off.reloader.reload(async () => configWith({}, { bfd: { enabled: true } }))).rejects.toThrow(
      /bfd\.enabled changed/,
    );
    expect(off.bfdPeers).toEqual([]);
    const on = await setUp(configWith({}, { bfd: { enabled: true } }));
    await on.reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }, { bfd: { enabled: true } }));
    expect(on.bfdPeers).toEqual([[ROUTER.address, ROUTER2.address]]);
    // Its timers too, while it stays on; with BFD off they are only the file's (nothing reaches bfdd).
    const faster = { bfd: { enabled: true, receiveIntervalMs: 50, detectMultiplier: 4 } };
    expect((await on.reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }, faster))).changed).toEqual([
      'bfd.receiveIntervalMs',
      'bfd.detectMultiplier',
    ]);
    expect(on.bfdTimers).toEqual(['50 x4']);
    await off.reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }, { bfd: { receiveIntervalMs: 50 } }));
    expect(off.bfdTimers).toEqual([]);
  });

  test('a field only a restart applies refuses the whole reload, naming it; the peers stay as they were', async () => {
    const { speaker, reloader, count, emitted } = await setUp();
    const refused = reloader.reload(async () => configWith({ asn: 65002, peers: [ROUTER, ROUTER2] }));
    await expect(refused).rejects.toThrow(/reload refused, nothing changed: bgp\.asn changed/);
    await expect(refused).rejects.toMatchObject({ code: 'RELOAD_REFUSED', problems: [{ path: 'bgp.asn' }] });
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
    expect(await count('refused')).toBe(1);
    // The running config is still the first one: the same file again is a reload of nothing.
    expect((await reloader.reload(async () => configWith())).changed).toEqual([]);
    // Both outcomes are events (the dashboard's timeline, `l4fleet events --kind config.reload`).
    expect(emitted).toEqual([
      {
        kind: 'config.reload',
        data: { result: 'refused', changed: ['bgp.asn'], error: expect.stringMatching(/^reload refused/) },
      },
      { kind: 'config.reload', data: { result: 'applied', changed: [] } },
    ]);
  });

  test("the host's checks refuse a changed peer that cannot work here; a problem elsewhere is not the reload's", async () => {
    const { speaker, reloader } = await setUp(configWith(), {
      preflight: (next) => [
        { path: 'node.address', message: '"198.18.2.11" is not assigned to any interface on this host' },
        ...next.bgp.peers.flatMap((p, i) =>
          p.localAddress === '198.18.9.9'
            ? [
                {
                  path: `bgp.peers[${i}].localAddress`,
                  message: `"${p.localAddress}" is not assigned to any interface`,
                },
              ]
            : [],
        ),
      ],
    });
    await expect(
      reloader.reload(async () => configWith({ peers: [ROUTER, { ...ROUTER2, localAddress: '198.18.9.9' }] })),
    ).rejects.toThrow(
      'reload refused, nothing changed: bgp.peers[1].localAddress: "198.18.9.9" is not assigned to any interface',
    );
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
    await reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }));
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address, ROUTER2.address]);
  });

  test('a TLS file renewed in place is named: the etcd client read it at the start, only a restart uses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-reload-tls-'));
    try {
      const cert = join(dir, 'node1.pem');
      // Two real certificates: the start (and so a restart) takes only PEM certificates that parse.
      for (const d of ['one', 'two']) mkdirSync(join(dir, d));
      const [one, two] = [await makeCerts(join(dir, 'one')), await makeCerts(join(dir, 'two'))];
      writeFileSync(cert, one.cert);
      const withTls = () =>
        configWith({}, { etcd: { endpoints: ['https://198.19.0.2:2379'], tls: { cert, key: cert } } });
      const { reloader, speaker } = await setUp(withTls(), { tlsFiles: tlsFileDigests });
      expect((await reloader.reload(async () => withTls())).changed).toEqual([]); // the same content: nothing to say
      writeFileSync(cert, two.cert);
      await expect(
        reloader.reload(async () =>
          configWith(
            { peers: [ROUTER, ROUTER2] },
            {
              etcd: { endpoints: ['https://198.19.0.2:2379'], tls: { cert, key: cert } },
            },
          ),
        ),
      ).rejects.toThrow(
        `reload refused, nothing changed: etcd.tls.cert: "${cert}" changed since the agent read it at its start: only a restart uses it`,
      );
      expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]); // the peers waited for the restart too
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['deleted', (file: string) => rmSync(file), 'ENOENT'],
    [
      'made a directory',
      (file: string) => {
        rmSync(file);
        mkdirSync(file);
      },
      'not a regular file',
    ],
  ])(
    'a TLS file %s since the start is named as unreadable, not as renewed: a restart would fail',
    async (_what, spoil, why) => {
      const dir = mkdtempSync(join(tmpdir(), 'l4fleet-reload-tls-'));
      try {
        const cert = join(dir, 'node1.pem');
        writeFileSync(cert, 'certificate 1');
        const withTls = (bgp: Record<string, unknown> = {}) =>
          configWith(bgp, { nats: { servers: ['tls://198.19.0.2:4222'], tls: { cert, key: cert } } });
        const { reloader, speaker } = await setUp(withTls(), { tlsFiles: tlsFileDigests });
        spoil(cert);
        await expect(reloader.reload(async () => withTls({ peers: [ROUTER, ROUTER2] }))).rejects.toThrow(
          `reload refused, nothing changed: nats.tls.cert: "${cert}" cannot be read (${why}): the running agent keeps ` +
            'its copy; a restart would fail --check',
        );
        expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test.each([
    ['empty', '', 'is empty'],
    ['holding no certificate (half written)', '-----BEGIN CERT', 'holds no PEM certificate'],
  ])(
    'a TLS certificate renewed in place %s is named as what a restart would refuse, not as renewed',
    async (_what, content, why) => {
      const dir = mkdtempSync(join(tmpdir(), 'l4fleet-reload-tls-'));
      try {
        const cert = join(dir, 'node1.pem');
        mkdirSync(join(dir, 'one'));
        writeFileSync(cert, (await makeCerts(join(dir, 'one'))).cert);
        const withTls = (bgp: Record<string, unknown> = {}) =>
          configWith(bgp, { nats: { servers: ['tls://198.19.0.2:4222'], tls: { cert, key: cert } } });
        const { reloader, speaker } = await setUp(withTls(), { tlsFiles: tlsFileDigests });
        writeFileSync(cert, content);
        await expect(reloader.reload(async () => withTls({ peers: [ROUTER, ROUTER2] }))).rejects.toThrow(
          new RegExp(
            `nats\\.tls\\.cert: "${cert}" ${why}.*: the running agent keeps its copy; a restart would fail --check`,
          ),
        );
        expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('an invalid file is refused with its own error; nothing changes', async () => {
    const { speaker, reloader, count } = await setUp();
    const invalid = new AgentError('CONFIG_INVALID', 'bgp.peers[0].asn: 0 is not an ASN', {
      problems: [{ path: 'bgp.peers[0].asn', message: '0 is not an ASN' }],
    });
    await expect(
      reloader.reload(async () => {
        throw invalid;
      }),
    ).rejects.toBe(invalid);
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
    expect(await count('refused')).toBe(1);
    expect(await count('applied')).toBe(0);
  });

  const PEER = ['    - address: 198.18.2.1', '      asn: 65000'];
  test.each([
    ['a password that is a number', [...PEER, '      password: 31415926'], '31415926'],
    ['a password starting with * (a YAML alias)', [...PEER, '      password: *N3wS3cret'], 'N3wS3cret'],
    // `- ` forgotten: bgp.peers is a map, which the message once printed whole.
    ['peers written as a map', ['    address: 198.18.2.1', '    asn: 65000', '    password: N3wS3cret'], 'N3wS3cret'],
    ['a peer written as a string', ['    - "198.18.2.1 asn 65000 password N3wS3cret"'], 'N3wS3cret'],
    ['a peer written as a list', ['    - [198.18.2.1, 65000, N3wS3cret]'], 'N3wS3cret'],
    ['nats written as a string', [...PEER, 'nats: "token N3wS3cret"'], 'N3wS3cret'],
  ])('a file refused for %s: neither the event nor the log repeats the secret', async (_what, peers, secret) => {
    const logged: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        logged.push(String(chunk));
        done();
      },
    });
    const { reloader, emitted } = await setUp(configWith(), { logger: pino({ level: 'info' }, stream) });
    const text = [
      'node: {name: n1, interface: eth0, address: 198.18.2.11}',
      'etcd: {endpoints: ["http://198.19.0.2:2379"]}',
      'bgp:',
      '  asn: 65001',
      '  peers:',
      ...peers,
    ].join('\n');
    await expect(reloader.reload(async () => parseAgentConfigText(text))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    const event = emitted.find((e) => e.kind === 'config.reload');
    expect(event?.data).toMatchObject({
      result: 'refused',
      error: expect.stringMatching(/password|YAML|bgp\.peers|nats/),
    });
    const changed = (event?.data as { changed?: string[] } | undefined)?.changed ?? [];
    expect(changed).toEqual([...new Set(changed)]);
    expect(JSON.stringify(emitted)).not.toContain(secret);
    expect(logged.join('')).toMatch(/configReloadRefused/);
    expect(logged.join('')).not.toContain(secret);
  });

  test('reloads run one at a time, in order: the last file wins', async () => {
    const { speaker, reloader } = await setUp();
    const first = reloader.reload(async () => {
      await new Promise((r) => setTimeout(r, 20));
      return configWith({ peers: [ROUTER, ROUTER2] });
    });
    const second = reloader.reload(async () => configWith({ peers: [ROUTER2] }));
    await Promise.all([first, second]);
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER2.address]);
  });
});

describe('agent reload - shutdown() while a reload applies', () => {
  test('applying() is the reload in flight; stopApplying() stops it before its next step, refused naming both parts', async () => {
    const on = configWith({}, { bfd: { enabled: true } });
    let opened: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      opened = r;
    });
    const speaker = createFakeSpeaker();
    const { reloader, bfdPeers, emitted } = await setUp(on, {}, speaker);
    expect(reloader.applying()).toBeUndefined();
    const setPeers = speaker.setPeers.bind(speaker);
    let entered: () => void = () => undefined;
    const inSetPeers = new Promise<void>((r) => {
      entered = r;
    });
    speaker.setPeers = async (peers) => {
      entered();
      await gate;
      await setPeers(peers);
    };
    const reloading = reloader.reload(async () => configWith({ peers: [ROUTER, ROUTER2] }, { bfd: { enabled: true } }));
    await inSetPeers;
    const applying = reloader.applying();
    expect(applying).toBeInstanceOf(Promise);
    reloader.stopApplying();
    opened();
    await expect(reloading).rejects.toThrow(
      'reload refused: the agent began exiting while it applied; applied: bgp.peers; not applied: bfd.peers',
    );
    await applying;
    expect(reloader.applying()).toBeUndefined();
    expect(bfdPeers).toEqual([]);
    expect(emitted.at(-1)).toMatchObject({
      kind: 'config.reload',
      data: { result: 'refused', changed: ['bfd.peers'] },
    });
  });

  test('a step that fails once the drain began is not rolled back (no change to the peers mid-drain): unsettled, said so', async () => {
    let opened: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      opened = r;
    });
    const rejecting = rejectingSpeaker(new Set([ROUTER2.address]));
    const calls: string[][] = [];
    let entered: () => void = () => undefined;
    const inSetPeers = new Promise<void>((r) => {
      entered = r;
    });
    let gated = false; // the start's setPeers (setUp) passes
    const speaker = Object.create(rejecting, {
      setPeers: {
        value: async (peers: readonly Peer[]) => {
          if (gated) {
            calls.push(peers.map((p) => p.address));
            entered();
            await gate;
          }
          await rejecting.setPeers(peers);
        },
      },
    }) as typeof rejecting;
    const { reloader, emitted } = await setUp(configWith(), {}, speaker);
    gated = true;
    // ROUTER replaced by ROUTER2, which gobgpd refuses after deleting ROUTER.
    const reloading = reloader.reload(async () => configWith({ peers: [ROUTER2] }));
    await inSetPeers;
    reloader.stopApplying();
    opened();
    await expect(reloading).rejects.toThrow(
      'reload refused: bgp.peers: AddPeer 198.18.2.2: rejected by gobgpd; the agent began exiting while it applied: ' +
        'not rolled back (bgp.peers), the next start applies the file',
    );
    await expect(reloading).rejects.toMatchObject({ code: 'RELOAD_REFUSED', problems: [{ path: 'bgp.peers' }] });
    expect(calls).toEqual([[ROUTER2.address]]); // ROUTER was not added back during the drain
    expect(speaker.peers).toEqual([]);
    expect(emitted.at(-1)).toMatchObject({
      kind: 'config.reload',
      data: { result: 'refused', changed: ['bgp.peers'] },
    });
  });
  test('a rollback under way when the drain begins stops there: the steps not yet undone are left as they are, unsettled', async () => {
    const on = (bgp: Record<string, unknown> = {}) => configWith(bgp, { bfd: { enabled: true } });
    let opened: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      opened = r;
    });
    let entered: () => void = () => undefined;
    const inRollback = new Promise<void>((r) => {
      entered = r;
    });
    let bfdCalls = 0;
    // bfdd refuses the new peers, then hangs on the rollback (held on the gate).
    const bfd = {
      setPeers: async () => {
        bfdCalls += 1;
        if (bfdCalls === 1) throw new Error('bfdd: refused');
        entered();
        await gate;
      },
      setTimers: async () => undefined,
    };
    const speaker = createFakeSpeaker();
    const { reloader, emitted } = await setUp(on(), { bfd }, speaker);
    const calls: string[][] = [];
    const setPeers = speaker.setPeers.bind(speaker);
    speaker.setPeers = async (peers) => {
      calls.push(peers.map((p) => p.address));
      await setPeers(peers);
    };
    const reloading = reloader.reload(async () => on({ peers: [ROUTER2] }));
    await inRollback; // bfd.peers failed, its rollback held; bgp.peers not yet undone
    reloader.stopApplying();
    opened();
    await expect(reloading).rejects.toThrow(
      'reload refused: bfd.peers: bfdd: refused; rolled back to the running config (bfd.peers); the agent began ' +
        'exiting while it rolled back: not rolled back (bgp.peers), the next start applies the file',
    );
    await expect(reloading).rejects.toMatchObject({ code: 'RELOAD_REFUSED', problems: [{ path: 'bfd.peers' }] });
    expect(calls).toEqual([[ROUTER2.address]]); // ROUTER not added back to gobgpd mid-drain
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER2.address]);
    expect(emitted.at(-1)).toMatchObject({ kind: 'config.reload', data: { result: 'refused' } });
  });
});

describe('agent reload - a step that fails half way', () => {
  test('peers gobgpd rejects after deleting the removed ones are rolled back: refused, the old session back', async () => {
    const speaker = rejectingSpeaker(new Set([ROUTER2.address]));
    const { reloader, count, emitted } = await setUp(configWith(), {}, speaker);
    // The router replaced by one gobgpd refuses: ROUTER is deleted before the add fails.
    const refused = reloader.reload(async () => configWith({ peers: [ROUTER2] }));
    await expect(refused).rejects.toThrow(
      /reload refused: bgp\.peers: AddPeer 198\.18\.2\.2: rejected by gobgpd; rolled back/,
    );
    await expect(refused).rejects.toMatchObject({ code: 'RELOAD_REFUSED', problems: [{ path: 'bgp.peers' }] });
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]); // the running config's peers again
    expect(await count('refused')).toBe(1);
    expect(emitted.at(-1)).toMatchObject({
      kind: 'config.reload',
      data: { result: 'refused', changed: ['bgp.peers'] },
    });
    // agent.yaml reverted: nothing to do, and that is true.
    expect((await reloader.reload(async () => configWith())).changed).toEqual([]);
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
  });

  test('a rollback that fails too is said, and the next reload applies the peers again even when the file is the old one', async () => {
    const rejected = new Set([ROUTER2.address, ROUTER.address]);
    const speaker = rejectingSpeaker(rejected);
    await speaker.setPeers([]); // ROUTER is not rejected at the start: added below, as the sessions' start would
    rejected.delete(ROUTER.address);
    const { reloader } = await setUp(configWith(), {}, speaker);
    rejected.add(ROUTER.address);
    await expect(reloader.reload(async () => configWith({ peers: [ROUTER2] }))).rejects.toThrow(
      /bgp\.peers: AddPeer 198\.18\.2\.2: rejected by gobgpd; the rollback failed too \(bgp\.peers: AddPeer 198\.18\.2\.1: rejected by gobgpd\): the next reload applies it again$/,
    );
    expect(speaker.peers).toEqual([]);
    rejected.clear();
    // The old file again: the peers are not what the running config says, so the reload applies them.
    const again = await reloader.reload(async () => configWith());
    expect(again.changed).toEqual(['bgp.peers']);
    expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
    expect((await reloader.reload(async () => configWith())).changed).toEqual([]);
  });
});

describe('agent reload - the health probes (health.caFile, health.sourceAddress)', () => {
  test('a CA rotated in place is read again and handed to the probes; a bad file refuses the reload, nothing changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-reload-ca-'));
    try {
      for (const d of ['one', 'two']) {
        mkdirSync(join(dir, d));
        await makeCerts(join(dir, d));
      }
      const [one, two] = ['one', 'two'].map((d) => readFileSync(join(dir, d, 'ca.pem')));
      const caFile = join(dir, 'health-ca.pem');
      writeFileSync(caFile, one as Buffer);
      const withCa = (health: Record<string, unknown> = {}, bgp: Record<string, unknown> = {}) =>
        configWith(bgp, { health: { caFile, ...health } });
      const handed: { sourceAddress?: string; ca?: Buffer }[] = [];
      const health = { setProbeOptions: (o: { sourceAddress?: string; ca?: Buffer }) => void handed.push(o) };
      const { reloader, speaker, emitted } = await setUp(withCa(), { tlsFiles: tlsFileDigests, health });

      expect((await reloader.reload(async () => withCa())).changed).toEqual([]); // same content: nothing to do
      expect(handed).toEqual([]);

      writeFileSync(caFile, two as Buffer);
      expect((await reloader.reload(async () => withCa())).changed).toEqual(['health.caFile']);
      expect(handed).toEqual([{ maxConcurrentProbes: 256, ca: two }]);
      expect(emitted.at(-1)).toEqual({
        kind: 'config.reload',
        data: { result: 'applied', changed: ['health.caFile'] },
      });
      expect((await reloader.reload(async () => withCa())).changed).toEqual([]); // now the one in use

      writeFileSync(caFile, 'not a certificate');
      await expect(reloader.reload(async () => withCa({}, { peers: [ROUTER, ROUTER2] }))).rejects.toThrow(
        `health.caFile: "${caFile}" `,
      );
      expect(handed).toHaveLength(1); // the probes keep the last good roots
      expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]); // and nothing else was applied

      // The good file back (the first CA: not the one in use) and a source address: both applied, both named.
      writeFileSync(caFile, one as Buffer);
      const moved = await reloader.reload(async () => withCa({ sourceAddress: '198.18.2.11' }));
      expect(moved.changed).toEqual(['health.sourceAddress', 'health.caFile']);
      expect(handed.at(-1)).toEqual({ maxConcurrentProbes: 256, sourceAddress: '198.18.2.11', ca: one });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a caFile deleted since it was read refuses a reload of the peers as a reload refusal, naming both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-reload-ca-'));
    try {
      await makeCerts(dir);
      const caFile = join(dir, 'health-ca.pem');
      writeFileSync(caFile, readFileSync(join(dir, 'ca.pem')));
      const withCa = (bgp: Record<string, unknown> = {}) => configWith(bgp, { health: { caFile } });
      const health = { setProbeOptions: () => undefined };
      const { reloader, speaker, emitted, count } = await setUp(withCa(), { tlsFiles: tlsFileDigests, health });
      rmSync(caFile);
      const refused = reloader.reload(async () => withCa({ peers: [ROUTER, ROUTER2] }));
      await expect(refused).rejects.toThrow(
        `reload refused, nothing changed: health.caFile: "${caFile}" cannot be read (ENOENT); not applied: bgp.peers`,
      );
      await expect(refused).rejects.toMatchObject({
        code: 'RELOAD_REFUSED',
        problems: [{ path: 'health.caFile', message: `"${caFile}" cannot be read (ENOENT)` }],
      });
      expect(speaker.peers.map((p) => p.address)).toEqual([ROUTER.address]);
      expect(await count('refused')).toBe(1);
      expect(emitted.at(-1)).toMatchObject({
        kind: 'config.reload',
        data: {
          result: 'refused',
          changed: ['health.caFile'],
          error: expect.stringContaining('not applied: bgp.peers'),
        },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
