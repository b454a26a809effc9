/** `l4fleet maglev slot` and the endpoint parser shared with `explain flow` and `member`. */
import { describe, expect, test } from 'vitest';
import { CliError, type CliIo, EXIT_USAGE } from '../io.js';
import { runCli } from '../program.js';
import { parseEndpoint } from './maglev.js';

describe('cli - endpoints', () => {
  test.each([
    ['198.18.0.1:99999', 'src: port 99999 of "198.18.0.1:99999" is not a port (0-65535)'],
    ['[2001:db8::1]:65536', 'src: port 65536 of "[2001:db8::1]:65536" is not a port (0-65535)'],
    [
      '198.18.0.1:1' + '0'.repeat(400),
      `src: port 1${'0'.repeat(400)} of "198.18.0.1:1${'0'.repeat(400)}" is not a port (0-65535)`,
    ],
  ])('%s is a usage error naming the field', (text, message) => {
    expect(() => parseEndpoint(text, 'src')).toThrow(message);
    expect(() => parseEndpoint(text, 'src')).toThrow(expect.objectContaining({ exitCode: EXIT_USAGE }));
    expect(() => parseEndpoint(text, 'src')).toThrow(CliError);
  });

  test.each([
    ['198.18.0.1:0', { address: '198.18.0.1', port: 0 }],
    ['[2001:db8::1]:65535', { address: '2001:db8::1', port: 65535 }],
  ])('%s is taken', (text, want) => {
    expect(parseEndpoint(text, 'src')).toEqual(want);
  });
});

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('cli - maglev table and slot refuse what they would misread', () => {
  test.each([
    // Each was accepted: -o xml printed the table, a=1=2 was weight 1, /tcp/x was tcp, the last -b won.
    [['maglev', 'table', '-b', 'a,b', '-o', 'xml'], '-o: "xml" is not one of table | json'],
    [['maglev', 'table', '-b', 'a=1=2'], 'backends: "a=1=2" is not NAME[=WEIGHT]'],
    [['maglev', 'table', '-b', 'a,b', '-b', 'c'], '-b, --backends: given twice ("a,b", then "c"); give it once'],
    [['maglev', 'slot', '1.2.3.4:1000', '5.6.7.8:80/tcp/x'], 'dst: "5.6.7.8:80/tcp/x" is not DST:DPORT[/tcp|udp]'],
    // Each built a table with no backends (or fewer than written) and exited 0.
    [['maglev', 'table', '-b', ''], '-b: "" lists no backends'],
    [['maglev', 'table', '-b', ',,'], '-b: item 1 of ",," is empty'],
    [['maglev', 'table', '-b', 'a,,b'], '-b: item 2 of "a,,b" is empty'],
    [['maglev', 'table', '-b', 'a,b,'], '-b: item 3 of "a,b," is empty'],
    [['maglev', 'table', '-b', 'a,=2'], '-b: item 2 of "a,=2" has no name'],
  ])('%j: usage error naming it', async (argv, message) => {
    expect(await cli(...argv)).toEqual({ code: 2, out: '', err: `error: ${message}` });
  });

  test('control: the same commands written once are taken', async () => {
    expect((await cli('maglev', 'table', '-b', 'a,b=2', '-s', '7', '-o', 'json')).code).toBe(0);
    expect((await cli('maglev', 'slot', '1.2.3.4:1000', '5.6.7.8:80/udp', '-s', '7')).out).toMatch(/^[0-6]$/);
  });
});
