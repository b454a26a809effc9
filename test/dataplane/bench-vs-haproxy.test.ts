/**
 * The data-plane bench's "x HAProxy" figures (packages/dataplane/bench/vs-haproxy.ts): paths are measured minutes
 * apart, each in rounds paired with direct, so two paths compare only through their paired x-direct ratios, never
 * through their Gbit/s medians; a path not measured gives no figure (no NaN or null printed as one).
 */
import { describe, expect, test } from 'vitest';
import { vsHaproxy, vsHaproxyLine } from '../../packages/dataplane/bench/vs-haproxy.js';

const measured = {
  // Medians from rounds minutes apart: their quotient (10 / 2 = 5) is not the figure.
  nftablesGbps: 10,
  haproxyGbps: 2,
  nftablesCps: 9_000,
  haproxyCps: 3_000,
  nftablesVsDirectThroughput: 0.9,
  haproxyVsDirectThroughput: 0.4,
  nftablesVsDirectCps: 0.8,
  haproxyVsDirectCps: 0.5,
  bpfL2VsDirectThroughput: 1.0,
};

describe('bench x HAProxy', () => {
  test('bench x HAProxy - the ratio of the paired x-direct ratios', () => {
    const f = vsHaproxy(measured);
    expect(f.nftablesVsHaproxyThroughput).toBeCloseTo(0.9 / 0.4);
    expect(f.nftablesVsHaproxyCps).toBeCloseTo(0.8 / 0.5);
    expect(f.bpfL2VsHaproxyThroughput).toBeCloseTo(1.0 / 0.4);
  });

  test('bench x HAProxy - a path not measured has no figure and no place in the line', () => {
    const { bpfL2VsDirectThroughput: _gone, ...noBpf } = measured;
    const f = vsHaproxy(noBpf);
    expect(f).not.toHaveProperty('bpfL2VsHaproxyThroughput');
    const line = vsHaproxyLine({ ...noBpf, ...f }) ?? '';
    expect(line).toContain('nftables');
    expect(line).not.toMatch(/bpf|NaN|null|undefined/);
  });

  test('bench x HAProxy - without HAProxy measured, nothing', () => {
    const { haproxyVsDirectThroughput: _t, haproxyVsDirectCps: _c, ...noHaproxy } = measured;
    expect(vsHaproxy(noHaproxy)).toEqual({});
    expect(vsHaproxyLine(noHaproxy)).toBeUndefined();
  });
});
