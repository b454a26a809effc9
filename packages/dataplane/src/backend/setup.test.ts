import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressText } from '@l4fleet/config';
import { parseAddress } from '@l4fleet/maglev';
import { afterEach, describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { toHex } from '../validate.js';
import { readRecord, recordPath, writeRecord } from './record.js';
import { setupBackend } from './setup.js';
import { teardownBackend } from './teardown.js';

const NETNS = 'net:[4026531840]';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A host as ip, tc, sysctl and bpftool answer for it, in memory: `lo` holds addresses as the kernel prints them
 * (canonical text), paths exist once made; sysctls already as a backend needs them.
 */
function fakeHost(): { exec: Exec; lo: Map<string, string> } {
  const lo = new Map<string, string>(); // hex -> `address/prefixlen`, as `ip -j addr` prints it
  const paths = new Set<string>();
  const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
  const hexOf = (cidr: string) => toHex(parseAddress(cidr.split('/')[0] as string).bytes);
  const exec: Exec = async (argv) => {
    const [cmd, ...args] = argv;
    const line = argv.join(' ');
    if (cmd === 'readlink') return ok(`${NETNS}\n`);
    if (cmd === 'stat') return ok('bpf_fs\n');
    if (cmd === 'sysctl' && args[0] === '-n')
      return ok(
        `${args
          .slice(1)
          .map(() => '2')
          .join('\n')}\n`,
      );
    if (line === 'ip -j addr show dev lo') {
      return ok(
        JSON.stringify([
          { addr_info: [...lo.values()].map((c) => ({ local: c.split('/')[0], prefixlen: Number(c.split('/')[1]) })) },
        ]),
      );
    }
    if (cmd === 'ip' && args[0] === 'addr' && (args[1] === 'add' || args[1] === 'del')) {
      const cidr = args[2] as string;
      const hex = hexOf(cidr);
      if (args[1] === 'del') {
        if (!lo.has(hex)) return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Cannot assign requested address' };
        lo.delete(hex);
      } else {
        const p = parseAddress(cidr.split('/')[0] as string);
        lo.set(hex, `${addressText(p.family, p.bytes)}/${cidr.split('/')[1]}`);
      }
      return ok();
    }
    if (cmd === 'test') return paths.has(args[1] as string) ? ok() : { code: 1, stdout: '', stderr: '' };
    if (cmd === 'mkdir') paths.add(args[1] as string);
    if (line.startsWith('bpftool prog load')) paths.add(args[3] as string);
    if (cmd === 'rm') for (const p of [...paths]) if (p.startsWith(args[1] as string)) paths.delete(p);
    if (line.startsWith('bpftool -j map dump')) return ok('[]');
    if (line.startsWith('bpftool -j prog show')) return ok('{"id":42}');
    if (line.startsWith('tc -j')) return ok('[]');
    return ok();
  };
  return { exec, lo };
}

async function hostDeps(exec: Exec) {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-backend-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const objectPath = join(dir, 'backend.bpf.o');
  await writeFile(objectPath, 'not really an object');
  return { exec, bpffs: '/sys/fs/bpf', stateDir: join(dir, 'state'), objectPath };
}

describe('backend host', () => {
  test('backend host - a VIP given as non-canonical IPv6 text is recorded as the kernel prints it, kept by a second setup, removed by teardown', async () => {
    const host = fakeHost();
    const deps = await hostDeps(host.exec);
    const input = { vips: ['2001:DB8::1', '198.18.2.1'], nodes: ['198.18.0.1'], forwarding: 'ipip', interface: 'eth0' };
    await setupBackend(input, deps);
    expect([...host.lo.values()].sort()).toEqual(['198.18.2.1/32', '2001:db8::1/128']);
    const path = recordPath(deps.stateDir, NETNS);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128', '198.18.2.1/32']);
    // Again, as given: the address it added stays its own.
    await setupBackend(input, deps);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128', '198.18.2.1/32']);
    const down = await teardownBackend(deps);
    expect(down.leftAlone).toEqual([]);
    expect([...host.lo.values()]).toEqual([]);
  });

  test('backend host - a record from before canonical text (2001:DB8::1/128) still matches lo: setup keeps it, teardown removes it', async () => {
    const host = fakeHost();
    const deps = await hostDeps(host.exec);
    const input = { vips: ['2001:DB8::1'], nodes: ['198.18.0.1'], forwarding: 'ipip', interface: 'eth0' };
    await setupBackend(input, deps);
    const path = recordPath(deps.stateDir, NETNS);
    const old = await readRecord(path);
    if (!old) throw new Error('no record');
    await writeRecord(path, { ...old, addedVips: ['2001:DB8::1/128'] });
    await setupBackend(input, deps);
    expect((await readRecord(path))?.addedVips).toEqual(['2001:db8::1/128']);
    await writeRecord(path, { ...old, addedVips: ['2001:DB8::1/128'] });
    await teardownBackend(deps);
    expect([...host.lo.values()]).toEqual([]);
  });
});
