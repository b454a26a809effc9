/**
 * Entry point run inside each backend namespace (and by the backend image's entrypoint, with its arguments):
 *   node identity/main.js --name backend1 --listen tcp:[::]:80 --listen udp:198.51.100.11:7000
 * Prints `ready` once every socket is bound (the lab waits for that line in the log). A bad argument is the usage
 * line and the error, exit 2; a socket that cannot be bound is the error, exit 1 (neither a stack trace).
 */
import { LabError } from '../errors.js';
import { IDENTITY_USAGE, type IdentityServer, parseIdentityArgs, startIdentityServer } from './server.js';

function fail(text: string, code: number): never {
  process.stderr.write(text);
  process.exit(code);
}

let options: ReturnType<typeof parseIdentityArgs>;
try {
  options = parseIdentityArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof LabError)) throw err;
  fail(`${IDENTITY_USAGE}\nidentity: ${err.message}\n`, 2);
}
let server: IdentityServer;
try {
  server = await startIdentityServer(options);
} catch (err) {
  if (!(err instanceof LabError)) throw err;
  fail(`identity: ${err.message}\n`, 1);
}
process.stdout.write(`ready ${JSON.stringify(server.bound)}\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void server.close().then(() => process.exit(0));
  });
}
