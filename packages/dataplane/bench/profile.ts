/**
 * A flood under `perf record -e cpu-clock` on the sender's CPU (the VM has no hardware PMU): where the time of
 * the whole path goes, by kernel symbol. Every hop of the bench's veth path runs in the sender's softirq, so the
 * profile of that one CPU is the path. Shares times the flood's ns per packet are ns per packet per symbol.
 */
import { join } from 'node:path';
import { run } from '@l4fleet/process';

/** What udp-flood.c prints (one JSON line). */
export interface Flood {
  readonly sent: number;
  readonly errors: number;
  readonly cpuNs: number;
  readonly softirqdNs: number;
  readonly wallNs: number;
  /** Distinct 5-tuples sent, warm-up included. */
  readonly distinct: number;
}

export interface Profile {
  readonly flood: Flood;
  /** The flood's CPU (sender thread and its ksoftirqd) per sent packet. */
  readonly nsPerPacket: number;
  /** Kernel symbol -> ns per packet (its share of the samples times nsPerPacket). */
  readonly symbols: ReadonlyMap<string, number>;
}

/** Runs `argv` (a flood that prints its Flood line last) under perf on `cpu`; `name` names the data file. */
export async function profileFlood(argv: readonly string[], cpu: number, dir: string, name: string): Promise<Profile> {
  const data = join(dir, `perf-${name}.data`);
  const rec = await run(
    ['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '2000', '-C', String(cpu), '-o', data, '--', ...argv],
    { timeoutMs: 60_000 },
  );
  const flood = JSON.parse(rec.stdout.trim().split('\n').pop() as string) as Flood;
  const rep = await run(['perf', 'report', '-i', data, '--no-children', '--sort', 'sym', '--stdio'], {
    timeoutMs: 60_000,
  });
  const nsPerPacket = (flood.cpuNs + flood.softirqdNs) / flood.sent;
  const symbols = new Map<string, number>();
  for (const m of rep.stdout.matchAll(/^\s*([\d.]+)%\s+\[k\]\s+(\S+)/gm)) {
    symbols.set(m[2] as string, (Number(m[1]) / 100) * nsPerPacket);
  }
  return { flood, nsPerPacket, symbols };
}

/** ns per packet in the symbols `match` accepts. */
export function nsIn(p: Profile, match: RegExp): number {
  let ns = 0;
  for (const [sym, v] of p.symbols) if (match.test(sym)) ns += v;
  return ns;
}

/** The symbols whose ns per packet grew most from `base` to `other` (at least `minNs`), largest first. */
export function grownSymbols(base: Profile, other: Profile, top: number, minNs = 5): [string, number][] {
  const names = new Set([...base.symbols.keys(), ...other.symbols.keys()]);
  return [...names]
    .map((n): [string, number] => [n, (other.symbols.get(n) ?? 0) - (base.symbols.get(n) ?? 0)])
    .filter(([, d]) => d >= minNs)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
}
