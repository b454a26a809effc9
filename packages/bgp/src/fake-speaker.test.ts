import { speakerContract } from './contract/speaker-contract.js';
import { createFakeSpeaker } from './fake-speaker.js';

speakerContract('fake', async () => {
  const speaker = createFakeSpeaker();
  return {
    speaker,
    announced: async () => speaker.advertised,
    dispose: () => speaker.close(),
  };
});
