/**
 * Which kind of machine the bench ran on, printed beside its figures: per-packet costs differ by an order of
 * magnitude between the two kinds the project has measured on (docs/design/0007, "Measured"). On a CPU whose return
 * thunks are "Safe RET" (AMD, `spec_rstack_overflow` mitigation) every `ret` and indirect call costs extra, so the
 * kernel's path (and nft's chain of indirect calls) is inflated far more than a JIT'd BPF program: such a run's
 * per-packet rows cannot be compared with runs on the other kind.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Machine {
  readonly model: string;
  readonly cpus: number;
  readonly hypervisor: boolean;
  /** The spec_rstack_overflow line ('' when the kernel has none: not an affected CPU). */
  readonly returnThunks: string;
}

const read = (path: string): string => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
};

export function machine(): Machine {
  const cpuinfo = read('/proc/cpuinfo');
  return {
    model: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? (cpus()[0]?.model || 'unknown CPU'),
    cpus: cpus().length,
    hypervisor: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo),
    returnThunks: read('/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow'),
  };
}

export const safeRet = (m: Machine): boolean => /safe ret/i.test(m.returnThunks);

export function machineLine(m: Machine): string {
  const thunks = m.returnThunks === '' ? '' : `; spec_rstack_overflow: ${m.returnThunks}`;
  const warn = safeRet(m)
    ? " (the kernel's per-packet costs run ~20x, a BPF program's ~2x those of the other machine kind: " +
      'docs/design/0007 "The XDP fast path on veth, and a different machine")'
    : '';
  return `machine: ${m.model}, ${m.cpus} CPUs${m.hypervisor ? ', virtual' : ''}${thunks}${warn}`;
}
