/** `l4fleet get vips|pools|members|nodes|fleet` and `l4fleet describe vip ADDR:PORT/PROTO`. */
import {
  backupsServe,
  buildVipTable,
  endpointText,
  type Fleet,
  type MemberRamp,
  memberKey,
  minUpMembersOf,
  notAnnouncedReason,
  parseVipKey,
  takingFlowsText,
  usableMembers,
  type VipState,
  vipKey,
  vipStateOf,
} from '@l4fleet/config';
import type { FleetStore, NodeRecord, NodeStatusReport, NodeView } from '@l4fleet/store';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { integerOption } from '../options.js';
import { printableText } from '../printable.js';
import { renderTable } from '../table.js';
import {
  type ConnectionFlags,
  type FleetCommandContext,
  outputFormat,
  percent,
  renderData,
  withStore,
} from './context.js';
import { checkTypesText, healthCheckLines } from './health-checks.js';
import { fleetAt } from './history.js';
import { type MemberProbeFailures, memberRows, membersTable, probeFailuresByMember } from './members.js';

const NO_BACKEND_NAME = '(none)';

/**
 * `Probe failures:` and a line per member some node sees down: `be1  n1: status 503 (expected 200) since ...`. The
 * reason is printed escaped (printableText): it comes from a node's status record as stored.
 */
function probeFailureLines(
  members: readonly { name: string; probeFailures?: MemberProbeFailures | undefined }[],
): string[] {
  const lines = members.flatMap((m) =>
    m.probeFailures
      ? [
          `  ${m.name}  ${Object.entries(m.probeFailures)
            .map(([node, f]) => `${node}: ${printableText(f.reason)} since ${f.since}`)
            .join('; ')}`,
        ]
      : [],
  );
  return lines.length > 0
    ? ['', 'Probe failures (the node, the reason of the probe that took it down):', ...lines]
    : [];
}

/** A member in slow start: the part of its weight its slots have now (absent: its whole weight). */
function slowStart(ramp: MemberRamp | undefined): { slowStartPercent?: number } {
  return ramp ? { slowStartPercent: ramp.percent } : {};
}

interface GetFlags {
  readonly output: string;
  readonly revision?: string;
  readonly pool?: string;
  readonly down?: boolean;
}

/**
 * The fleet now; none under the prefix (revision 0) is an error naming it, not an empty fleet file with exit 0: a
 * backup taken with a typo in --prefix "succeeded".
 */
async function storedFleet(store: FleetStore, cmd: Command): Promise<Fleet> {
  const { fleet, revision } = await store.getDesired();
  if (revision !== 0) return fleet;
  const prefix = (cmd.optsWithGlobals() as ConnectionFlags).prefix ?? '/l4fleet';
  throw new CliError(`no fleet under prefix ${JSON.stringify(prefix)} (a wrong --prefix or --etcd?)`, EXIT_FAILURE);
}

/**
 * A node as `get nodes -o json|yaml` prints it: every key on every node, `null` for what it has not (no record once
 * its lease is gone, no status before its first report); undefined fields were dropped by JSON, so a drained node
 * without a lease printed only its name and flag. `lease` as `status -o json` has it.
 */
function nodeData(n: NodeView): {
  name: string;
  lease: boolean;
  drained: boolean;
  record: NodeRecord | null;
  status: NodeStatusReport | null;
} {
  return {
    name: n.name,
    lease: n.record !== undefined,
    drained: n.drained,
    record: n.record ?? null,
    status: n.status ?? null,
  };
}

