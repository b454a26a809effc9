/**
 * The agent's side of a reload (SIGHUP): reads agent.yaml again through `load`, plans it against the running config
 * (reload.ts) and applies what a reload can, or refuses the whole reload, changing nothing: an unreadable or
 * invalid file, or a changed field only a restart applies (each named). A daemon that refuses a change half way
 * (gobgpd deleted a router, then refused the new one) is given the running config again and the reload refused
 * saying so. Reloads run one at a time, in order.
 */
import { formatProblem } from '@l4fleet/config';
import type { Logger } from 'pino';
import type { BfdController } from '../bfd/controller.js';
import type { BgpSessions } from '../bgp/sessions.js';
import { type AgentConfigProblem, AgentError } from '../errors.js';
import type { EventPublisher } from '../events/publisher.js';
import type { HealthChecker } from '../health/checker.js';
import type { AgentMetrics } from '../observe/metrics.js';
import { BFD_TIMER_FIELDS, planReload, type ReloadPlan } from './reload.js';
import { readHealthCa, type TlsFile } from './tls-files.js';
import type { AgentConfig, LogLevel } from './types.js';

export interface Reloader {
  /** Queued behind the reloads before it; refused when `exiting()` holds as it starts or before it applies. */
  reload(load: () => Promise<AgentConfig>): Promise<ReloadPlan>;
  /**
   * The reload applying now (past its last `exiting()` check, handing its changes to gobgpd and bfdd), settling when
   * it ended either way; undefined when none is. shutdown() waits for it before the drain begins: the changes of a
   * reload begun before the drain must not land in the middle of it.
   */
  applying(): Promise<void> | undefined;
  /**
   * shutdown() waited for `applying()` as long as it can: the reload still applying stops before its next step,
   * refused naming the steps it applied and those it did not (the applied ones stay: undoing them mid-drain would be
   * one more change to the peers). A step that fails from then on is not rolled back either, for the same reason.
   */
  stopApplying(): void;
}

export interface ReloaderOptions {
  readonly config: AgentConfig;
  readonly bgp: Pick<BgpSessions, 'setPeers'>;
  readonly bfd: Pick<BfdController, 'setPeers' | 'setTimers'>;
  readonly metrics: Pick<AgentMetrics, 'configReloadsTotal'>;
  readonly events: Pick<EventPublisher, 'emit'>;
  readonly logger: Logger;
  /**
   * Sets the agent's log level (the root logger's: pino's component loggers, made without a level of their own,
   * follow it). Absent: a changed `logLevel` is applied to `logger` only.
   */
  readonly setLogLevel?: (level: LogLevel) => void;
  /**
   * The host's checks of `l4fleet agent --check` (preflight.ts); only the problems of the fields this reload
   * changes refuse it (a peer's localAddress that is not this host's), as the agent does not check its start.
   */
  readonly preflight?: (next: AgentConfig) => readonly AgentConfigProblem[];
  /** The TLS files a config names, with their content's digest (tls-files.ts): read at creation and per reload. */
  readonly tlsFiles?: (config: AgentConfig) => ReadonlyMap<string, TlsFile>;
  /** The health checker, whose probes take a reload's `health.sourceAddress` and `health.caFile`. */
  readonly health?: Pick<HealthChecker, 'setProbeOptions'>;
  /** Reads and checks `health.caFile` (tls-files.ts readHealthCa); a bad file refuses the reload. */
  readonly readHealthCa?: (file: string) => Buffer;
  /**
   * The agent is exiting (its SIGTERM drain began, or it closed): a reload is refused, nothing changed. Asked as each
   * reload starts and again before it applies anything: one called (or queued) before the drain began reads its file
   * while the drain starts, and must not change the peers mid RFC 8326 graceful shutdown. Absent: never.
   */
  readonly exiting?: () => boolean;
}

/** The field whose file the reload reads again itself (the checker's roots), unlike the etcd and NATS clients'. */
const HEALTH_CA_FIELD = 'health.caFile';

/** Whether `path` (`bgp.peers[1].localAddress`) lies in one of the changed fields (`bgp.peers`). */
const within = (path: string, fields: readonly string[]) =>
  fields.some((f) => path === f || path.startsWith(`${f}[`) || path.startsWith(`${f}.`));

