/**
 * `l4fleet vip sources add|remove|clear VIP [PREFIX...]`: change the clients one VIP admits (its `sourceRanges`,
 * design note 0013) with the store's guarded read-modify-write (@l4fleet/store editFleet), as `member` changes one
 * member: the edited fleet is validated like a file (a prefix with host bits set, of the other family, ... is refused
 * naming it) and nothing else of the fleet changes. The prefixes choose no member: no churn.
 * `l4fleet vip disable|enable VIP`: the VIP's `state` the same way (a disabled VIP keeps its settings; no node
 * serves or announces it).
 */
import { type Fleet, ipv4InIpv6, parseSourcePrefix, type VipState, vipKey, withVipState } from '@l4fleet/config';
import { editVip, type VipEdit } from '@l4fleet/store';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { editAnnouncementLines } from './apply.js';
import { type FleetCommandContext, withStore, writer } from './context.js';
import { parseVipKeyOrUsage } from './get.js';
import { editOutcomeUnknown } from './store-errors.js';

type Vip = Fleet['vips'][number];
/** The VIP's new prefixes (undefined: every client), or why nothing changes. */
type SourcesEdit = (vip: Vip) => readonly string[] | undefined | { readonly unchanged: string };

/** A prefix argument, canonical (`10.1.2.3` -> `10.1.2.3/32`); a bad one is a usage error naming it. */
function prefixArg(text: string): string {
  const p = parseSourcePrefix(text);
  if (typeof p === 'string') throw new CliError(`prefix ${JSON.stringify(text)} ${p}`, EXIT_USAGE);
  return p.text;
}

/**
 * A prefix to add: also refused as `apply -f` refuses it in a file (parseFleetText), since an IPv4-mapped prefix
 * admits no client. Not for `remove`: a fleet stored before that check may hold one, and removing it is the repair.
 */
function addedPrefixArg(text: string): string {
  const p = parseSourcePrefix(text);
  const none = typeof p === 'string' ? undefined : ipv4InIpv6(p);
  if (none) throw new CliError(`prefix ${JSON.stringify(text)} ${none}`, EXIT_USAGE);
  return prefixArg(text);
}

/** One guarded edit of one VIP (@l4fleet/store editVip); `report` says what the VIP is after it. */
async function editOneVip(
  ctx: FleetCommandContext,
  cmd: Command,
  key: string,
  what: string,
  edit: VipEdit,
  report: (vip: Vip | undefined, fleet: Fleet) => string,
  dryRun = false,
): Promise<void> {
  const wanted = vipKey(parseVipKeyOrUsage(key));
  await withStore(ctx, cmd, async (store) => {
    const result = await editVip(store, wanted, edit, { dryRun, by: writer(cmd) }).catch((err: unknown) =>
      Promise.reject(editOutcomeUnknown(err, 'l4fleet get vips')),
    );
    if ('unchanged' in result) {
      ctx.io.out(`${result.unchanged}: nothing written (revision ${result.revision})`);
      return;
    }
    const done =
      'dryRun' in result ? `dry run, nothing written (revision ${result.revision})` : `revision ${result.revision}`;
    const vip = result.after.vips.find((v) => vipKey(v) === wanted);
    const routes = await editAnnouncementLines(store, result);
    ctx.io.out([`${what} ${wanted}: ${done}`, report(vip, result.after), ...routes].join('\n'));
  });
}

function editSources(
  ctx: FleetCommandContext,
  cmd: Command,
  key: string,
  what: string,
  edit: SourcesEdit,
  dryRun = false,
): Promise<void> {
  return editOneVip(
    ctx,
    cmd,
    key,
    what,
    (vip) => {
      const ranges = edit(vip);
      if (ranges !== undefined && 'unchanged' in ranges) return ranges;
      const { sourceRanges: _old, ...rest } = vip;
      return ranges === undefined ? rest : { ...rest, sourceRanges: ranges };
    },
    (vip) =>
      `admits ${vip?.sourceRanges ? `${vip.sourceRanges.length} prefixes: ${vip.sourceRanges.join(', ')}` : 'every client'}`,
    dryRun,
  );
}

/** Per state: the command that sets it, what it does (its help), and what the nodes now do (its output). */
const STATE_COMMANDS: Record<VipState, { command: string; help: string; result: string }> = {
  enabled: {
    command: 'enable',
    help: 'serve a disabled or draining VIP again: new flows take backends (announced while a member of its pool is usable)',
    result: 'enabled: every node serves it again with its table and announces it while a member is usable',
  },
  draining: {
    command: 'drain',
    help: 'refuse new flows of a VIP and keep its open flows and its route (disable it once its traffic has ended)',
    result:
      'draining: every node keeps announcing it and forwarding its open flows (a TCP connection ECMP moves to another node included), and drops new ones; `vip disable` once its traffic has ended',
  },
  disabled: {
    command: 'disable',
    help: 'stop serving a VIP and keep its settings: every node withdraws it and drops its traffic (its flows end)',
    result:
      'disabled: every node withdraws it (unless another VIP of its address is served) and stops forwarding it; its open flows end',
  },
};

