/**
 * `l4fleet member add|remove|drain|enable|disable|weight` and `l4fleet node drain|undrain`. Member edits are a
 * read-modify-write of the fleet guarded by the revision read (a concurrent change retries on the new state, up to 3
 * times).
 */
import {
  ConfigError,
  type ConfigProblem,
  canonicalAddress,
  capProblems,
  directReturnProblems,
  type Fleet,
  formatProblem,
  MAX_MEMBER_WEIGHT,
  type Member,
  type MemberState,
  NODE_NAME,
  type Pool,
  parseFleet,
  predictChurn,
  RAMP_PERCENTS,
  startedMembers,
} from '@l4fleet/config';
import { editPoolMembers, type FleetStore, type MembersEdit } from '@l4fleet/store';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { integerOption } from '../options.js';

import { editAnnouncementLines } from './apply.js';
import { type FleetCommandContext, percent, withStore, writer } from './context.js';
import { parseEndpoint } from './maglev.js';
import { ineffectiveNotes } from './notes.js';
import { editOutcomeUnknown } from './store-errors.js';

const DRY_RUN_HELP = 'validate and show the predicted churn; write nothing';
interface DryRunOption {
  readonly dryRun?: boolean;
}

function findMember(pool: Pool, ref: string): Member {
  const byName = pool.members.find((m) => m.name === ref);
  if (byName) return byName;
  try {
    const ep = parseEndpoint(ref, 'member', 1);
    const addr = canonicalAddress(ep.address).address;
    const byEndpoint = pool.members.find((m) => m.address === addr && m.port === ep.port);
    if (byEndpoint) return byEndpoint;
  } catch {
    // not an endpoint: fall through to the not-found error
  }
  throw new CliError(`member ${pool.name}/${ref}: no such member (by name or ADDR:PORT)`, EXIT_FAILURE);
}

/**
 * One member edit through the store's guarded read-modify-write (@l4fleet/store editPoolMembers): prints what was
 * written and the predicted churn, or why nothing was.
 */
async function editPool(
  ctx: FleetCommandContext,
  cmd: Command,
  poolName: string,
  what: string | (() => string),
  edit: MembersEdit,
  dryRun = false,
): Promise<void> {
  await withStore(ctx, cmd, async (store) => {
    const result = await editPoolMembers(store, poolName, edit, {
      check: keepsDirectReturn,
      dryRun,
      by: writer(cmd),
    }).catch((err: unknown) => Promise.reject(editOutcomeUnknown(err, `l4fleet get members --pool ${poolName}`)));
    if ('unchanged' in result) {
      ctx.io.out(`${result.unchanged}: nothing written (revision ${result.revision})`);
      return;
    }
    const done =
      'dryRun' in result ? `dry run, nothing written (revision ${result.revision})` : `revision ${result.revision}`;
    const lines = [`${typeof what === 'string' ? what : what()}: ${done}`];
    for (const c of predictChurn(result.before, result.after, result.decided)) {
      lines.push(`churn ${c.vip}: ${percent(c.fraction)} of slots move (${c.changed}/${c.size})`);
    }
    lines.push(...(await editAnnouncementLines(store, result)));
    const pool = result.after.pools.find((p) => p.name === poolName);
    for (const key of startedMembers(result.before, result.after)) {
      const steps = RAMP_PERCENTS.join(', ');
      lines.push(`slow start ${key}: ${steps} % of its weight over ${pool?.slowStartS} s, then all of it`);
    }
    for (const n of ineffectiveNotes(result.after, result.before)) lines.push(`note: ${n}`);
    ctx.io.out(lines.join('\n'));
  });
}

/**
 * A member edit may not break direct server return; a stored fleet that already does is proxy-only (applied with
 * --proxy-only), and its edits are left alone.
 */
function keepsDirectReturn(before: Fleet, after: Fleet): void {
  if (directReturnProblems(before).length > 0) return;
  const broken = directReturnProblems(after);
  if (broken.length > 0) throw new CliError(capProblems(broken).map(formatProblem), EXIT_FAILURE);
}

/** A member already in `state` is left alone: no revision written, as `member weight` and the VIP edits. */
function setState(state: MemberState): (ref: string) => MembersEdit {
  return (ref) => (pool) => {
    const m = findMember(pool, ref);
    if (m.state === state) return { unchanged: `member ${pool.name}/${ref} is ${state} already` };
    return pool.members.map((x) => (x === m ? { ...x, state } : x));
  };
}

interface AddFlags {
  readonly name?: string;
  readonly weight?: string;
  readonly state: string;
  readonly backup?: boolean;
}

/**
 * The member `member add` writes, checked by the fleet parser's own rules (parseFleet on a pool holding just it) before
 * the store is opened: a bad --state, --name or address was refused only by the write's validation, exit 1, naming
 * the stored fleet's path (`pools[0].members[2].state`) instead of the flag.
 */
function newMember(endpoint: string, flags: AddFlags): Member {
  const ep = parseEndpoint(endpoint, 'endpoint', 1);
  const weight = flags.weight === undefined ? undefined : integerOption(flags.weight, '--weight', 0, MAX_MEMBER_WEIGHT);
  const member = {
    address: ep.address,
    port: ep.port,
    state: flags.state,
    ...(flags.name !== undefined ? { name: flags.name } : {}),
    ...(weight !== undefined ? { weight } : {}),
    ...(flags.backup ? { backup: true } : {}),
  };
  try {
    parseFleet({ pools: [{ name: 'member-add', members: [member] }] });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new CliError(
      err.problems.map((p) => addProblem(p, endpoint)),
      EXIT_USAGE,
      { cause: err },
    );
  }
  return member as Member;
}

