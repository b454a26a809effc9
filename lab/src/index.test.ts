import { describe, expectTypeOf, test } from 'vitest';
import type {
  AddBackendOptions,
  AppliedFleet,
  Lab,
  OpenOptions,
  RestartAgentOptions,
  RestartableLab,
  restartAgent,
} from './index.js';

// Type-level: the options of the exported API are nameable by library users (checked by tsc, tsconfig.check.json).
describe('lab index - option types', () => {
  test('Lab.addBackend and Lab.open take the exported option types', () => {
    expectTypeOf<Parameters<Lab['addBackend']>[0]>().toEqualTypeOf<AddBackendOptions | undefined>();
    expectTypeOf<Parameters<NonNullable<AddBackendOptions['onFleetApplied']>>[0]>().toEqualTypeOf<AppliedFleet>();
    expectTypeOf<OpenOptions>().toHaveProperty('lockWaitMs');
  });

  test('restartAgent takes the exported RestartableLab and RestartAgentOptions', () => {
    expectTypeOf<Parameters<typeof restartAgent>[0]>().toEqualTypeOf<RestartableLab>();
    expectTypeOf<Parameters<typeof restartAgent>[2]>().toEqualTypeOf<RestartAgentOptions | undefined>();
    expectTypeOf<Lab>().toExtend<RestartableLab>();
  });
});