/** One change a reload hands to a daemon; `apply(running)` is its rollback. */
interface LiveStep {
  /** `bgp.peers`, `bfd.peers` or `bfd.timers`. */
  readonly name: string;
  /** The config fields it applies, as the plan names them. */
  readonly fields: readonly string[];
  apply(config: AgentConfig): Promise<void>;
}

const NEEDS_RESTART = 'changed: only a restart applies it (a restart drains the node first)';
const EXITING = 'reload refused, nothing changed: the agent is exiting';

/** What a rollback did, for the refusal: all undone, or which were, which failed, which the drain left as applied. */
function rollbackSaid(
  touched: readonly LiveStep[],
  undone: readonly string[],
  failed: readonly string[],
  left: readonly string[],
): string {
  if (failed.length === 0 && left.length === 0)
    return `rolled back to the running config (${touched.map((s) => s.name).join(', ')})`;
  const parts = [
    ...(undone.length > 0 ? [`rolled back to the running config (${undone.join(', ')})`] : []),
    ...(failed.length > 0 ? [`the rollback failed too (${failed.join('; ')})`] : []),
    ...(left.length > 0 ? [`the agent began exiting while it rolled back: not rolled back (${left.join(', ')})`] : []),
  ];
  // Exiting, no reload follows: the next start applies the file whole.
  return `${parts.join('; ')}${left.length > 0 ? ', the next start applies the file' : ': the next reload applies it again'}`;
}

