import { describe, expect, test } from 'vitest';
import { dropIpServernameWarning, IP_SERVERNAME_WARNING_CODE } from './warnings.js';

function fakeProcess() {
  const seen: unknown[][] = [];
  const proc = {
    emitWarning: ((...args: unknown[]) => {
      seen.push(args);
    }) as NodeJS.Process['emitWarning'],
  };
  return { proc, seen };
}

describe('dropIpServernameWarning', () => {
  test("drops Node's DEP0123 in each form emitWarning takes", () => {
    const { proc, seen } = fakeProcess();
    dropIpServernameWarning(proc);
    proc.emitWarning(
      'Setting the TLS ServerName to an IP address ...',
      'DeprecationWarning',
      IP_SERVERNAME_WARNING_CODE,
    );
    proc.emitWarning('Setting the TLS ServerName ...', {
      type: 'DeprecationWarning',
      code: IP_SERVERNAME_WARNING_CODE,
    });
    const err = Object.assign(new Error('Setting the TLS ServerName ...'), { code: IP_SERVERNAME_WARNING_CODE });
    proc.emitWarning(err);
    expect(seen).toEqual([]);
  });

  test('passes every other warning through unchanged, and the undo puts the original back', () => {
    const { proc, seen } = fakeProcess();
    const original = proc.emitWarning;
    const undo = dropIpServernameWarning(proc);
    proc.emitWarning('something else', 'DeprecationWarning', 'DEP0005');
    proc.emitWarning('no code');
    proc.emitWarning('options', { code: 'X1' });
    expect(seen).toEqual([
      ['something else', 'DeprecationWarning', 'DEP0005'],
      ['no code'],
      ['options', { code: 'X1' }],
    ]);
    undo();
    expect(proc.emitWarning).toBe(original);
  });
});
