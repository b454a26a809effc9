/**
 * The bpf bench's per-packet lines (packages/dataplane/bench/bpf-report.ts): known flows, new flows into fresh
 * flow maps and new flows into reused ones (bench/bpf.ts Traffic), each with its own baseline and extras.
 */
import { describe, expect, test } from 'vitest';
import { bpfReport } from '../../packages/dataplane/bench/bpf-report.js';

/** Figures for one family and traffic kind (`base` as bpf.ts names them: bpf, bpfNew, bpf6Reused, ...). */
const figures = (base: string, fwd: number, l2: number): Record<string, number> => ({
  [`${base}FwdNs`]: fwd,
  [`${base}L2ExtraNs`]: l2,
  [`${base}L2ExtraP25Ns`]: l2 - 10,
  [`${base}L2ExtraP75Ns`]: l2 + 10,
  [`${base}L2ProgNs`]: l2 + 50,
});

describe('bpf bench report', () => {
  test('bpf bench report - a line per family for known flows, new flows into fresh flow maps and into reused ones', () => {
    const lines = bpfReport({
      ...figures('bpf', 1930, 40),
      ...figures('bpfNew', 1980, 480),
      ...figures('bpfReused', 1970, 520),
      ...figures('bpf6', 2050, 10),
      ...figures('bpf6New', 2240, 470),
      ...figures('bpf6Reused', 2230, 530),
    });
    const rows = lines.filter((l) => l.startsWith('  IPv'));
    expect(rows).toHaveLength(6);
    expect(rows[1]).toMatch(
      /^ {2}IPv4 new flows, fresh maps : fwd 1980 ns\/pkt; l2 \+480 \[470\.\.490\] ns \(prog 530\)$/,
    );
    expect(rows[2]).toMatch(
      /^ {2}IPv4 new flows, reused maps: fwd 1970 ns\/pkt; l2 \+520 \[510\.\.530\] ns \(prog 570\)$/,
    );
    expect(rows[5]).toMatch(/^ {2}IPv6 new flows, reused maps: fwd 2230 ns\/pkt; l2 \+530/);
  });
});
