import { describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { DEFAULT_DATA_PATH, NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { type UpDataPathContext, upDataPath } from './up-data-path.js';

const netns: UpDataPathContext = { runtime: 'netns', mode: 'agent', bpfMissing: undefined };
const noBpf: UpDataPathContext = { ...netns, bpfMissing: '/x/native/bin/l4fleet-bpf' };
const docker: UpDataPathContext = { ...netns, runtime: 'docker' };
const staticMode: UpDataPathContext = { ...netns, mode: 'static' };

describe('lab up - the data path by runtime, mode and what is built', () => {
  test('netns, agent mode, bpf built: bpf nodes, routed backends, gue; no notice', () => {
    expect(upDataPath({}, netns)).toEqual({ dataPath: DEFAULT_DATA_PATH, notice: undefined });
    expect(DEFAULT_DATA_PATH).toEqual({ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue' });
  });

  test.each([
    ['docker runtime', docker],
    ['static mode', staticMode],
    ['docker runtime without bpf', { ...docker, bpfMissing: '/x' }],
  ])('%s: nftables with l2 backends by default, no notice', (_, ctx) => {
    expect(upDataPath({}, ctx)).toEqual({ dataPath: NFTABLES_DATA_PATH, notice: undefined });
  });

  test('netns without the bpf objects: nftables, and one line naming the missing file and how to get bpf', () => {
    const { dataPath, notice } = upDataPath({}, noBpf);
    expect(dataPath).toEqual(NFTABLES_DATA_PATH);
    expect(notice).toContain('/x/native/bin/l4fleet-bpf missing');
    expect(notice).toContain('clang');
    expect(notice).toContain('npm run build');
    expect(notice).toContain('--dataplane nftables');
    expect(notice).not.toContain('\n');
  });

  test('asked explicitly, nftables gives no notice; the other options follow the data plane asked', () => {
    expect(upDataPath({ dataplane: 'nftables' }, noBpf)).toEqual({ dataPath: NFTABLES_DATA_PATH, notice: undefined });
    expect(upDataPath({ dataplane: 'nftables' }, netns).dataPath).toEqual(NFTABLES_DATA_PATH);
    expect(upDataPath({ forwarding: 'nat' }, netns).dataPath).toEqual({ ...NFTABLES_DATA_PATH, forwarding: 'nat' });
    expect(upDataPath({ forwarding: 'ipip' }, netns).dataPath).toEqual({ ...DEFAULT_DATA_PATH, forwarding: 'ipip' });
    expect(upDataPath({ backendNetwork: 'l2' }, netns).dataPath).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'bpf' });
    expect(upDataPath({ dataplane: 'proxy' }, netns).dataPath).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'proxy' });
    expect(upDataPath({ dataplane: 'bpf' }, netns).dataPath).toEqual(DEFAULT_DATA_PATH);
  });

  test.each([
    [
      { dataplane: 'bpf' },
      noBpf,
      'BPF_UNAVAILABLE',
      /--dataplane bpf .*not built \(\/x\/native\/bin\/l4fleet-bpf missing\)/,
    ],
    [{ forwarding: 'gue' }, noBpf, 'BPF_UNAVAILABLE', /--forwarding gue: the bpf data plane is not built/],
    [{ backendNetwork: 'routed' }, noBpf, 'BPF_UNAVAILABLE', /--backend-network routed .*clang/],
    [
      { dataplane: 'bpf' },
      docker,
      'RUNTIME_UNSUPPORTED',
      /the docker runtime runs nftables nodes with l2 backends only/,
    ],
    [{ forwarding: 'gre' }, docker, 'RUNTIME_UNSUPPORTED', /--forwarding gre: the docker runtime/],
    [{ dataplane: 'bpf' }, staticMode, 'RUNTIME_UNSUPPORTED', /static mode has no agent/],
    [{ forwarding: 'nat' }, staticMode, 'RUNTIME_UNSUPPORTED', /--forwarding nat: static mode/],
    [{ dataplane: 'nftables', forwarding: 'gue' }, netns, 'OPTION_INVALID', /--forwarding "gue" needs --dataplane bpf/],
  ] as const)('refused before anything is made: %j in %j', (options, ctx, code, message) => {
    let thrown: unknown;
    try {
      upDataPath(options, ctx);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(LabError);
    expect((thrown as LabError).code).toBe(code);
    expect((thrown as LabError).message).toMatch(message);
  });
});
