/**
 * The keeper's timing and its race with etcd, on a manual clock: the hourly refresh of an unchanged file (its
 * savedAt means "last confirmed against etcd") and a file read that etcd overtakes (etcd's inputs win).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Fleet, parseFleet } from '@l4fleet/config';
import { until } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createManualClock, type ManualClock } from '../clock.js';
import { AgentError } from '../errors.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createServedInputs, type ServedInputs } from '../serve/inputs.js';
import {
  createLastStateKeeper,
  type LastStateKeeper,
  STATE_REFRESH_MS,
  STATE_RETRY_MAX_MS,
  STATE_RETRY_MIN_MS,
  STATE_SAVE_DELAY_MS,
  stateRefreshMs,
} from './keeper.js';
import { createLastStateFile, type LastState, type LastStateStore } from './last-state.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const T0 = Date.parse('2026-01-10T12:00:00Z');

const fleetOf = (port: number): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'a', address: '198.18.0.1', port }] }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/** All four inputs delivered by etcd, as the agent's watches would. */
function etcdDelivers(inputs: ServedInputs, fleet: Fleet, revision: number): void {
  inputs.setDesired({ fleet, revision, generation: `g${revision}` });
  inputs.setDecided(new Map([['web/a', 'up']]), new Map());
  inputs.setHistory(new Map());
  inputs.setNodes(false);
}

let dir = '';
const keepers: LastStateKeeper[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-keeper-'));
});
afterEach(async () => {
  for (const k of keepers.splice(0)) k.close();
  await rm(dir, { recursive: true, force: true });
});

