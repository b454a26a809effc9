/**
 * Hostile input against the real CLI and a real etcd (issue 12): fleet files and command-line arguments a hostile
 * or careless user can give. For every case: the exit code, a message that names the field and the value, and an
 * etcd that did not change (same revision, same keys and values under the prefix). The pure tables of the same
 * rules are packages/config/src/hostile.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CliIo, runCli } from '@l4fleet/cli';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

/** `levels` nested anchors, each list holding 9 aliases of the one before: 9^levels values if expanded. */
function aliasBomb(levels: number): string {
  let text = 'a0: &a0 [x,x,x,x,x,x,x,x,x]\n';
  for (let i = 1; i < levels; i++) text += `a${i}: &a${i} [${new Array(9).fill(`*a${i - 1}`).join(',')}]\n`;
  return text;
}

type Raw = Record<string, unknown>;
type RawPool = { name: string; healthCheck: Raw; members: Raw[]; [k: string]: unknown };
type RawFleet = { hashSeed?: unknown; pools: RawPool[]; vips: Raw[]; [k: string]: unknown };

/** The stored fleet every case starts from: web (tcp, http check on 8080) and dns (udp) pools. */
const BASE: RawFleet = {
  hashSeed: '0x5eed',
  pools: [
    {
      name: 'web',
      healthCheck: { type: 'http', port: 8080, path: '/healthz' },
      members: [
        { name: 'be1', address: '198.18.0.21', port: 80 },
        { name: 'be2', address: '198.18.0.22', port: 80 },
        { name: 'be3', address: '198.18.0.23', port: 80 },
      ],
    },
    {
      name: 'dns',
      healthCheck: { type: 'udp', payload: 'ping' },
      members: [
        { address: '198.18.0.31', port: 53 },
        { address: '198.18.0.32', port: 53 },
      ],
    },
  ],
  vips: [
    { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
    { address: '198.51.100.11', port: 53, protocol: 'udp', pool: 'dns', tableSize: 251 },
  ],
};

/** BASE with one change made by `edit` (on a deep copy). */
function mut(edit: (f: RawFleet) => void): RawFleet {
  const f = structuredClone(BASE);
  edit(f);
  return f;
}
const web = (f: RawFleet) => f.pools[0] as RawPool;
const m0 = (f: RawFleet) => web(f).members[0] as Raw;
const v0 = (f: RawFleet) => f.vips[0] as Raw;

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
function file(content: string | Buffer | RawFleet, ext = 'yaml'): string {
  const f = join(dir, `f${fileCount++}.${ext}`);
  writeFileSync(f, typeof content === 'string' || Buffer.isBuffer(content) ? content : JSON.stringify(content));
  return f;
}
const json = (f: RawFleet) => file(f, 'json');

/** A fleet-file case: `apply -f` of `fleet`, refused with exit 1 and a message containing every `says`. */
type Case = readonly [name: string, argv: () => string[], code: number, says: readonly string[]];
const apply = (name: string, f: () => string, says: string[], code = 1): Case => [
  name,
  () => ['apply', '-f', f()],
  code,
  says,
];

const FILE_CASES: Case[] = [
  apply('vip port out of range', () => json(mut((f) => (v0(f).port = 70000))), ['vips[0].port', '70000']),
  apply('vip port 0', () => json(mut((f) => (v0(f).port = 0))), ['vips[0].port', '0 is not a port']),
  apply('vip port as a string', () => json(mut((f) => (v0(f).port = '80'))), ['vips[0].port', '"80"']),
  apply('vip port fractional', () => json(mut((f) => (v0(f).port = 80.5))), ['vips[0].port', '80.5']),
  apply('vip protocol sctp', () => json(mut((f) => (v0(f).protocol = 'sctp'))), ['vips[0].protocol', '"sctp"']),
  apply('vip pool missing', () => json(mut((f) => (v0(f).pool = 'nope'))), ['vips[0].pool', '"nope"']),
  apply('vip address 300', () => json(mut((f) => (v0(f).address = '198.51.100.300'))), [
    'vips[0].address',
    '"198.51.100.300"',
  ]),
  apply('vip address empty', () => json(mut((f) => (v0(f).address = ''))), ['vips[0].address', '""']),
  apply('vip address loopback', () => json(mut((f) => (v0(f).address = '127.0.0.1'))), [
    'vips[0].address',
    '"127.0.0.1" is a loopback',
  ]),
  apply('vip address unspecified', () => json(mut((f) => (v0(f).address = '0.0.0.0'))), [
    'vips[0].address',
    '"0.0.0.0" is an unspecified',
  ]),
  apply('vip address broadcast', () => json(mut((f) => (v0(f).address = '255.255.255.255'))), [
    'vips[0].address',
    '"255.255.255.255" is the broadcast',
  ]),
  apply('vip address multicast', () => json(mut((f) => (v0(f).address = '224.0.0.5'))), [
    'vips[0].address',
    '"224.0.0.5" is a multicast',
  ]),
  apply('vip address link-local', () => json(mut((f) => (v0(f).address = '169.254.0.1'))), [
    'vips[0].address',
    '"169.254.0.1" is a link-local',
  ]),
  apply('vip address reserved', () => json(mut((f) => (v0(f).address = '250.1.2.3'))), [
    'vips[0].address',
    '"250.1.2.3" is a reserved',
  ]),
  apply('vip tableSize not prime', () => json(mut((f) => (v0(f).tableSize = 65536))), [
    'vips[0].tableSize',
    '65536 is not prime',
  ]),
  apply('vip tableSize not above the pool', () => json(mut((f) => (v0(f).tableSize = 3))), [
    'vips[0].tableSize',
    '3 must be larger',
  ]),
  apply('vip tableSize over the ceiling', () => json(mut((f) => (v0(f).tableSize = 2_097_169))), [
    'vips[0].tableSize',
    '2097169',
  ]),
  apply('vip tableSize negative', () => json(mut((f) => (v0(f).tableSize = -7))), ['vips[0].tableSize', '-7']),
  apply('vip hash random', () => json(mut((f) => (v0(f).hash = 'random'))), ['vips[0].hash', '"random"']),
  apply('vip unknown field', () => json(mut((f) => (v0(f).weight = 1))), ['vips[0].weight', 'not a known field']),
  apply('duplicate vip', () => json(mut((f) => f.vips.push({ ...v0(f) }))), [
    'vips[2]',
    '198.51.100.10:80/tcp duplicates vips[0]',
  ]),
  apply('member port is not the VIP port (DSR)', () => json(mut((f) => (m0(f).port = 8080))), [
    'pools[0].members[0].port',
    '8080 differs from the port of vips[0] 198.51.100.10:80/tcp',
  ]),
  apply(
    'member port differs under gue too',
    () =>
      json(
        mut((f) => {
          web(f).forwarding = 'gue';
          m0(f).port = 81;
        }),
      ),
    ['pools[0].members[0].port', '81 differs', 'forwarding gue'],
  ),
  apply('member loopback', () => json(mut((f) => (m0(f).address = '127.0.0.1'))), [
    'pools[0].members[0].address',
    '"127.0.0.1" is a loopback',
  ]),
  apply('member multicast', () => json(mut((f) => (m0(f).address = '239.0.0.1'))), [
    'pools[0].members[0].address',
    '"239.0.0.1" is a multicast',
  ]),
  apply('member unspecified', () => json(mut((f) => (m0(f).address = '0.0.0.0'))), [
    'pools[0].members[0].address',
    '"0.0.0.0"',
  ]),
  apply('member is a VIP', () => json(mut((f) => (m0(f).address = '198.51.100.11'))), [
    'pools[0].members[0].address',
    '"198.51.100.11" is a VIP of this fleet',
  ]),
  apply('member address not an IP', () => json(mut((f) => (m0(f).address = 'be1.example'))), [
    'pools[0].members[0].address',
    '"be1.example"',
  ]),
  apply('IPv6 member behind an IPv4 VIP', () => json(mut((f) => (m0(f).address = '2001:db8::21'))), [
    'vips[0].pool',
    'IPv6 members but the VIP 198.51.100.10 is IPv4',
  ]),
  apply('member weight negative', () => json(mut((f) => (m0(f).weight = -1))), [
    'pools[0].members[0].weight',
    '-1 is not a weight',
  ]),
  apply('member weight too large', () => json(mut((f) => (m0(f).weight = 65536))), [
    'pools[0].members[0].weight',
    '65536',
  ]),
  apply('member weight as a string', () => json(mut((f) => (m0(f).weight = '2'))), [
    'pools[0].members[0].weight',
    '"2"',
  ]),
  apply('member weight fractional', () => json(mut((f) => (m0(f).weight = 1.5))), [
    'pools[0].members[0].weight',
    '1.5',
  ]),
  apply('member state off', () => json(mut((f) => (m0(f).state = 'off'))), ['pools[0].members[0].state', '"off"']),
  apply('member name empty', () => json(mut((f) => (m0(f).name = ''))), ['pools[0].members[0].name', '""']),
  apply('member name with a space', () => json(mut((f) => (m0(f).name = 'be 1'))), [
    'pools[0].members[0].name',
    '"be 1"',
  ]),
  apply('member name of 200 characters', () => json(mut((f) => (m0(f).name = 'b'.repeat(200)))), [
    'pools[0].members[0].name',
    `"${'b'.repeat(120)}"...`,
  ]),
  apply('duplicate member endpoint', () => json(mut((f) => web(f).members.push({ ...m0(f), name: 'x' }))), [
    'pools[0].members[3]',
    '198.18.0.21:80 duplicates members[0]',
  ]),
  apply('duplicate member name', () => json(mut((f) => web(f).members.push({ ...m0(f), address: '198.18.0.24' }))), [
    'pools[0].members[3].name',
    '"be1" duplicates members[0]',
  ]),
  apply('pool without members', () => json(mut((f) => (web(f).members = []))), [
    'pools[0].members',
    'the pool has no members',
  ]),
  apply('members not a list', () => json(mut((f) => ((web(f) as Raw).members = 'be1'))), [
    'pools[0].members',
    '"be1" is not a list',
  ]),
  apply(
    'pool name with a slash',
    () =>
      json(
        mut((f) => {
          web(f).name = 'web/1';
          v0(f).pool = 'web/1';
        }),
      ),
    ['pools[0].name', '"web/1"'],
  ),
  apply('duplicate pool', () => json(mut((f) => f.pools.push({ ...web(f) }))), [
    'pools[2].name',
    '"web" is defined more than once',
  ]),
  apply('health check icmp', () => json(mut((f) => (web(f).healthCheck.type = 'icmp'))), [
    'pools[0].healthCheck.type',
    '"icmp"',
  ]),
  apply('health interval 50 ms', () => json(mut((f) => (web(f).healthCheck.intervalMs = 50))), [
    'pools[0].healthCheck.intervalMs',
    '50',
  ]),
  apply('health timeout longer than interval', () => json(mut((f) => (web(f).healthCheck.timeoutMs = 5000))), [
    'pools[0].healthCheck.timeoutMs',
    '5000 is longer than intervalMs (2000)',
  ]),
  apply('health timeout equal to interval', () => json(mut((f) => (web(f).healthCheck.timeoutMs = 2000))), [
    'pools[0].healthCheck.timeoutMs',
    '2000 equals intervalMs (2000)',
  ]),
  apply('health rise 0', () => json(mut((f) => (web(f).healthCheck.rise = 0))), [
    'pools[0].healthCheck.rise',
    '0 is not a count',
  ]),
  apply('health fall 101', () => json(mut((f) => (web(f).healthCheck.fall = 101))), [
    'pools[0].healthCheck.fall',
    '101',
  ]),
  apply('http expectStatus 100', () => json(mut((f) => (web(f).healthCheck.expectStatus = 100))), [
    'pools[0].healthCheck.expectStatus',
    '100 is an informational',
  ]),
  apply('http expectStatus 600', () => json(mut((f) => (web(f).healthCheck.expectStatus = 600))), [
    'pools[0].healthCheck.expectStatus',
    '600',
  ]),
  apply('http path relative', () => json(mut((f) => (web(f).healthCheck.path = 'healthz'))), [
    'pools[0].healthCheck.path',
    '"healthz"',
  ]),
  apply('http path with CRLF', () => json(mut((f) => (web(f).healthCheck.path = '/h\r\nX: 1'))), [
    'pools[0].healthCheck.path',
    '"/h\\r\\nX: 1" is not a request path',
  ]),
  apply('payload on an http check', () => json(mut((f) => (web(f).healthCheck.payload = 'x'))), [
    'pools[0].healthCheck.payload',
    'applies only to type tcp | udp | agent, not http',
  ]),
  apply(
    'udp payload over a datagram',
    () => json(mut((f) => ((f.pools[1] as RawPool).healthCheck.payload = 'p'.repeat(2000)))),
    ['pools[1].healthCheck.payload', '2000 bytes'],
  ),
  apply('http check of a udp VIP', () => json(mut((f) => ((f.pools[1] as RawPool).healthCheck = { type: 'http' }))), [
    'pools[1].healthCheck.type',
    '"http" probes TCP',
    '198.51.100.11:53/udp',
  ]),
  apply('forwarding dsr', () => json(mut((f) => (web(f).forwarding = 'dsr'))), ['pools[0].forwarding', '"dsr"']),
  apply('guePort 0', () => json(mut((f) => (web(f).guePort = 0))), ['pools[0].guePort', '0 is not a port']),
  apply('hashSeed negative', () => json(mut((f) => (f.hashSeed = -1))), ['hashSeed', '-1']),
  apply('hashSeed 2^32', () => json(mut((f) => (f.hashSeed = 2 ** 32))), ['hashSeed', '4294967296']),
  apply('hashSeed text', () => json(mut((f) => (f.hashSeed = 'abc'))), ['hashSeed', '"abc"']),
  apply('unknown top-level field', () => json(mut((f) => (f.vipz = []))), ['vipz', 'is not a known field']),
  apply('vips not a list', () => json(mut((f) => ((f as Raw).vips = 'all'))), ['vips', '"all" is not a list']),
  apply('pools not a list', () => json(mut((f) => ((f as Raw).pools = 7))), ['pools', '7 is not a list']),
  apply('__proto__ key', () => file('{"__proto__": {"admin": true}, "pools": [], "vips": []}', 'json'), [
    '__proto__',
    'is not a known field',
  ]),
  apply('1,001 VIPs', () => json(mut((f) => (f.vips = Array.from({ length: 1001 }, () => ({}))))), [
    'vips',
    '1,001 VIPs',
    'MAX_VIPS',
  ]),
  apply(
    'a pool of 100,001 members',
    () => json(mut((f) => (web(f).members = Array.from({ length: 100_001 }, () => ({}))))),
    ['pools[0].members', '100,001 members', 'MAX_MEMBERS_PER_POOL'],
  ),
  apply('a 17 MB file', () => file(Buffer.alloc(17 * 1024 * 1024, 0x20)), ['17,825,792 bytes', 'MAX_FLEET_BYTES']),
  apply('/dev/zero', () => '/dev/zero', ['-f: /dev/zero', 'does not end within the limit', 'MAX_FLEET_BYTES']),
  apply('a NUL byte', () => file('pools: []\n\0vips: []\n'), ['NUL byte at offset 10']),
  apply('brackets 10,000 deep', () => file(`vips: ${'['.repeat(10_000)}`), ['nests brackets 10,000 deep']),
  apply('1.6 M YAML lines', () => file(`vips:\n${'- 1\n'.repeat(1_600_000)}`), [
    '1,600,001 YAML nodes',
    'MAX_YAML_NODES',
  ]),
  apply('alias bomb', () => file(aliasBomb(6)), ['Excessive alias count']),
  apply('duplicate YAML keys', () => file('pools: []\npools: []\n'), ['Map keys must be unique']),
  apply('YAML syntax', () => file('pools: [\n'), ['not valid YAML']),
  apply('JSON syntax', () => file('{"pools": ', 'json'), ['not valid JSON']),
  apply('empty file', () => file(''), ['the fleet file is null, not an object']),
  apply('a scalar', () => file('42\n'), ['the fleet file is 42, not an object']),
  apply('binary garbage', () => file(Buffer.from(Array.from({ length: 4096 }, (_, i) => 0x80 + (i % 127)))), [
    'the fleet file is',
    'not an object',
  ]),
  apply('no such file', () => join(dir, 'nope.yaml'), ['-f: cannot read', 'nope.yaml', 'ENOENT']),
  apply('a directory', () => dir, ['-f: cannot read', dir]),
];

// Guards (item 7): valid files that would move or drop every flow need their flag; without it nothing is written.
const GUARD_CASES: Case[] = [
  [
    'empty prefix: a new fleet with a new seed',
    () => ['apply', '-f', json({ ...BASE, hashSeed: undefined }), '--prefix', '/hostile-typo'],
    1,
    ['no fleet under prefix "/hostile-typo"', 'a new random hash seed', '--new-fleet'],
  ],
  [
    'empty prefix, seed from the file',
    () => ['apply', '-f', json(BASE), '--prefix', '/hostile-typo'],
    1,
    ['no fleet under prefix "/hostile-typo"', 'hash seed 0x5eed from the file', '--new-fleet'],
  ],
  apply('a changed hash seed', () => json(mut((f) => (f.hashSeed = 1))), ['hashSeed: 0x5eed -> 0x1', '--change-seed']),
  apply('a file without vips', () => json(mut((f) => (f.vips = []))), [
    'all 2 VIPs would be withdrawn',
    '--remove-all-vips',
  ]),
  apply('an empty fleet object', () => file('{}', 'json'), ['all 2 VIPs would be withdrawn', '--remove-all-vips']),
];

const EP = '198.18.0.40:80';
const ARG_CASES: Case[] = [
  ['--weight empty', () => ['member', 'add', 'web', EP, '--weight', ''], 2, ['--weight', '""']],
  ['--weight with a space', () => ['member', 'add', 'web', EP, '--weight', ' 1'], 2, ['--weight', '" 1"']],
  ['--weight 1e3', () => ['member', 'add', 'web', EP, '--weight', '1e3'], 2, ['--weight', '"1e3"']],
  ['--weight -1', () => ['member', 'add', 'web', EP, '--weight', '-1'], 2, ['--weight', '"-1"']],
  ['--weight 65536', () => ['member', 'add', 'web', EP, '--weight', '65536'], 2, ['--weight', '"65536"']],
  ['--weight 0x10', () => ['member', 'add', 'web', EP, '--weight', '0x10'], 2, ['--weight', '"0x10"']],
  ['--weight 2.5', () => ['member', 'add', 'web', EP, '--weight', '2.5'], 2, ['--weight', '"2.5"']],
  ['member add loopback', () => ['member', 'add', 'web', '127.0.0.1:80'], 1, ['address', '"127.0.0.1" is a loopback']],
  ['member add link-local v4', () => ['member', 'add', 'web', '169.254.7.7:80'], 2, ['address', '"169.254.7.7"']],
  ['member add on another port', () => ['member', 'add', 'web', '198.18.0.40:8080'], 1, ['port', '8080 differs']],
  ['member add port 99999', () => ['member', 'add', 'web', '198.18.0.40:99999'], 2, ['port', '99999']],
  ['member add not an endpoint', () => ['member', 'add', 'web', 'garbage'], 2, ['endpoint', '"garbage"']],
  ['member add --state bogus', () => ['member', 'add', 'web', EP, '--state', 'bogus'], 2, ['--state', '"bogus"']],
  ['member add --name empty', () => ['member', 'add', 'web', EP, '--name', ''], 2, ['--name', '""']],
  ['member add --name with a space', () => ['member', 'add', 'web', EP, '--name', 'a b'], 2, ['--name', '"a b"']],
  ['member add to a missing pool', () => ['member', 'add', 'nope', EP], 1, ['pool "nope"', 'does not exist']],
  ['member add a duplicate', () => ['member', 'add', 'web', '198.18.0.21:80'], 1, ['198.18.0.21:80 duplicates']],
  ['member weight empty', () => ['member', 'weight', 'web', '198.18.0.21:80', ''], 2, ['weight', '""']],
  ['member weight 65536', () => ['member', 'weight', 'web', '198.18.0.21:80', '65536'], 2, ['weight', '"65536"']],
  ['member weight -1', () => ['member', 'weight', 'web', '198.18.0.21:80', '-1'], 2, ['weight', '"-1"']],
  ['member weight missing', () => ['member', 'weight', 'web', 'nosuch', '2'], 1, ['web/nosuch', 'no such member']],
  ['member remove missing', () => ['member', 'remove', 'web', 'nosuch'], 1, ['web/nosuch', 'no such member']],
  ['member drain missing', () => ['member', 'drain', 'web', '198.18.0.99:80'], 1, ['web/198.18.0.99:80']],
  ['member remove the last of a pool', () => ['member', 'remove', 'dns', '198.18.0.31:53'], 0, []],
  [
    'member remove the very last',
    () => ['member', 'remove', 'dns', '198.18.0.32:53'],
    1,
    ['pools[1].members', 'no members'],
  ],
  ['node drain of an unknown node', () => ['node', 'drain', 'ghost'], 1, ['node "ghost"', 'no such node', '--force']],
  ['node undrain of an unknown node', () => ['node', 'undrain', 'ghost'], 1, ['node "ghost"', 'no such node']],
  ['node drain of a bad name', () => ['node', 'drain', 'bad name!'], 2, ['node', '"bad name!"']],
  ['node drain of an empty name', () => ['node', 'drain', ''], 2, ['node', '""']],
  ['maglev table weight empty', () => ['maglev', 'table', '-b', 'a=,b'], 2, ['backends: a weight', '""']],
  ['maglev table weight text', () => ['maglev', 'table', '-b', 'a=x'], 2, ['backends: a weight', '"x"']],
  ['maglev table size not prime', () => ['maglev', 'table', '-b', 'a', '-s', '100'], 2, ['100', 'prime']],
  ['maglev table size empty', () => ['maglev', 'table', '-b', 'a', '-s', ''], 2, ['--size', '""']],
  ['maglev table size huge', () => ['maglev', 'table', '-b', 'a', '-s', '99999999999'], 2, ['--size', '"99999999999"']],
  [
    'maglev slot seed text',
    () => ['maglev', 'slot', '198.18.0.1:1', '198.51.100.10:80', '--seed', 'abc'],
    2,
    ['--seed', '"abc"'],
  ],
  [
    'maglev slot seed over 32 bits',
    () => ['maglev', 'slot', '198.18.0.1:1', '198.51.100.10:80', '--seed', '0x1ffffffff'],
    2,
    ['--seed', '"0x1ffffffff"'],
  ],
  [
    'maglev slot protocol',
    () => ['maglev', 'slot', '198.18.0.1:1', '198.51.100.10:80/icmp'],
    2,
    ['protocol', '"icmp"'],
  ],
  ['explain flow garbage', () => ['explain', 'flow', 'garbage', '198.51.100.10:80/tcp'], 2, ['"garbage"']],
  [
    'describe an unknown VIP',
    () => ['describe', 'vip', '198.51.100.99:80/tcp'],
    1,
    ['198.51.100.99:80/tcp', 'not in the fleet'],
  ],
  ['describe a bad VIP key', () => ['describe', 'vip', '198.51.100.99'], 2, ['"198.51.100.99"']],
  ['get widgets', () => ['get', 'widgets'], 2, ['kind', '"widgets"']],
  ['get -o xml', () => ['get', 'vips', '-o', 'xml'], 2, ['-o', '"xml"']],
  ['apply -o xml', () => ['apply', '-f', json(BASE), '-o', 'xml'], 2, ['-o', '"xml"']],
  ['--etcd ftp', () => ['get', 'vips', '--etcd', 'ftp://127.0.0.1:1'], 2, ['--etcd', '"ftp://127.0.0.1:1"']],
  ['--user without --password', () => ['get', 'vips', '--user', 'root'], 2, ['--user and --password']],
];

describe('hostile input - CLI and fleet files against a real etcd', () => {
  let etcd: EtcdHandle;
  let client: Etcd3;
  let global: string[];
  const prefix = '/hostile';

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    // Connection flags first: a case's own --prefix or --etcd comes later and wins.
    const code = await runCli([...global, ...argv], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  /** etcd's revision and a digest of every key and value: equal before and after means nothing was written. */
  async function snapshot(): Promise<{ revision: string; digest: string }> {
    const res = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    const h = createHash('sha256');
    for (const kv of res.kvs) h.update(kv.key).update('\0').update(kv.value).update('\0');
    return { revision: res.header.revision, digest: h.digest('hex') };
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
    global = ['--etcd', etcd.endpoints.join(','), '--prefix', prefix];
    const base = await cli('apply', '-f', json(BASE), '--new-fleet');
    expect(base.err).toBe('');
    expect(base.code).toBe(0);
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  test('control: a read changes nothing, so the revision check below means what it says', async () => {
    const before = await snapshot();
    expect((await cli('get', 'vips')).code).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  test.each([...FILE_CASES, ...GUARD_CASES, ...ARG_CASES])('%s', async (_name, argv, code, says) => {
    const before = await snapshot();
    const r = await cli(...argv());
    expect({ code: r.code, err: r.err }).toMatchObject({ code });
    for (const s of says) expect(r.err).toContain(s);
    if (code !== 0) {
      expect(r.err).toMatch(/^error: /);
      expect(r.err.length).toBeLessThan(20_000); // a bounded message, whatever the input
      expect(await snapshot()).toEqual(before);
    }
  });

  test('the guards give way to their flags, and say what they did', async () => {
    const seed = await cli('apply', '-f', json(mut((f) => (f.hashSeed = 1))), '--change-seed');
    expect(seed.err).toBe('');
    expect(seed.code).toBe(0);
    expect(seed.out).toContain('note (--change-seed): hashSeed: 0x5eed -> 0x1');
    const noVips = mut((f) => {
      f.hashSeed = 1; // the seed is 0x1 now
      f.vips = [];
    });
    const empty = await cli('apply', '-f', json(noVips), '--remove-all-vips');
    expect(empty.err).toBe('');
    expect(empty.code).toBe(0);
    expect(empty.out).toContain('note (--remove-all-vips): vips: the file has none: all 2 VIPs would be withdrawn');
    const fresh = await cli('apply', '-f', json(BASE), '--prefix', '/hostile-new', '--new-fleet');
    expect(fresh.code).toBe(0);
    expect(fresh.out).toContain('note (--new-fleet): no fleet under prefix "/hostile-new"');
    const dry = await cli('apply', '-f', json(BASE), '--prefix', '/hostile-dry', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('needs --new-fleet: no fleet under prefix "/hostile-dry"');
    const proxied = mut((f) => {
      f.hashSeed = 1;
      m0(f).address = '127.0.0.1';
      m0(f).port = 8081;
    });
    const refused = await cli('apply', '-f', json(proxied));
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('--proxy-only');
    const proxy = await cli('apply', '-f', json(proxied), '--proxy-only');
    expect(proxy.err).toBe('');
    expect(proxy.code).toBe(0);
    // A stored proxy-only fleet keeps taking member edits in its own terms.
    const edit = await cli('member', 'add', 'web', '127.0.0.1:8082', '--name', 'be4');
    expect(edit.err).toBe('');
    expect(edit.code).toBe(0);
    const ghost = await cli('node', 'drain', 'lb9', '--force');
    expect(ghost.code).toBe(0);
  });
});

describe('hostile input - the CLI process reads no more than MAX_FLEET_BYTES', () => {
  const bin = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
  // A 48 MiB heap: reading either input whole (or parsing it) would abort the process instead of exit 1.
  test.each([
    ['/dev/zero', () => '/dev/zero'],
    ['a 50 MB file', () => file(Buffer.alloc(50 * 1024 * 1024, 0x61))],
  ])('%s: exit 1 naming the bound, with a small heap', (_name, path) => {
    const r = spawnSync(
      process.execPath,
      ['--max-old-space-size=48', bin, 'apply', '-f', path(), '--etcd', 'http://127.0.0.1:1'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stderr).toContain('MAX_FLEET_BYTES');
    expect(r.status).toBe(1);
  });
});
