/** `l4fleet-lab` (and `l4fleet lab ...`, which execs it): the lab's command line. */
import { spawn } from 'node:child_process';
import { DEFAULT_BFD_DETECT_MULTIPLIER, DEFAULT_BFD_INTERVAL_MS } from '@l4fleet/daemons';
import { run } from '@l4fleet/process';
import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
import { controlSlotDefault, dataPathLine, givenUpOptions, int, labId, MAX_FLOWS, upSummary } from './cli-options.js';
import { LabError } from './errors.js';
import { publishLabFlows } from './flows/publish.js';
import { checkVerdict, DEFAULT_WATCH_MAX_PAUSE_MS, watch } from './flows/watch.js';
import { interruptible, LabInterrupted } from './interrupt.js';
import { labLogLevel, lineWriter } from './output.js';
import { Lab, type UpOptions } from './runtime/lab.js';
import { listLabIds } from './runtime/resources.js';
import { repoRoot } from './runtime/scripts.js';
import { containerlabYaml } from './topology/containerlab.js';
import {
  BACKEND_NETWORKS,
  DEFAULT_DATA_PATH,
  LAB_DATA_PLANES,
  LAB_FORWARDINGS,
  NFTABLES_DATA_PATH,
} from './topology/data-path.js';
import { labFleetYaml } from './topology/fleet.js';
import { buildTopology } from './topology/model.js';

export interface LabIo {
  out(text: string): void;
  err(text: string): void;
}

/** stdout and stderr; one that went away (a hung-up terminal, a pipe's reader gone) is dropped quietly (output.ts). */
const processIo: LabIo = { out: lineWriter(process.stdout), err: lineWriter(process.stderr) };

export { MAX_FLOWS, upSummary };

