// Builds the eBPF data plane: every native/bpf/*.bpf.c into native/bin/bpf/<name>.bpf.o (clang -target bpf),
// and the loader/map writer native/bpf-loader/*.c into native/bin/l4fleet-bpf (cc, Debian's libbpf).
// Without clang or libbpf-dev the build only says why: the nftables and proxy drivers still work, and the bpf
// driver refuses to start with a message naming the missing file. A compiler that rejects a source fails
// the build. Debian: apt-get install clang llvm libbpf-dev libelf-dev (scripts/install-system-deps.sh).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../native/', import.meta.url));
const bpfDir = `${root}bpf/`;
const outDir = `${root}bin/`;
const bpfOut = `${outDir}bpf/`;

if (process.platform !== 'linux') process.exit(0);

const works = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
/** Rebuild when the output is missing or older than any input (the sources and the shared header). */
const stale = (out, inputs) =>
  !existsSync(out) || inputs.some((i) => existsSync(i) && statSync(i).mtimeMs > statSync(out).mtimeMs);
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const warn = (what) =>
  console.warn(`@l4fleet/dataplane: ${what}; the bpf driver is unavailable (nftables and proxy still work).`);

// Debian's uapi headers keep asm/ under the multiarch directory, which clang -target bpf does not search.
const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout?.trim() || 'x86_64-linux-gnu';
const shared = existsSync(bpfDir)
  ? readdirSync(bpfDir)
      .filter((f) => f.endsWith('.h'))
      .map((f) => bpfDir + f)
  : [];

let failed = false;
const sources = existsSync(bpfDir)
  ? readdirSync(bpfDir)
      .filter((f) => f.endsWith('.bpf.c'))
      .sort()
  : [];
if (sources.length > 0) {
  if (!works('clang', ['--version'])) warn('no clang: native/bpf/*.bpf.c not built (apt-get install clang llvm)');
  else if (!existsSync('/usr/include/bpf/bpf_helpers.h')) warn('no /usr/include/bpf (apt-get install libbpf-dev)');
  else {
    mkdirSync(bpfOut, { recursive: true });
    for (const f of sources) {
      const src = bpfDir + f;
      const out = bpfOut + f.replace(/\.c$/, '.o');
      if (!stale(out, [src, ...shared])) continue;
      const r = spawnSync(
        'clang',
        [
          '-O2',
          '-g',
          '-Wall',
          '-Werror',
          '-target',
          'bpf',
          '-D__TARGET_ARCH_x86',
          `-I/usr/include/${multiarch}`,
        ].concat(['-I', bpfDir, '-c', src, '-o', out]),
        { stdio: 'inherit' },
      );
      if (r.status !== 0) failed = true;
    }
  }
}

const loaderDir = `${root}bpf-loader/`;
const loader = existsSync(loaderDir)
  ? readdirSync(loaderDir)
      .filter((f) => f.endsWith('.c'))
      .sort()
      .map((f) => `${loaderDir}${f}`)
  : [];
if (loader.length > 0) {
  const out = `${outDir}l4fleet-bpf`;
  const cc = [process.env.CC, 'cc', 'gcc'].find((c) => c && works(c, ['--version']));
  if (cc === undefined) warn('no C compiler: l4fleet-bpf not built (apt-get install gcc libc6-dev)');
  else if (!existsSync('/usr/include/bpf/libbpf.h'))
    warn('no libbpf headers: l4fleet-bpf not built (apt-get install libbpf-dev libelf-dev)');
  else if (stale(out, [...loader, `${loaderDir}loader.h`, ...shared])) {
    mkdirSync(outDir, { recursive: true });
    run(cc, [
      '-O2',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-I',
      bpfDir,
      '-o',
      out,
      ...loader,
      '-lbpf',
      '-lelf',
      '-lz',
      '-lpthread',
    ]);
  }
}
process.exit(failed ? 1 : 0);