/**
 * What a drain does not keep (vip-state.ts): only TCP connections outside NAT survive a move to another node, since
 * their next segment is not a SYN and the table (the same on every node) sends it to its socket's backend.
 */
function drainCaveat(vip: Vip, fleet: Fleet): string {
  if (fleet.pools.find((p) => p.name === vip.pool)?.forwarding === 'nat') {
    return "\nnote: NAT connections live in one node's conntrack: one that ECMP moves to another node while the VIP drains (a node added, drained or lost) ends there; keep the node set steady";
  }
  if (vip.protocol === 'udp') {
    return '\nnote: a UDP flow that ECMP moves to another node while the VIP drains (a node added, drained or lost) ends there (nothing tells it from a new flow); keep the node set steady';
  }
  return '';
}

/** `vip enable|drain|disable`: the VIP's `state` (vip-state.ts in @l4fleet/config); enabled is written as no field. */
function editState(ctx: FleetCommandContext, cmd: Command, key: string, to: VipState, dryRun = false): Promise<void> {
  const { command, result } = STATE_COMMANDS[to];
  return editOneVip(
    ctx,
    cmd,
    key,
    command,
    (vip) => withVipState(vip, to),
    (vip, fleet) => (to === 'draining' && vip ? `${result}${drainCaveat(vip, fleet)}` : result),
    dryRun,
  );
}

export function registerVip(program: Command, ctx: FleetCommandContext): void {
  const vip = program.command('vip').description("change one VIP's settings (read, modify, apply guarded by revision)");
  for (const to of ['disabled', 'draining', 'enabled'] as const) {
    vip
      .command(STATE_COMMANDS[to].command)
      .description(STATE_COMMANDS[to].help)
      .argument('<vip>', 'ADDR:PORT/PROTO, IPv6 as [ADDR]:PORT/PROTO')
      .option('--dry-run', 'validate and show the result; write nothing')
      .action((key: string, opts: { dryRun?: boolean }, cmd: Command) => editState(ctx, cmd, key, to, opts.dryRun));
  }
  const sources = vip
    .command('sources')
    .description('the clients a VIP admits (its sourceRanges); other clients are dropped on the nodes');
  sources
    .command('add')
    .description('admit these prefixes too (a VIP that admitted every client then admits only these)')
    .argument('<vip>', 'ADDR:PORT/PROTO, IPv6 as [ADDR]:PORT/PROTO')
    .argument('<prefix...>', 'ADDR/LEN (an address alone is its /32 or /128)')
    .option('--dry-run', 'validate and show the result; write nothing')
    .action(async (key: string, prefixes: string[], opts: { dryRun?: boolean }, cmd: Command) => {
      const added = prefixes.map(addedPrefixArg);
      await editSources(
        ctx,
        cmd,
        key,
        'sources add',
        (v) => {
          const have = v.sourceRanges ?? [];
          const fresh = [...new Set(added)].filter((p) => !have.includes(p));
          if (v.sourceRanges && fresh.length === 0) return { unchanged: `vip ${vipKey(v)} admits them already` };
          return [...have, ...fresh];
        },
        opts.dryRun,
      );
    });
  sources
    .command('remove')
    .description('stop admitting these prefixes (their open flows stop too); removing the last one is refused')
    .argument('<vip>', 'ADDR:PORT/PROTO, IPv6 as [ADDR]:PORT/PROTO')
    .argument('<prefix...>', 'ADDR/LEN, as listed by describe vip')
    .option('--dry-run', 'validate and show the result; write nothing')
    .action(async (key: string, prefixes: string[], opts: { dryRun?: boolean }, cmd: Command) => {
      const removed = new Set(prefixes.map(prefixArg));
      await editSources(
        ctx,
        cmd,
        key,
        'sources remove',
        (v) => {
          const have = v.sourceRanges;
          const missing = [...removed].filter((p) => !have?.includes(p));
          if (!have || missing.length > 0) {
            throw new CliError(`vip ${vipKey(v)}: does not list ${missing.join(', ')}`, EXIT_FAILURE);
          }
          const left = have.filter((p) => !removed.has(p));
          if (left.length === 0) {
            // [] would admit nobody (refused in a file too); every client is `clear`, closing a VIP is its pool's.
            throw new CliError(
              `vip ${vipKey(v)}: removing every prefix would admit no client; \`vip sources clear\` admits every client`,
              EXIT_FAILURE,
            );
          }
          return left;
        },
        opts.dryRun,
      );
    });
  sources
    .command('clear')
    .description('admit every client again (remove sourceRanges)')
    .argument('<vip>', 'ADDR:PORT/PROTO, IPv6 as [ADDR]:PORT/PROTO')
    .option('--dry-run', 'validate and show the result; write nothing')
    .action(async (key: string, opts: { dryRun?: boolean }, cmd: Command) => {
      await editSources(
        ctx,
        cmd,
        key,
        'sources clear',
        (v) => (v.sourceRanges ? undefined : { unchanged: `vip ${vipKey(v)} admits every client already` }),
        opts.dryRun,
      );
    });
}
