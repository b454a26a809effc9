/** The speaker contract against GobgpSpeaker and a real gobgpd (Debian's), read back through gobgpd's own API. */
import { startGobgpd } from '@l4fleet/daemons';
import pino from 'pino';
import { speakerContract } from './contract/speaker-contract.js';
import { GobgpClient } from './gobgp-client.js';
import { createGobgpSpeaker } from './gobgp-speaker.js';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

speakerContract('gobgp (real gobgpd)', async () => {
  const gobgpd = await startGobgpd({ name: 'contract' });
  const speaker = createGobgpSpeaker({ address: gobgpd.apiAddress, logger, backoff: { initialMs: 50, maxMs: 300 } });
  const client = new GobgpClient({ address: gobgpd.apiAddress });
  return {
    speaker,
    announced: async () =>
      [...(await client.listLocalPaths(4)), ...(await client.listLocalPaths(6))].sort((a, b) =>
        a.prefix.localeCompare(b.prefix),
      ),
    dispose: async () => {
      client.close();
      await speaker.close();
      await gobgpd.close();
    },
  };
});