const ADD_FLAGS: Readonly<Record<string, string>> = { name: '--name', state: '--state', weight: '--weight' };

/** A problem of the probe fleet, named as the command line has it: `--state: "Active" is not one of ...`. */
function addProblem(p: ConfigProblem, endpoint: string): string {
  const field = /^pools\[0\]\.members\[0\]\.(\w+)$/.exec(p.path)?.[1] ?? '';
  if (field === 'address' || field === 'port') return `endpoint: ${JSON.stringify(endpoint)}: ${p.message}`;
  const flag = ADD_FLAGS[field];
  return flag ? `${flag}: ${p.message}` : formatProblem(p);
}

export function registerMember(program: Command, ctx: FleetCommandContext): void {
  const member = program
    .command('member')
    .description('change one pool member (read, modify, apply guarded by revision)');
  member
    .command('add')
    .argument('<pool>', 'pool name')
    .argument('<endpoint>', 'ADDR:PORT, IPv6 as [ADDR]:PORT')
    .option('--name <name>', 'member name (default ADDR:PORT)')
    .option('--weight <n>', 'weight (default 1)')
    .option('--state <state>', 'active | draining | disabled', 'active')
    .option('--backup', 'a backup member: takes flows only while no other member of the pool does')
    .option('--dry-run', DRY_RUN_HELP)
    .action(async (pool: string, endpoint: string, opts: AddFlags & DryRunOption, cmd: Command) => {
      const added = newMember(endpoint, opts);
      await editPool(
        ctx,
        cmd,
        pool,
        `added ${pool}/${opts.name ?? endpoint}`,
        (p) => [...p.members, added],
        opts.dryRun,
      );
    });
  member
    .command('remove')
    .argument('<pool>', 'pool name')
    .argument('<member>', 'member name or ADDR:PORT')
    .option('--dry-run', DRY_RUN_HELP)
    .action(async (pool: string, ref: string, opts: DryRunOption, cmd: Command) => {
      await editPool(
        ctx,
        cmd,
        pool,
        `removed ${pool}/${ref}`,
        (p) => {
          const m = findMember(p, ref);
          return p.members.filter((x) => x !== m);
        },
        opts.dryRun,
      );
    });
  for (const [name, state, help] of [
    ['drain', 'draining', 'no new flows; existing flows stay (weight 0 in the table)'],
    ['enable', 'active', 'back to active'],
    ['disable', 'disabled', 'out of the table'],
  ] as const) {
    member
      .command(name)
      .description(help)
      .argument('<pool>', 'pool name')
      .argument('<member>', 'member name or ADDR:PORT')
      .option('--dry-run', DRY_RUN_HELP)
      .action(async (pool: string, ref: string, opts: DryRunOption, cmd: Command) => {
        await editPool(ctx, cmd, pool, `${state} ${pool}/${ref}`, setState(state)(ref), opts.dryRun);
      });
  }

  member
    .command('weight')
    .description("set a member's weight: its share of table slots (0: no new flows, as drain)")
    .argument('<pool>', 'pool name')
    .argument('<member>', 'member name or ADDR:PORT')
    .argument('<weight>', `decimal digits 0-${MAX_MEMBER_WEIGHT}`)
    .option('--dry-run', DRY_RUN_HELP)
    .action(async (pool: string, ref: string, value: string, opts: DryRunOption, cmd: Command) => {
      const weight = integerOption(value, 'weight', 0, MAX_MEMBER_WEIGHT);
      let was = weight;
      await editPool(
        ctx,
        cmd,
        pool,
        () => `weight ${pool}/${ref} ${was} -> ${weight}`,
        (p) => {
          const m = findMember(p, ref);
          was = m.weight;
          if (m.weight === weight) return { unchanged: `weight ${pool}/${ref} is ${weight} already` };
          return p.members.map((x) => (x === m ? { ...x, weight } : x));
        },
        opts.dryRun,
      );
    });

  const node = program.command('node').description('operator actions on balancer nodes');
  for (const [name, drained] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    node
      .command(name)
      .description(
        drained
          ? 'RFC 8326 graceful shutdown, then withdraw the node from BGP (flag survives agent restarts)'
          : 'clear the drain flag',
      )
      .argument('<name>', 'node name')
      .option('--force', `${name} a node that is not registered (yet): the flag waits for it`)
      .action(async (nodeName: string, opts: { force?: boolean }, cmd: Command) => {
        if (!NODE_NAME.test(nodeName)) {
          throw new CliError(
            `node: ${JSON.stringify(nodeName)} is not a node name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)`,
            EXIT_USAGE,
          );
        }
        await withStore(ctx, cmd, async (store) => {
          if (!opts.force) await assertNodeKnown(store, nodeName, name);
          await store.setNodeDrain(nodeName, drained);
          ctx.io.out(`node ${nodeName}: ${drained ? 'drained' : 'undrained'}`);
        });
      });
  }
}

/**
 * A drain for a name no agent registered is almost always a typo, and would leave a phantom node behind; the
 * store's listNodes() has every registered node and every node with a drain flag.
 */
async function assertNodeKnown(store: FleetStore, nodeName: string, verb: string): Promise<void> {
  const nodes = await store.listNodes();
  if (nodes.some((n) => n.name === nodeName)) return;
  const known = nodes.map((n) => n.name).sort();
  const list = known.length === 0 ? 'none' : known.slice(0, 10).join(', ') + (known.length > 10 ? ', ...' : '');
  throw new CliError(
    `node ${JSON.stringify(nodeName)}: no such node (registered: ${list}); pass --force to ${verb} it before its agent registers`,
    EXIT_FAILURE,
  );
}