export function createReloader(opts: ReloaderOptions): Reloader {
  let running = opts.config;
  let chain: Promise<unknown> = Promise.resolve();
  /** What the etcd client and NATS read at the start; they never read the files again. */
  const startTls = opts.tlsFiles?.(opts.config) ?? new Map<string, TlsFile>();
  /** The health roots the probes use now: the start's, then each reload's. */
  let healthCa: TlsFile | undefined = startTls.get(HEALTH_CA_FIELD);
  const readCa = opts.readHealthCa ?? readHealthCa;
  /** Steps whose daemon may not hold what `running` says: a step failed and its rollback failed too. */
  const unsettled = new Set<string>();
  /** The reload past its last exiting() check, settling when it ended (Reloader.applying). */
  let inFlight: Promise<void> | undefined;
  /** stopApplying() was called: a reload applying stops before its next step. */
  let stopped = false;

  /**
   * A TLS file whose field is unchanged but whose content is not what the agent read at its start. One that cannot
   * be read now (deleted, a directory), or holds what the start refuses (empty, no certificate), is said so: a restart
   * would not use it but fail --check, the node down.
   */
  const renewedTls = (files: ReadonlyMap<string, TlsFile>): AgentConfigProblem[] =>
    [...files].flatMap(([path, now]) => {
      const then = startTls.get(path);
      if (path === HEALTH_CA_FIELD || then === undefined || then.file !== now.file || then.digest === now.digest)
        return [];
      const message = now.unreadable
        ? `"${now.file}" cannot be read (${now.unreadable}): the running agent keeps its copy; a restart would fail --check`
        : now.refused
          ? `"${now.file}" ${now.refused}: the running agent keeps its copy; a restart would fail --check`
          : `"${now.file}" changed since the agent read it at its start: only a restart uses it`;
      return [{ path, message }];
    });

  /**
   * The probes' options when this reload changes them (a changed field, or the same caFile with new content: a CA
   * rotated in place), read and checked first so that a bad file refuses the reload before anything is applied.
   */
  const healthOptions = (next: AgentConfig, files: ReadonlyMap<string, TlsFile>, changed: readonly string[]) => {
    const nextCa = files.get(HEALTH_CA_FIELD);
    const renewed = nextCa !== undefined && healthCa !== undefined && nextCa.digest !== healthCa.digest;
    if (!renewed && !changed.some((f) => f.startsWith('health.'))) return undefined;
    const file = next.health.caFile;
    return {
      options: {
        maxConcurrentProbes: next.health.maxConcurrentProbes,
        ...(next.health.sourceAddress ? { sourceAddress: next.health.sourceAddress } : {}),
        ...(file === undefined ? {} : { ca: readCa(file) }),
      },
      ca: nextCa,
      renewed: renewed && !changed.includes(HEALTH_CA_FIELD),
    };
  };

  /**
   * `read`, with readHealthCa's refusal (CONFIG_INVALID, or CONFIG_UNREADABLE: a caFile deleted since) made a reload
   * refusal like the others: "nothing changed", and the changes it held back named (an unrelated peer change, say).
   */
  const refusingOnBadCa = <T>(read: () => T, changed: readonly string[]): T => {
    try {
      return read();
    } catch (err) {
      if (!(err instanceof AgentError)) throw err;
      const held = changed.length > 0 ? `; not applied: ${changed.join(', ')}` : '';
      throw new AgentError('RELOAD_REFUSED', `reload refused, nothing changed: ${err.message}${held}`, {
        cause: err,
        problems: err.problems,
      });
    }
  };

  /**
   * The steps that reach a daemon (gobgpd, bfdd), which can fail half way: gobgpd deletes the removed peers before it
   * refuses a new one. Each is applied again when an earlier reload left it unsettled (its rollback failed too).
   */
  const liveSteps = (plan: ReloadPlan, next: AgentConfig): LiveStep[] => {
    const due = (step: string, fields: readonly string[]) =>
      unsettled.has(step) || plan.changed.some((f) => fields.includes(f));
    const steps: LiveStep[] = [];
    if (due('bgp.peers', ['bgp.peers']))
      steps.push({ name: 'bgp.peers', fields: ['bgp.peers'], apply: (c) => opts.bgp.setPeers(c.bgp.peers) });
    // BFD on (a change of bfd.enabled was refused above): its sessions follow; off, nothing reads them.
    if (next.bfd.enabled && due('bfd.peers', ['bfd.peers']))
      steps.push({ name: 'bfd.peers', fields: ['bfd.peers'], apply: (c) => opts.bfd.setPeers(c.bfd.peers) });
    if (next.bfd.enabled && due('bfd.timers', BFD_TIMER_FIELDS)) {
      const fields = BFD_TIMER_FIELDS.filter((f) => plan.changed.includes(f));
      steps.push({ name: 'bfd.timers', fields, apply: (c) => opts.bfd.setTimers(c.bfd) });
    }
    return steps;
  };

  /**
   * Applies `steps` in order. When one throws, the steps done and the failed one are given the running config
   * again (a rollback: the deleted router session back), and the reload is refused saying so; a step whose rollback
   * fails too is unsettled, and the next reload applies it whatever its plan says. Never "nothing changed" then.
   * Once stopApplying() was called there is no rollback: the steps done and the failed one are unsettled; a rollback
   * under way then stops before its next step, the steps it has not undone unsettled.
   */
  const applySteps = async (steps: readonly LiveStep[], next: AgentConfig): Promise<void> => {
    for (const [i, step] of steps.entries()) {
      if (stopped) {
        const applied = steps.slice(0, i).map((s) => s.name);
        const rest = steps.slice(i).map((s) => s.name);
        for (const name of applied) unsettled.add(name);
        throw new AgentError(
          'RELOAD_REFUSED',
          `reload refused: the agent began exiting while it applied; applied: ${applied.join(', ')}; not applied: ${rest.join(', ')}`,
          { problems: rest.map((path) => ({ path, message: 'not applied: the agent is exiting' })) },
        );
      }
      try {
        await step.apply(next);
        unsettled.delete(step.name);
      } catch (err) {
        const message = (err as Error).message;
        if (stopped) {
          // The drain began while this step applied: a rollback would be one more change to the peers mid RFC 8326
          // graceful shutdown (stopApplying). The steps done and the failed one stay as they are, unsettled.
          const touched = steps.slice(0, i + 1).map((s) => s.name);
          const rest = steps.slice(i + 1).map((s) => s.name);
          for (const name of touched) unsettled.add(name);
          const held = rest.length > 0 ? `; not applied: ${rest.join(', ')}` : '';
          throw new AgentError(
            'RELOAD_REFUSED',
            `reload refused: ${step.name}: ${message}; the agent began exiting while it applied: not rolled back ` +
              `(${touched.join(', ')}), the next start applies the file${held}`,
            {
              cause: err,
              problems: [
                { path: step.name, message },
                ...rest.map((path) => ({ path, message: 'not applied: the agent is exiting' })),
              ],
            },
          );
        }
        const touched = steps.slice(0, i + 1);
        const undone: string[] = [];
        const failed: string[] = [];
        let left: string[] = [];
        const order = [...touched].reverse();
        for (const [k, done] of order.entries()) {
          if (stopped) {
            // The drain began during an earlier undo (a slow bfdd): no further change to the peers mid RFC 8326
            // graceful shutdown, as when a step fails after stopApplying(). These stay as applied, unsettled.
            left = order.slice(k).map((s) => s.name);
            for (const name of left) unsettled.add(name);
            break;
          }
          try {
            await done.apply(running);
            unsettled.delete(done.name);
            undone.push(done.name);
          } catch (rollbackErr) {
            unsettled.add(done.name);
            failed.push(`${done.name}: ${(rollbackErr as Error).message}`);
          }
        }
        throw new AgentError(
          'RELOAD_REFUSED',
          `reload refused: ${step.name}: ${message}; ${rollbackSaid(touched, undone, failed, left)}`,
          {
            cause: err,
            problems: [{ path: step.name, message }],
          },
        );
      }
    }
  };

  const refuseWhenExiting = () => {
    if (opts.exiting?.()) throw new AgentError('RELOAD_REFUSED', EXITING);
  };

  const once = async (load: () => Promise<AgentConfig>): Promise<ReloadPlan> => {
    try {
      refuseWhenExiting();
      const next = await load();
      const plan = planReload(running, next);
      if (plan.needRestart.length > 0) {
        throw new AgentError(
          'RELOAD_REFUSED',
          `reload refused, nothing changed: ${plan.needRestart.join(', ')} changed, which only a restart applies`,
          { problems: plan.needRestart.map((path) => ({ path, message: NEEDS_RESTART })) },
        );
      }
      const files = opts.tlsFiles?.(next) ?? new Map<string, TlsFile>();
      const problems = [
        ...renewedTls(files),
        ...(opts.preflight?.(next) ?? []).filter((p) => within(p.path, plan.changed)),
      ];
      if (problems.length > 0) {
        throw new AgentError(
          'RELOAD_REFUSED',
          `reload refused, nothing changed: ${problems.map(formatProblem).join('; ')}`,
          {
            problems,
          },
        );
      }
      // Read (and checked) before anything is applied: a CA file that does not parse refuses the whole reload.
      const health = refusingOnBadCa(() => healthOptions(next, files, plan.changed), plan.changed);
      const steps = liveSteps(plan, next);
      // load() awaited the file: the drain may have begun since.
      refuseWhenExiting();
      const apply = applySteps(steps, next);
      inFlight = apply.then(
        () => undefined,
        () => undefined,
      );
      try {
        await apply;
      } finally {
        inFlight = undefined;
      }
      if (plan.changed.includes('logLevel')) {
        if (opts.setLogLevel) opts.setLogLevel(next.logLevel);
        else opts.logger.level = next.logLevel;
      }
      if (health) {
        opts.health?.setProbeOptions(health.options);
        healthCa = health.ca;
      }
      running = next;
      // A CA renewed in place changes no field, but the reload applied it: say so.
      // So does a step a failed reload left unsettled, applied again although the file has it as running has it.
      const again = steps.flatMap((s) => s.fields).filter((f) => !plan.changed.includes(f));
      const extra = [...again, ...(health?.renewed ? [HEALTH_CA_FIELD] : [])];
      const applied = extra.length > 0 ? { ...plan, changed: [...plan.changed, ...extra] } : plan;
      opts.metrics.configReloadsTotal.inc({ result: 'applied' });
      opts.logger.info({ event: 'configReloaded', changed: applied.changed });
      opts.events.emit('config.reload', { result: 'applied', changed: [...applied.changed] });
      return applied;
    } catch (err) {
      opts.metrics.configReloadsTotal.inc({ result: 'refused' });
      const problems = err instanceof AgentError ? err.problems : [];
      opts.logger.error({ event: 'configReloadRefused', err: (err as Error).message, problems });
      // Once each: a field can have several problems (bgp.peers a map: not a list, and no peer).
      const changed = [...new Set(problems.map((p) => p.path))];
      opts.events.emit('config.reload', { result: 'refused', changed, error: (err as Error).message });
      throw err;
    }
  };

  return {
    reload(load) {
      const result = chain.then(() => once(load));
      chain = result.catch(() => undefined);
      return result;
    },
    applying: () => inFlight,
    stopApplying() {
      stopped = true;
    },
  };
}