export function createLabProgram(io: LabIo = processIo): Command {
  const log = pino({ level: labLogLevel(process.env, process.stderr.isTTY === true) }, pino.destination(2));
  const program = new Command('l4fleet-lab')
    .description('A lab fleet on this machine: client -> FRR router (ECMP) -> balancer nodes -> backends, etcd, NATS')
    .option('--id <id>', 'lab id, part of every name (l4f-<id>-...); env L4FLEET_LAB_ID', undefined)
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();

  program
    .command('up')
    .description('bring the lab up (idempotent); returns once the VIPs answer')
    .option('--nodes <n>', 'balancer nodes', int('nodes'), 3)
    .option('--backends <n>', 'backends', int('backends'), 4)
    .option('--clients <n>', 'client hosts', int('clients'), 1)
    .addOption(
      new Option('--etcd-members <n>', 'etcd cluster members (all in the control host)')
        .choices(['1', '3', '5'])
        .default('3'),
    )
    .addOption(
      new Option(
        '--runtime <runtime>',
        'where the hosts run: network namespaces, or a container each (images of deploy/docker/build-images.sh)',
      )
        .choices(['netns', 'docker'])
        .default('netns'),
    )
    .addOption(
      new Option(
        '--dataplane <driver>',
        `the nodes' data plane (agent.yaml dataplane.driver). Default: ${DEFAULT_DATA_PATH.dataplane} in agent mode; nftables in static mode, and (with a notice) when the bpf objects are not built (on docker: not in the agent image)`,
      ).choices([...LAB_DATA_PLANES]),
    )
    .addOption(
      new Option(
        '--backend-network <network>',
        "l2: backends on the nodes' segment; routed: their own subnet behind the router (default: routed with bpf unless --forwarding l2, else l2)",
      ).choices([...BACKEND_NETWORKS]),
    )
    .addOption(
      new Option(
        '--forwarding <mode>',
        "the lab pools' forwarding (default: gue for bpf with routed backends, else l2)",
      ).choices([...LAB_FORWARDINGS]),
    )
    .addOption(
      new Option('--mode <mode>', 'agent: nodes run the l4fleet agent; static: gobgpd announcements, no agent')
        .choices(['auto', 'agent', 'static'])
        .default('auto'),
    )
    .option(
      '--control-slot <n>',
      'third octet of the control network 198.19.<n>.0/24; env L4FLEET_LAB_CONTROL_SLOT',
      int('control-slot'),
      controlSlotDefault(),
    )
    .option(
      '--bfd-interval-ms <ms>',
      'BFD (RFC 5880) interval, both directions, router <-> each node',
      int('bfd-interval-ms'),
      DEFAULT_BFD_INTERVAL_MS,
    )
    .option('--bfd-multiplier <n>', 'BFD detect multiplier', int('bfd-multiplier'), DEFAULT_BFD_DETECT_MULTIPLIER)
    .option('--no-bfd', 'no BFD: a dead node is noticed by the BGP hold timer')
    .option('--no-install', 'do not install missing Debian packages')
    .action(async (o, cmd: Command) => {
      const options: UpOptions = {
        id: labId(cmd),
        // Only what the user gave is compared with a lab already up (runtime/up-conflicts.ts), not the defaults.
        given: givenUpOptions(cmd),
        nodes: o.nodes,
        backends: o.backends,
        clients: o.clients,
        etcdMembers: Number(o.etcdMembers),
        bfd: o.bfd ? { intervalMs: o.bfdIntervalMs, multiplier: o.bfdMultiplier } : undefined,
        controlSlot: o.controlSlot,
        dataplane: o.dataplane,
        backendNetwork: o.backendNetwork,
        forwarding: o.forwarding,
        mode: o.mode,
        runtime: o.runtime,
        log,
        onNotice: (line) => io.err(`notice: ${line}`),
      };
      // Options first: a usage error must not wait for (or need) a package install.
      buildTopology(options);
      if (o.install) await run(['bash', `${repoRoot()}/scripts/install-system-deps.sh`], { timeoutMs: 900_000 });
      const lab = await Lab.up(options);
      for (const line of upSummary(await lab.status())) io.out(line);
    });

  program
    .command('down')
    .description('remove every namespace, process and file of the lab (also after a crash)')
    .option(
      '--all',
      'every lab with a state dir or an l4fleet.lab-labelled container (other l4f-* namespaces are named, not removed)',
    )
    .action(async (o, cmd: Command) => {
      let ids = [labId(cmd)];
      if (o.all) {
        const labs = await listLabIds();
        ids = labs.ids;
        for (const id of labs.unowned) {
          io.err(
            `namespaces l4f-${id}-* left alone: no lab state and no lab container has id "${id}" (another tool's?); lab down --id ${id} removes them`,
          );
        }
      }
      // Each under its lab's lock (runtime/lock.ts): a command still changing that lab ends first.
      for (const id of ids) {
        const found = await Lab.down(id, log);
        io.out(`lab "${id}": removed ${found.namespaces.length} namespaces`);
        for (const w of found.warnings) io.err(`warning: ${w}`);
        // Each warning is something left behind (a process, a namespace, containers): a script must not read success.
        if (found.warnings.length > 0) process.exitCode = 1;
      }
    });

  program
    .command('status')
    .description(
      'the lab: etcd, VIPs, nodes (BGP, BFD, drained, announced), backends, router next hops (-o json for scripts)',
    )
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json', 'text']).default('text'))
    .action(async (o, cmd: Command) => {
      const s = await Lab.open(labId(cmd), log).status();
      if (o.output === 'json') {
        io.out(JSON.stringify(s, null, 2));
        return;
      }
      io.out(`lab "${s.id}" (${s.runtime}, ${s.mode} mode)  etcd ${s.etcd.endpoints.join(',')}`);
      io.out(dataPathLine(s.dataPath));
      for (const n of s.nodes) {
        io.out(
          `node    ${n.name.padEnd(10)} ${n.address.padEnd(15)} bgp ${n.bgp}${n.bfd ? ` bfd ${n.bfd}` : ''}${n.killed ? ' killed' : ''} announces ${n.announced.join(' ') || '-'}`,
        );
      }
      for (const m of s.etcd.members) io.out(`etcd    ${m.name.padEnd(10)} ${m.endpoint}${m.killed ? ' killed' : ''}`);
      for (const b of s.backends) io.out(`backend ${b.name.padEnd(10)} ${b.address}${b.failed ? ' failed' : ''}`);
      for (const [prefix, hops] of Object.entries(s.router.nextHops))
        io.out(`router  ${prefix} via ${hops.join(', ')}`);
      if (s.dashboard) io.out(`dashboard ${s.dashboard.url} (write token in ${s.dashboard.tokenFile})`);
    });

  program
    .command('exec')
    .description('run a command in a lab host (client, router, control, a node or backend name)')
    .argument('<host>')
    .argument('<cmd...>')
    .action(async (host: string, argv: string[], _o, cmd: Command) => {
      const full = Lab.open(labId(cmd), log).execArgv(host, argv);
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(full[0] ?? 'true', full.slice(1), { stdio: 'inherit' });
        child.on('error', reject);
        child.on('exit', (c) => resolve(c ?? 1));
      });
      process.exitCode = code;
    });

  program
    .command('add-node')
    .description('add a balancer node; prints its name on the last line')
    .action(async (_o, cmd: Command) => {
      // Ctrl-C / SIGTERM: the add stops and undoes itself (interrupt.ts), exit 130 / 143.
      const lab = Lab.open(labId(cmd), log);
      io.out(await interruptible('add-node', io, (signal) => lab.addNode(undefined, signal)));
    });

  program
    .command('kill')
    .description('hard-fail a node (link down, processes killed, no graceful withdraw) or an etcd member (SIGKILL)')
    .argument('<node>', 'a node or an etcd member (etcd1..)')
    .action(async (node: string, _o, cmd: Command) => {
      await Lab.open(labId(cmd), log).kill(node);
      io.out(`${node} killed`);
    });

  program
    .command('restart')
    .description('bring a node back (link up, gobgpd and agent started again) or an etcd member (on its data)')
    .argument('<node>', 'a node or an etcd member (etcd1..)')
    .action(async (node: string, _o, cmd: Command) => {
      await Lab.open(labId(cmd), log).restart(node);
      io.out(`${node} restarted`);
    });

  program
    .command('add-backend')
    .description(
      "add a backend; in agent mode the lab fleet's pools gain it through `l4fleet apply`; prints its name on the last line",
    )
    .option('--no-apply', 'only start the backend (add it yourself: `l4fleet member add` or `l4fleet apply -f`)')
    .action(async (o, cmd: Command) => {
      // The fleet is applied under the add's lock (runtime/lab.ts): another add-backend or a down waits for it.
      const name = await Lab.open(labId(cmd), log).addBackend({
        applyFleet: o.apply,
        onFleetApplied: ({ file, output }) => {
          io.out(`l4fleet apply -f ${file}`);
          io.out(output.trimEnd());
        },
      });
      io.out(name);
    });

  program
    .command('fail-backend')
    .description('fail a backend: its service stops answering, health checks mark it down, its connections reset')
    .argument('<backend>')
    .action(async (name: string, _o, cmd: Command) => {
      await Lab.open(labId(cmd), log).failBackend(name);
      io.out(`${name} failed`);
    });

  program
    .command('restore-backend')
    .description('start a failed backend again; health checks bring it back into its pools')
    .argument('<backend>')
    .action(async (name: string, _o, cmd: Command) => {
      await Lab.open(labId(cmd), log).restoreBackend(name);
      io.out(`${name} restored`);
    });

  program
    .command('watch')
    .description('run long-lived flows from the client and show them live (flows per node/backend, breaks, pauses)')
    .option(
      '--flows <k>',
      `long-lived TCP flows (at most ${MAX_FLOWS}: one local port each)`,
      int('flows', MAX_FLOWS),
      200,
    )
    .option('--udp <u>', `UDP flows (at most ${MAX_FLOWS})`, int('udp', MAX_FLOWS), 50)
    .option('--json', 'one JSON object per tick')
    .option('--duration <s>', 'stop after this many seconds', int('duration'))
    .option(
      '--check',
      'at the end print a verdict; exit 1 if any flow broke, none is open, the longest pause passed --max-pause-ms, or the flow worker died (scripts, CI)',
    )
    .option(
      '--max-pause-ms <ms>',
      'with --check: the longest gap between answers on any flow that passes (a kill costs ~0.7 s with BFD, ~3.3 s without)',
      int('max-pause-ms'),
      DEFAULT_WATCH_MAX_PAUSE_MS,
    )
    .action(async (o, cmd: Command) => {
      const lab = Lab.open(labId(cmd), log);
      // Every tick also goes to the lab's dashboard (flows/publish.ts).
      const flowsOut = await publishLabFlows(lab, log);
      const { summary } = await watch(lab, {
        tcpFlows: o.flows,
        udpFlows: o.udp,
        json: Boolean(o.json),
        ...(o.duration !== undefined ? { durationMs: o.duration * 1000 } : {}),
        write: (t) => io.out(t),
        onTick: (t) => flowsOut.publish(t),
      }).finally(() => flowsOut.close());
      if (!o.check) return;
      const verdict = checkVerdict(summary, o.maxPauseMs);
      // With --json stdout stays JSON lines to the end: the verdict is one more object, also when it fails (the
      // reason then on stderr too, exit 1).
      if (o.json) io.out(JSON.stringify({ check: verdict }));
      if (!verdict.ok) throw new LabError('CHECK_FAILED', verdict.line);
      if (!o.json) io.out(verdict.line);
    });

  program
    .command('export')
    .description('the lab topology in another format')
    .addOption(
      new Option(
        '--format <format>',
        "containerlab: the Docker runtime's hosts (nftables, l2 backends); fleet: the default lab's fleet file",
      )
        .choices(['containerlab', 'fleet'])
        .makeOptionMandatory(),
    )
    .option('--nodes <n>', 'balancer nodes', int('nodes'), 3)
    .option('--backends <n>', 'backends', int('backends'), 4)
    .action((o, cmd: Command) => {
      const hosts = { id: labId(cmd), nodes: o.nodes, backends: o.backends };
      // containerlab starts the images itself: no bpf file system from a host dir and no backend setup, which the bpf
      // data path needs (runtime/docker-runtime.ts does both), so nftables nodes with l2 backends.
      io.out(
        o.format === 'containerlab'
          ? containerlabYaml(buildTopology({ ...hosts, ...NFTABLES_DATA_PATH }))
          : labFleetYaml(buildTopology(hosts)),
      );
    });

  return program;
}

/**
 * Runs `l4fleet-lab` on argv (without node and script); returns the exit code: 0 ok, 1 failed, 2 usage, 130 / 143 an
 * add-node stopped (and undone) by SIGINT / SIGTERM.
 */
export async function runLabCli(argv: readonly string[], io: LabIo = processIo): Promise<number> {
  try {
    await createLabProgram(io).parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof LabInterrupted) return err.exitCode;
    return err instanceof LabError && err.code === 'OPTION_INVALID' ? 2 : 1;
  }
}
