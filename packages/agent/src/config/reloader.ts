/**
 * The agent's side of a reload (SIGHUP): reads agent.yaml again through `load`, plans it against the running config
 * (reload.ts) and applies what a reload can, or refuses the whole reload, changing nothing: an unreadable or
 * invalid file, or a changed field only a restart applies (each named). Reloads run one at a time, in order.
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
  reload(load: () => Promise<AgentConfig>): Promise<ReloadPlan>;
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
}

/** The field whose file the reload reads again itself (the checker's roots), unlike the etcd and NATS clients'. */
const HEALTH_CA_FIELD = 'health.caFile';

/** Whether `path` (`bgp.peers[1].localAddress`) lies in one of the changed fields (`bgp.peers`). */
const within = (path: string, fields: readonly string[]) =>
  fields.some((f) => path === f || path.startsWith(`${f}[`) || path.startsWith(`${f}.`));

const NEEDS_RESTART = 'changed: only a restart applies it (a restart drains the node first)';

export function createReloader(opts: ReloaderOptions): Reloader {
  let running = opts.config;
  let chain: Promise<unknown> = Promise.resolve();
  /** What the etcd client and NATS read at the start; they never read the files again. */
  const startTls = opts.tlsFiles?.(opts.config) ?? new Map<string, TlsFile>();
  /** The health roots the probes use now: the start's, then each reload's. */
  let healthCa: TlsFile | undefined = startTls.get(HEALTH_CA_FIELD);
  const readCa = opts.readHealthCa ?? readHealthCa;

  /** A TLS file whose field is unchanged but whose content is not what the agent read at its start. */
  const renewedTls = (files: ReadonlyMap<string, TlsFile>): AgentConfigProblem[] =>
    [...files].flatMap(([path, now]) => {
      const then = startTls.get(path);
      if (path === HEALTH_CA_FIELD || then === undefined || then.file !== now.file || then.digest === now.digest)
        return [];
      return [{ path, message: `"${now.file}" changed since the agent read it at its start: only a restart uses it` }];
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

  const once = async (load: () => Promise<AgentConfig>): Promise<ReloadPlan> => {
    try {
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
      const health = healthOptions(next, files, plan.changed);
      if (plan.changed.includes('bgp.peers')) await opts.bgp.setPeers(next.bgp.peers);
      // BFD on (a change of bfd.enabled was refused above): its sessions follow; off, nothing reads them.
      if (plan.changed.includes('bfd.peers') && next.bfd.enabled) await opts.bfd.setPeers(next.bfd.peers);
      if (plan.changed.some((f) => BFD_TIMER_FIELDS.includes(f)) && next.bfd.enabled)
        await opts.bfd.setTimers(next.bfd);
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
      const applied = health?.renewed ? { ...plan, changed: [...plan.changed, HEALTH_CA_FIELD] } : plan;
      opts.metrics.configReloadsTotal.inc({ result: 'applied' });
      opts.logger.info({ event: 'configReloaded', changed: applied.changed });
      opts.events.emit('config.reload', { result: 'applied', changed: [...applied.changed] });
      return applied;
    } catch (err) {
      opts.metrics.configReloadsTotal.inc({ result: 'refused' });
      const problems = err instanceof AgentError ? err.problems : [];
      opts.logger.error({ event: 'configReloadRefused', err: (err as Error).message, problems });
      const changed = problems.map((p) => p.path);
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
  };
}
