/** Registers every fleet command (they talk to etcd through @l4fleet/store). */
import type { Command } from 'commander';
import { registerApply } from './apply.js';
import { addConnectionOptions, type FleetCommandContext } from './context.js';
import { registerExplain } from './explain.js';
import { registerGet } from './get.js';
import { registerHistory } from './history.js';
import { registerMember } from './member.js';
import { registerProbe } from './probe.js';
import { registerRecover } from './recover.js';
import { registerStatus } from './status.js';
import { registerVip } from './vip.js';

export function registerFleetCommands(program: Command, ctx: FleetCommandContext): void {
  addConnectionOptions(program);
  registerApply(program, ctx);
  registerGet(program, ctx);
  registerMember(program, ctx);
  registerStatus(program, ctx);
  registerRecover(program, ctx);
  registerExplain(program, ctx);
  registerProbe(program, ctx);
  registerVip(program, ctx);
  registerHistory(program, ctx);
}
