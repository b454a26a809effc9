/**
 * The agent process of agent-process.ts (spawnAgent), started in a network namespace by tsx: argv = agent.yaml and
 * fleet file as JSON. A memory store and a fake speaker: the data plane the config chooses is the part under test.
 */
import { parseAgentConfig, runAgent } from '@l4fleet/agent';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { parseFleet } from '@l4fleet/config';
import { MemoryFleetStore } from '@l4fleet/store';
import { pino } from 'pino';

const [config, fleet] = process.argv.slice(2).map((a) => JSON.parse(a) as unknown);
const store = new MemoryFleetStore();
await store.apply(parseFleet(fleet));
const running = await runAgent(parseAgentConfig(config), {
  logger: pino({ level: 'warn' }, pino.destination(2)),
  store,
  speaker: createFakeSpeaker(),
});
process.stdout.write('running\n');
process.once('SIGTERM', () => void running.close().then(() => process.exit(0)));
