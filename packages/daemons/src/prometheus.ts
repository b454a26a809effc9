/**
 * Prometheus (Debian's /usr/bin/prometheus) as our child, for tests of the shipped scrape config and alerting
 * rules against live agents: a free loopback port, its config and rule files written to a temporary directory,
 * its TSDB there too, and an HTTP API client for the two questions the tests ask (an instant query, the alerts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, freePort, spawnChild, waitFor } from '@l4fleet/process';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

export interface PrometheusOptions {
  /** prometheus.yml's text; rule_files name files of `files` by their bare names. */
  readonly configYaml: string;
  /** Other files beside the config (rule files), by name. */
  readonly files?: Readonly<Record<string, string>>;
}

/** One sample of an instant vector. */
export interface PrometheusSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

/** An alert as /api/v1/alerts lists it. */
export interface PrometheusAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: 'pending' | 'firing';
}

export interface PrometheusHandle {
  readonly url: string;
  /** An instant query (PromQL) at the current time. */
  query(expr: string): Promise<PrometheusSample[]>;
  /** Alerts pending or firing now. */
  alerts(): Promise<PrometheusAlert[]>;
  /** The log so far (its last lines), for failure messages. */
  log(): string;
  /** Stops it and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

interface ApiAnswer<T> {
  readonly status: string;
  readonly data: T;
  readonly error?: string;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-prometheus-'));
  let child: Child | undefined;
  try {
    await writeFile(join(dir, 'prometheus.yml'), opts.configYaml);
    for (const [name, text] of Object.entries(opts.files ?? {})) await writeFile(join(dir, name), text);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const c = spawnChild(
      [
        PROMETHEUS_BIN,
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { cwd: dir },
    );
    child = c;
    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5_000) });
      const body = (await res.json()) as ApiAnswer<T>;
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
      return body.data;
    };
    await waitFor(
      `prometheus on port ${port}`,
      async () => {
        try {
          return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) })).ok ? true : undefined;
        } catch {
          return undefined;
        }
      },
      READY_TIMEOUT_MS,
      100,
      () => (c.exitReason() ? `prometheus ${c.exitReason()} before serving:\n${c.log()}` : undefined),
    );
    let stopped = false;
    return {
      url,
      async query(expr) {
        const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
          `/api/v1/query?query=${encodeURIComponent(expr)}`,
        );
        return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
      },
      async alerts() {
        return (await api<{ alerts: PrometheusAlert[] }>('/api/v1/alerts')).alerts;
      },
      log: () => c.log(),
      async stop() {
        if (stopped) return;
        stopped = true;
        await c.stop('SIGTERM', STOP_TIMEOUT_MS);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await child?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
