/**
 * A reader for the Prometheus text exposition format 0.0.4 (what prom-client serves on the agents' /metrics):
 * `name{label="value",...} value [timestamp]`, `#` lines are HELP/TYPE comments. Only what the dashboard charts
 * needs: samples with their labels; histograms come as their _bucket/_sum/_count samples.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y;

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(text); // NaN stays NaN, as Prometheus does
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const at = LABEL.lastIndex;
    const m = LABEL.exec(text);
    if (!m) throw new TypeError(`metrics line ${JSON.stringify(line)}: bad label at offset ${at}`);
    labels[m[1] as string] = unescapeLabel(m[2] as string);
  }
  return labels;
}

export interface Exposition {
  readonly samples: Sample[];
  /**
   * Metric families the text declares (`# HELP` / `# TYPE`) or has samples of: a labelled family with no values yet
   * (an agent without VIPs) is declared but has no sample.
   */
  readonly families: ReadonlySet<string>;
}

const DECLARATION = /^#\s+(?:HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)/;

/** Parses the whole exposition; throws TypeError naming the first line that is not a sample or a comment. */
export function parsePrometheusText(text: string): Sample[] {
  return parseExposition(text).samples;
}

/** parsePrometheusText, and the families declared. */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const families = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const d = DECLARATION.exec(line);
      if (d) families.add(d[1] as string);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new TypeError(`metrics line ${JSON.stringify(line)}: not a sample`);
    samples.push({
      name: m[1] as string,
      labels: m[2] ? parseLabels(m[2], line) : {},
      value: parseValue(m[3] as string),
    });
    families.add(m[1] as string);
  }
  return { samples, families };
}

/** `name{label="value",...}` as the exposition writes it: names a sample in an error. */
export function sampleText(s: Sample): string {
  const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return labels.length === 0 ? s.name : `${s.name}{${labels.join(',')}}`;
}

/** Sum of the samples named `name`, grouped by the value of `label` (a missing label groups under ''). */
export function sumBy(samples: readonly Sample[], name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = s.labels[label] ?? '';
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** The value of the one sample named `name` (the first when several), or undefined. */
export function firstValue(samples: readonly Sample[], name: string): number | undefined {
  return samples.find((s) => s.name === name)?.value;
}
