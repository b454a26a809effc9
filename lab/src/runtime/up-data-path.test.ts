import { describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { DEFAULT_DATA_PATH, NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { bpfNotBuilt, type UpDataPathContext, upDataPath } from './up-data-path.js';

const agent: UpDataPathContext = { mode: 'agent', bpfMissing: undefined };
const noBpf: UpDataPathContext = { ...agent, bpfMissing: bpfNotBuilt('/x/native/bin/l4fleet-bpf') };
/** An agent image built before it carried the bpf data plane (docker.ts, agentImageBpfMissing). */
const oldImage = { what: 'libbpf.so.1 in image l4fleet/agent:latest', hint: 'rebuild the images (x.sh)' };
const staticMode: UpDataPathContext = { ...agent, mode: 'static' };

describe('lab up - the data path by runtime, mode and what is built', () => {
  test('agent mode (either runtime), bpf built: bpf nodes, routed backends, gue; no notice', () => {
    expect(upDataPath({}, agent)).toEqual({ dataPath: DEFAULT_DATA_PATH, notice: undefined });
    expect(DEFAULT_DATA_PATH).toEqual({ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue' });
  });

  test.each([
    ['static mode', staticMode],
    ['static mode without bpf', { ...staticMode, bpfMissing: bpfNotBuilt('/x') }],
  ])('%s: nftables with l2 backends by default, no notice', (_, ctx) => {
    expect(upDataPath({}, ctx)).toEqual({ dataPath: NFTABLES_DATA_PATH, notice: undefined });
  });

  test('docker with an agent image without bpf: nftables, and a notice naming what the image lacks and the fix', () => {
    const { dataPath, notice } = upDataPath({}, { ...agent, bpfMissing: oldImage });
    expect(dataPath).toEqual(NFTABLES_DATA_PATH);
    expect(notice).toContain('libbpf.so.1 in image l4fleet/agent:latest missing');
    expect(notice).toContain('rebuild the images (x.sh)');
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
    expect(upDataPath({ dataplane: 'nftables' }, agent).dataPath).toEqual(NFTABLES_DATA_PATH);
    expect(upDataPath({ forwarding: 'nat' }, agent).dataPath).toEqual({ ...NFTABLES_DATA_PATH, forwarding: 'nat' });
    expect(upDataPath({ forwarding: 'ipip' }, agent).dataPath).toEqual({ ...DEFAULT_DATA_PATH, forwarding: 'ipip' });
    expect(upDataPath({ backendNetwork: 'l2' }, agent).dataPath).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'bpf' });
    expect(upDataPath({ dataplane: 'proxy' }, agent).dataPath).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'proxy' });
    expect(upDataPath({ dataplane: 'bpf' }, agent).dataPath).toEqual(DEFAULT_DATA_PATH);
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
      { ...agent, bpfMissing: oldImage },
      'BPF_UNAVAILABLE',
      /--dataplane bpf .*\(libbpf\.so\.1 in image l4fleet\/agent:latest missing\); rebuild the images/,
    ],
    [{ dataplane: 'bpf' }, staticMode, 'RUNTIME_UNSUPPORTED', /static mode has no agent/],
    [{ forwarding: 'nat' }, staticMode, 'RUNTIME_UNSUPPORTED', /--forwarding nat: static mode/],
    [{ dataplane: 'nftables', forwarding: 'gue' }, agent, 'OPTION_INVALID', /--forwarding "gue" needs --dataplane bpf/],
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