const realFile = (clock: ManualClock, maxAgeS = 0, maxBytes = 1 << 20): LastStateStore =>
  createLastStateFile({
    dir,
    identity: { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' },
    maxBytes,
    maxAgeS,
    now: clock.now,
  });

/** `real` behind a switch: while `failing` is set every save fails as a full disk would; `attempts` counts saves. */
function flakyFile(real: LastStateStore) {
  const f = {
    failing: false,
    attempts: 0,
    store: {
      path: real.path,
      load: () => real.load(),
      save: async (s: LastState) => {
        f.attempts += 1;
        if (f.failing) throw new AgentError('STATE_SAVE_FAILED', `${real.path}: ENOSPC: no space left on device`);
        return real.save(s);
      },
    } satisfies LastStateStore,
  };
  return f;
}

function setup(opts: { clock: ManualClock; file?: LastStateStore; onRestored?: () => void; maxAgeS?: number }) {
  // maxAgeS 0: never stale, so the manual clock's hours do not make the file unreadable.
  const file = opts.file ?? realFile(opts.clock, opts.maxAgeS ?? 0);
  const inputs = createServedInputs();
  const metrics = createAgentMetrics({ node: 'n1', fleet: 'default', defaultMetrics: false });
  const keeper = createLastStateKeeper({
    file,
    inputs,
    clock: opts.clock,
    metrics,
    logger,
    maxAgeS: opts.maxAgeS ?? 0,
    // As the agent's: only while starting with incomplete inputs.
    mayRestore: () => !inputs.complete,
    onRestored: opts.onRestored ?? (() => undefined),
  });
  keepers.push(keeper);
  return { file, inputs, metrics, keeper };
}

const savedAtOf = async (file: LastStateStore) => (await file.load())?.savedAt;
const saves = async (m: ReturnType<typeof createAgentMetrics>, result: 'ok' | 'error') =>
  (await m.lastStateSavesTotal.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
const savesOk = (m: ReturnType<typeof createAgentMetrics>) => saves(m, 'ok');
/** `s` seconds on the clock with an etcd probe answered every second, as the agent's is while etcd answers. */
async function etcdAnswersFor(clock: ManualClock, keeper: LastStateKeeper, s: number): Promise<void> {
  for (let i = 0; i < s; i += 1) {
    await clock.advance(1_000);
    keeper.etcdAnswered();
  }
}
const gauge = async (g: { get(): Promise<{ values: { value: number }[] }> }) => (await g.get()).values[0]?.value;

describe('persist keeper - last good state on a manual clock', () => {
  test('an unchanged fleet: etcdAnswered rewrites the file once it is STATE_REFRESH_MS old, not before', async () => {
    const clock = createManualClock(T0);
    const { file, inputs, metrics, keeper } = setup({ clock });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    const firstSave = T0 + STATE_SAVE_DELAY_MS;
    // The counter moves once save() finished (the file is readable a little earlier, before its directory fsync).
    await until('first save', async () => (await savesOk(metrics)) === 1, 5_000, 10);
    expect(await savedAtOf(file)).toBe(firstSave);

    // Not yet an hour (everything below happens before firstSave + STATE_REFRESH_MS): etcd keeps answering with
    // the same fleet, the file stays as it is.
    await clock.advance(STATE_REFRESH_MS - STATE_SAVE_DELAY_MS - 1);
    keeper.etcdAnswered();
    expect(clock.pending, 'no save scheduled before STATE_REFRESH_MS').toBe(0);
    keeper.etcdInputArrived(); // the same inputs again: a save runs and finds nothing new to write
    await clock.advance(STATE_SAVE_DELAY_MS);
    expect(clock.now()).toBeLessThan(firstSave + STATE_REFRESH_MS);
    expect(await savesOk(metrics)).toBe(1);
    expect(await savedAtOf(file)).toBe(firstSave);

    // An hour since the save: the next answer rewrites the unchanged inputs with a new savedAt.
    await clock.advance(1);
    keeper.etcdAnswered();
    expect(clock.pending, 'a refresh save scheduled at STATE_REFRESH_MS').toBe(1);
    const refreshedAt = clock.now() + STATE_SAVE_DELAY_MS;
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('refreshed save', async () => (await savesOk(metrics)) === 2, 5_000, 10);
    expect(await savedAtOf(file)).toBe(refreshedAt);
    expect((await file.load())?.revision).toBe(5);
  });

  test('the clock stepped back past the file: etcdAnswered rewrites it at once (its age is negative, not young)', async () => {
    const manual = createManualClock(T0);
    let offsetMs = 0;
    // The wall clock: the manual clock's time plus a step the test sets (timers still run on the manual clock).
    const clock: ManualClock = {
      now: () => manual.now() + offsetMs,
      monoMs: () => manual.monoMs(),
      stepWall: (ms) => manual.stepWall(ms),
      setTimeout: (fn, ms) => manual.setTimeout(fn, ms),
      clearTimeout: (h) => manual.clearTimeout(h),
      advance: (ms) => manual.advance(ms),
      get pending() {
        return manual.pending;
      },
    };
    const { file, inputs, metrics, keeper } = setup({ clock });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('first save', async () => (await savesOk(metrics)) === 1, 5_000, 10);

    // A day back: the file says it was saved in the future (unreadable on a restart) until it is written again.
    offsetMs = -86_400_000;
    keeper.etcdAnswered();
    expect(clock.pending, 'a refresh save scheduled').toBe(1);
    const refreshedAt = clock.now() + STATE_SAVE_DELAY_MS;
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('refreshed save', async () => (await savesOk(metrics)) === 2, 5_000, 10);
    expect(await savedAtOf(file)).toBe(refreshedAt);
  });

  test('etcd answers while the file is being read: etcd inputs are served, the file is not restored', async () => {
    const clock = createManualClock(T0);
    const real = createLastStateFile({
      dir,
      identity: { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' },
      maxBytes: 1 << 20,
      maxAgeS: 0,
      now: clock.now,
    });
    const onDisk: LastState = {
      fleet: fleetOf(80),
      revision: 42,
      generation: 'g42',
      decided: new Map([['web/a', 'down']]),
      drained: true,
      savedAt: T0 - 60_000,
    };
    await real.save(onDisk);
    // load() resolves only when the test lets it: after etcd delivered.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const slow: LastStateStore = { path: real.path, load: async () => gate.then(() => real.load()), save: real.save };
    let restoredCalls = 0;
    const { inputs, metrics, keeper } = setup({ clock, file: slow, onRestored: () => void (restoredCalls += 1) });
    let restoredResolved = false;
    void keeper.restored.then(() => void (restoredResolved = true));

    const restoring = keeper.restore('etcd unreachable at start');
    const etcdFleet = fleetOf(81);
    etcdDelivers(inputs, etcdFleet, 50);
    keeper.etcdInputArrived();
    release();
    await restoring;
    await clock.advance(0);

    expect(inputs.source, 'inputs come from etcd, not the file read meanwhile').toBe('etcd');
    expect(inputs.revision).toBe(50);
    expect(inputs.fleet).toEqual(etcdFleet);
    expect(inputs.drainFlag).toBe(false);
    expect(inputs.decided.get('web/a')).toBe('up');
    expect(restoredCalls).toBe(0);
    expect(restoredResolved).toBe(false);
    expect(await gauge(metrics.lastStateServing)).toBe(0);
  });

  test('state.maxAgeS under an hour: the file is refreshed every maxAgeS / 2, so it stays loadable while etcd answers', async () => {
    const clock = createManualClock(T0);
    const maxAgeS = 600;
    const { file, inputs, metrics, keeper } = setup({ clock, maxAgeS });
    expect(stateRefreshMs(maxAgeS)).toBe(300_000);
    expect(stateRefreshMs(0), 'never stale: hourly').toBe(STATE_REFRESH_MS);
    expect(stateRefreshMs(86_400)).toBe(STATE_REFRESH_MS);
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('first save', async () => (await savesOk(metrics)) === 1, 5_000, 10);

    // A quiet fleet for 20 minutes (twice maxAgeS) while etcd answers: the file never gets older than maxAgeS.
    for (let i = 0; i < 4; i += 1) {
      await etcdAnswersFor(clock, keeper, 300);
      await clock.advance(STATE_SAVE_DELAY_MS);
      await until(`refresh ${i + 1}`, async () => (await savesOk(metrics)) === i + 2, 5_000, 10);
    }
    const s = await file.load();
    expect(s?.revision).toBe(5);
    expect(clock.now() - (s?.savedAt ?? 0)).toBeLessThanOrEqual(maxAgeS * 1000);
  });

  test('the first save fails: retried after 1 s, then 2 s, with a quiet fleet and no etcd answer to prompt it', async () => {
    const clock = createManualClock(T0);
    const flaky = flakyFile(realFile(clock));
    flaky.failing = true;
    const { file, inputs, metrics, keeper } = setup({ clock, file: flaky.store });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    expect(flaky.attempts).toBe(1);
    await clock.advance(STATE_RETRY_MIN_MS);
    expect(flaky.attempts, 'retried after STATE_RETRY_MIN_MS').toBe(2);
    flaky.failing = false; // the disk has room again
    await clock.advance(2 * STATE_RETRY_MIN_MS - 1);
    expect(flaky.attempts, 'the second retry waits twice as long').toBe(2);
    await clock.advance(1);
    expect(flaky.attempts).toBe(3);
    await until('saved', async () => (await savesOk(metrics)) === 1, 5_000, 10);
    expect((await file.load())?.revision).toBe(5);
    expect(await saves(metrics, 'error')).toBe(2);
    expect(clock.pending, 'nothing more to do').toBe(0);
  });

  test('a save fails after one worked: retried on the backoff (not an hour later), at most once a minute while it keeps failing', async () => {
    const clock = createManualClock(T0);
    const flaky = flakyFile(realFile(clock));
    const { file, inputs, metrics, keeper } = setup({ clock, file: flaky.store });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('first save', async () => (await savesOk(metrics)) === 1, 5_000, 10);

    // A new revision while the disk is full: the file keeps revision 5 only until the disk has room.
    flaky.failing = true;
    etcdDelivers(inputs, fleetOf(81), 6);
    keeper.etcdInputArrived();
    await etcdAnswersFor(clock, keeper, 4);
    expect(flaky.attempts, 'the save and two retries (1 s, 2 s)').toBe(4);
    flaky.failing = false;
    await etcdAnswersFor(clock, keeper, 4);
    await until('revision 6 saved', async () => (await savesOk(metrics)) === 2, 5_000, 10);
    expect((await file.load())?.revision).toBe(6);

    // A disk that stays full: two hours of etcd answering every second try to save at most once a minute.
    flaky.failing = true;
    etcdDelivers(inputs, fleetOf(82), 7);
    keeper.etcdInputArrived();
    const before = flaky.attempts;
    await etcdAnswersFor(clock, keeper, 7_200);
    const tries = flaky.attempts - before;
    // 1 + 2 + ... + 32 s, then every 60 s: 7 + (7,200 - 63) / 60.
    expect(tries).toBeGreaterThanOrEqual(120);
    expect(tries).toBeLessThanOrEqual(7 + Math.ceil(7_200 / (STATE_RETRY_MAX_MS / 1000)));
  });

  test('a save fails for inputs that go back to the saved ones (drain, undrain): the refreshes go on', async () => {
    const clock = createManualClock(T0);
    const flaky = flakyFile(realFile(clock, 600));
    const { file, inputs, metrics, keeper } = setup({ clock, file: flaky.store, maxAgeS: 600 });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    await until('first save', async () => (await savedAtOf(file)) !== undefined, 5_000, 10);
    flaky.failing = true;
    inputs.setNodes(true); // drained: a save, refused by the disk
    keeper.etcdInputArrived();
    await clock.advance(1_000);
    flaky.failing = false;
    inputs.setNodes(false); // undrained before the retry: the file holds these inputs again
    keeper.etcdInputArrived();
    // Twenty minutes of etcd answering: refreshed every 300 s (each waited for: the file is real, the clock is not),
    // so the file stays within state.maxAgeS and loads.
    const before = await savesOk(metrics);
    for (let i = 1; i <= 4; i += 1) {
      await etcdAnswersFor(clock, keeper, 300);
      await clock.advance(STATE_SAVE_DELAY_MS);
      await until(`refresh ${i}`, async () => (await savesOk(metrics)) === before + i, 5_000, 10);
    }
    expect(clock.now() - ((await file.load())?.savedAt ?? 0)).toBeLessThanOrEqual(600_000);
  });

  test('a save failed, then the wall clock stepped back an hour: the retry still waits its backoff, not an hour more', async () => {
    const clock = createManualClock(T0);
    // Every state is over maxBytes: the failure arms no timer, so the next save is timed from the backoff alone.
    const flaky = flakyFile(realFile(clock, 0, 200));
    const { inputs, keeper } = setup({ clock, file: flaky.store });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    expect(flaky.attempts).toBe(1);
    clock.stepWall(-3_600_000); // NTP: steady time and the timers go on
    etcdDelivers(inputs, fleetOf(81), 6);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    expect(flaky.attempts, 'new inputs tried after STATE_SAVE_DELAY_MS, as without the step').toBe(2);
  });

  test('a state over state.maxBytes: not retried until the inputs change', async () => {
    const clock = createManualClock(T0);
    const flaky = flakyFile(realFile(clock, 0, 200)); // every state is larger
    const { inputs, metrics, keeper } = setup({ clock, file: flaky.store });
    etcdDelivers(inputs, fleetOf(80), 5);
    keeper.etcdInputArrived();
    await clock.advance(STATE_SAVE_DELAY_MS);
    expect(flaky.attempts).toBe(1);
    await etcdAnswersFor(clock, keeper, 7_200);
    expect(flaky.attempts, 'the same inputs are not tried again').toBe(1);
    expect(await saves(metrics, 'error')).toBe(1);

    etcdDelivers(inputs, fleetOf(81), 6);
    keeper.etcdInputArrived();
    await etcdAnswersFor(clock, keeper, 2);
    expect(flaky.attempts, 'new inputs are tried').toBe(2);
    await etcdAnswersFor(clock, keeper, 600);
    expect(flaky.attempts).toBe(2);
  });
});
