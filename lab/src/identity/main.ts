/**
 * Entry point run inside each backend namespace:
 *   node identity/main.js --name backend1 --listen tcp:::80 --listen udp:198.51.100.11:7000
 * Prints `ready` once every socket is bound (the lab waits for that line in the log).
 */
import { parseListenSpec, startIdentityServer } from './server.js';

const args = process.argv.slice(2);
let name = '';
const listen = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--name') name = args[++i] ?? '';
  else if (args[i] === '--listen') listen.push(parseListenSpec(args[++i] ?? ''));
}
if (!name || listen.length === 0) {
  process.stderr.write('usage: identity --name NAME --listen PROTO:ADDRESS:PORT...\n');
  process.exit(2);
}
const server = await startIdentityServer({ name, listen });
process.stdout.write(`ready ${JSON.stringify(server.bound)}\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void server.close().then(() => process.exit(0));
  });
}