export function registerGet(program: Command, ctx: FleetCommandContext): void {
  program
    .command('get')
    .description('list vips, pools, members or nodes; or print the fleet as a fleet file')
    .argument('<kind>', 'vips | pools | members | nodes | fleet')
    .option('-o, --output <format>', 'table | json | yaml (fleet: yaml unless json)', 'table')
    .option('--revision <r>', 'fleet only: as an earlier write left it (`l4fleet history` lists them)')
    .option('--pool <name>', 'members only: the members of this pool')
    .option('--down', 'members only: those decided down or not yet decided, or that a node sees down')
    .action(async (kind: string, opts: GetFlags, cmd: Command) => {
      const format = outputFormat(opts.output);
      if (!['vips', 'vip', 'pools', 'pool', 'members', 'member', 'nodes', 'node', 'fleet'].includes(kind)) {
        throw new CliError(`kind: ${JSON.stringify(kind)} is not vips | pools | members | nodes | fleet`, EXIT_USAGE);
      }
      if (opts.revision !== undefined && kind !== 'fleet') {
        throw new CliError(`--revision: only with \`get fleet\` (not ${kind})`, EXIT_USAGE);
      }
      for (const [flag, given] of [
        ['--pool', opts.pool !== undefined],
        ['--down', opts.down === true],
      ] as const) {
        if (given && !kind.startsWith('member')) {
          throw new CliError(`${flag}: only with \`get members\` (not ${kind})`, EXIT_USAGE);
        }
      }
      const revision =
        opts.revision === undefined
          ? undefined
          : integerOption(opts.revision, '--revision', 1, Number.MAX_SAFE_INTEGER);
      await withStore(ctx, cmd, async (store) => {
        if (kind === 'fleet') {
          // A fleet file `apply -f` takes back: every field as the nodes read it, defaults included.
          const { hashSeed, ...rest } =
            revision === undefined ? await storedFleet(store, cmd) : await fleetAt(store, revision);
          return ctx.io.out(renderData(format === 'json' ? 'json' : 'yaml', { hashSeed, ...rest }));
        }
        if (kind.startsWith('node')) {
          const nodes = await store.listNodes();
          if (format !== 'table') return ctx.io.out(renderData(format, nodes.map(nodeData)));
          const rows = nodes.map((n) => [
            n.name,
            n.record ? 'up' : 'gone',
            n.drained ? 'yes' : 'no',
            n.record?.address ?? '-',
            n.status ? String(n.status.announced.length) : '-',
            n.status ? (n.status.failStatic ? 'yes' : 'no') : '-',
            n.status ? String(n.status.desiredRevision) : '-',
          ]);
          return ctx.io.out(
            renderTable(['NAME', 'LEASE', 'DRAINED', 'ADDRESS', 'ANNOUNCED', 'FAIL-STATIC', 'REVISION'], rows),
          );
        }
        const { fleet } = await store.getDesired();
        if (kind.startsWith('member')) {
          const { decided, ramps } = await store.getDecided();
          const rows = memberRows(fleet, decided, ramps, await store.listNodes(), {
            ...(opts.pool === undefined ? {} : { pool: opts.pool }),
            ...(opts.down ? { down: true } : {}),
          });
          return ctx.io.out(format === 'table' ? membersTable(rows) : renderData(format, rows));
        }
        if (kind.startsWith('vip')) {
          // Which live nodes announce each VIP, from their status records (what `l4fleet status` reads).
          const live = (await store.listNodes()).filter((n) => n.record !== undefined);
          const announcedBy = (key: string) => live.filter((n) => n.status?.announced.includes(key)).map((n) => n.name);
          if (format !== 'table')
            return ctx.io.out(
              renderData(
                format,
                fleet.vips.map((v) => ({
                  key: vipKey(v),
                  ...v,
                  state: vipStateOf(v),
                  announcedBy: announcedBy(vipKey(v)),
                })),
              ),
            );
          const rows = fleet.vips.map((v) => [
            vipKey(v),
            vipStateOf(v),
            `${announcedBy(vipKey(v)).length}/${live.length}`,
            v.pool,
            String(v.tableSize),
            v.hash,
            v.sourceRanges ? `${v.sourceRanges.length} prefixes` : 'any',
          ]);
          return ctx.io.out(renderTable(['VIP', 'STATE', 'ANNOUNCED', 'POOL', 'TABLE', 'HASH', 'SOURCES'], rows));
        }
        if (format !== 'table') return ctx.io.out(renderData(format, fleet.pools));
        const rows = fleet.pools.map((p) => {
          const by = (s: string) => p.members.filter((m) => m.state === s).length;
          return [
            p.name,
            String(p.members.length),
            String(by('active')),
            String(by('draining')),
            String(by('disabled')),
            checkTypesText(p),
          ];
        });
        return ctx.io.out(renderTable(['POOL', 'MEMBERS', 'ACTIVE', 'DRAINING', 'DISABLED', 'CHECK'], rows));
      });
    });

  program
    .command('describe')
    .description('one VIP in detail: pool, health check, members with state, decided status and table share')
    .argument('<kind>', 'vip')
    .argument('<vip>', 'ADDR:PORT/PROTO, IPv6 as [ADDR]:PORT/PROTO')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (kind: string, key: string, opts: { output: string }, cmd: Command) => {
      const format = outputFormat(opts.output);
      if (kind !== 'vip') throw new CliError(`kind: ${JSON.stringify(kind)} is not vip`, EXIT_USAGE);
      const wanted = vipKey(parseVipKeyOrUsage(key));
      await withStore(ctx, cmd, async (store) => {
        const { fleet, revision } = await store.getDesired();
        const vip = fleet.vips.find((v) => vipKey(v) === wanted);
        if (!vip) throw new CliError(`vip ${wanted}: not in the fleet (revision ${revision})`, EXIT_FAILURE);
        const pool = fleet.pools.find((p) => p.name === vip.pool);
        if (!pool) throw new CliError(`vip ${wanted}: pool "${vip.pool}" does not exist`, EXIT_FAILURE);
        const { decided, ramps } = await store.getDecided();
        const { history } = await store.getTableHistory();
        const nodes = await store.listNodes();
        const failures = probeFailuresByMember(nodes);
        const live = nodes.filter((n) => n.record !== undefined);
        const announcedBy = live.filter((n) => n.status?.announced.includes(wanted)).map((n) => n.name);
        const usable = usableMembers(pool, decided, ramps).length;
        const notAnnounced = notAnnouncedReason(fleet, vip, decided, ramps);
        const table = buildVipTable(fleet, vip, decided, history, ramps);
        const slots = new Map<string, number>();
        for (const i of table.slots) {
          const name = i < 0 ? NO_BACKEND_NAME : (table.backends[i]?.name ?? NO_BACKEND_NAME);
          slots.set(name, (slots.get(name) ?? 0) + 1);
        }
        const members = pool.members.map((m) => ({
          ...m,
          endpoint: endpointText(m.address, m.port),
          decided: decided.get(memberKey(pool.name, m)) ?? 'undecided',
          ...slowStart(ramps.get(memberKey(pool.name, m))),
          slots: slots.get(m.name) ?? 0,
          ...(failures.has(memberKey(pool.name, m)) ? { probeFailures: failures.get(memberKey(pool.name, m)) } : {}),
        }));
        const data = {
          vip: { key: wanted, ...vip, state: vipStateOf(vip) },
          revision,
          hashSeed: table.seed,
          checksum: table.checksum,
          healthCheck: pool.healthCheck,
          ...(pool.additionalHealthChecks ? { additionalHealthChecks: pool.additionalHealthChecks } : {}),
          ...(pool.healthChecksRequired ? { healthChecksRequired: pool.healthChecksRequired } : {}),
          members,
          unservedSlots: slots.get(NO_BACKEND_NAME) ?? 0,
          // The fleet's rule (every node alike) beside what the live nodes' status records say they do.
          membersTakingFlows: usable,
          minUpMembers: minUpMembersOf(pool),
          announceable: notAnnounced === undefined,
          announcedBy,
        };
        if (format !== 'table') return ctx.io.out(renderData(format, data));
        // The backups take new flows now (too few primaries do: backupsServe, minActiveMembers).
        const backups = pool.members.some((m) => m.backup) && backupsServe(pool, decided);
        ctx.io.out(
          [
            `VIP:          ${wanted}${VIP_STATE_NOTES[vipStateOf(vip)]}`,
            `Pool:         ${vip.pool}${pool.onMemberDown === 'reselect' ? ' (onMemberDown reselect)' : ''}${pool.slowStartS ? ` (slowStartS ${pool.slowStartS})` : ''}${pool.minActiveMembers ? ` (minActiveMembers ${pool.minActiveMembers})` : ''}${pool.minUpMembers ? ` (minUpMembers ${pool.minUpMembers})` : ''}${backups ? ' (backups serving)' : ''}`,
            `Table:        ${vip.tableSize} slots, hash ${vip.hash}, seed 0x${table.seed.toString(16)}, checksum ${table.checksum}`,
            ...healthCheckLines(pool, 'Health check: '),
            `Sources:      ${describeSources(vip.sourceRanges)}`,
            `Announced:    by ${announcedBy.length} of ${live.length} live nodes${notAnnounced ? `: ${notAnnounced}` : vipStateOf(vip) === 'draining' ? ' (draining: its open flows only)' : ` (${takingFlowsText(usable)})`}`,
            `Revision:     ${revision}`,
            '',
            renderTable(
              ['MEMBER', 'ENDPOINT', 'WEIGHT', 'STATE', 'DECIDED', 'SLOTS', 'SHARE'],
              members.map((m) => [
                m.name,
                m.endpoint,
                String(m.weight),
                m.backup ? `${m.state} backup` : m.state,
                m.slowStartPercent === undefined ? m.decided : `${m.decided}, slow start ${m.slowStartPercent}%`,
                String(m.slots),
                percent(m.slots / vip.tableSize),
              ]),
            ),
            ...(data.unservedSlots
              ? [`${data.unservedSlots} slots have no backend (every member down, draining or disabled)`]
              : []),
            ...probeFailureLines(members),
          ].join('\n'),
        );
      });
    });
}

/** What `describe vip` says after the VIP's key, per state. */
const VIP_STATE_NOTES: Record<VipState, string> = {
  enabled: '',
  draining:
    ' (draining: every node refuses new flows and forwards the open ones, a TCP connection ECMP moves to another node included; `l4fleet vip disable` once they have ended, `vip enable` takes new flows again)',
  disabled: ' (disabled: no node serves or announces it; `l4fleet vip enable` serves it)',
};

const SHOWN_SOURCES = 8;

/** A VIP's `sourceRanges` for people: `any client`, or the prefixes (the first few; -o json has them all). */
function describeSources(ranges: readonly string[] | undefined): string {
  if (!ranges) return 'any client';
  const more = ranges.length > SHOWN_SOURCES ? ` and ${ranges.length - SHOWN_SOURCES} more (-o json)` : '';
  return `${ranges.slice(0, SHOWN_SOURCES).join(', ')}${more}; other clients are dropped`;
}

export function parseVipKeyOrUsage(text: string) {
  try {
    return parseVipKey(text);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT_USAGE, { cause: err });
  }
}
