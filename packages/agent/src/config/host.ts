/**
 * What `l4fleet agent --check` asks of the machine, read-only: interfaces, local addresses, files, programs on
 * PATH and capabilities. Injected, so the checks are tested against a described host and never touch the real one.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { bpfAvailable } from '@l4fleet/dataplane';

export interface HostFacts {
  /** Whether a network interface of this name exists (in this network namespace). */
  hasInterface(name: string): boolean;
  /** Whether `address` is assigned to an interface of this host. */
  isLocalAddress(address: string): boolean;
  /** Whether the file can be opened for reading. */
  canRead(path: string): boolean;
  /** Whether the directory exists and is writable, or its nearest existing parent is (so it can be created). */
  canWriteDir(path: string): boolean;
  /** Whether an executable of this name is on PATH. */
  onPath(program: string): boolean;
  /** Whether this process holds CAP_NET_ADMIN (nftables, qdiscs, BPF attach need it). */
  hasNetAdmin(): boolean;
  /** The first missing file of the bpf data plane (its loader or its program object); undefined when it is built. */
  missingBpfFile(): string | undefined;
  /** net.ipv4|ipv6.conf.IFACE.forwarding of this network namespace; undefined when it cannot be read. */
  forwarding(iface: string, family: 4 | 6): boolean | undefined;
}

/** CAP_NET_ADMIN's bit in /proc/self/status CapEff (linux/capability.h). */
const CAP_NET_ADMIN_BIT = 12n;

const accessible = (path: string, mode: number): boolean => {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
};

/** This machine, read through /sys, /proc, os.networkInterfaces() and access(2): nothing is created or changed. */
export function systemHost(): HostFacts {
  return {
    // `.` and `..` exist under /sys/class/net and are no interface.
    hasInterface: (name) =>
      !name.includes('/') && name !== '.' && name !== '..' && existsSync(join('/sys/class/net', name)),
    isLocalAddress(address) {
      const want = address.toLowerCase();
      return Object.values(networkInterfaces()).some((list) =>
        (list ?? []).some((a) => a.address.toLowerCase() === want),
      );
    },
    canRead: (path) => accessible(path, constants.R_OK) && !statSync(path).isDirectory(),
    canWriteDir(path) {
      let dir = path;
      for (let i = 0; i < 64; i++) {
        if (existsSync(dir)) return statSync(dir).isDirectory() && accessible(dir, constants.W_OK | constants.X_OK);
        const up = dirname(dir);
        if (up === dir) return false;
        dir = up;
      }
      return false;
    },
    onPath: (program) =>
      (process.env.PATH ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .some((d) => accessible(join(d, program), constants.X_OK)),
    missingBpfFile: () => bpfAvailable(),
    forwarding(iface, family) {
      if (iface.includes('/') || iface.startsWith('.')) return undefined;
      try {
        return readFileSync(`/proc/sys/net/ipv${family}/conf/${iface}/forwarding`, 'utf8').trim() !== '0';
      } catch {
        return undefined;
      }
    },
    hasNetAdmin() {
      try {
        const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
        return m ? ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN_BIT) & 1n) === 1n : false;
      } catch {
        return false;
      }
    },
  };
}
