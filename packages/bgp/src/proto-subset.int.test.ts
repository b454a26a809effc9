/**
 * The hand-written apipb subset must agree with GoBGP 3.10's own .proto files (Debian's
 * golang-github-osrg-gobgp-dev, installed by scripts/install-system-deps.sh): same names, numbers, types, labels.
 */
import { existsSync } from 'node:fs';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { describe, expect, test } from 'vitest';
import { GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS } from './proto.js';

const DEBIAN_API_DIR = '/usr/share/gocode/src/github.com/osrg/gobgp/api';

interface Field {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface Described {
  format?: string;
  type?: { field?: Field[]; value?: Array<{ name: string; number: number }> };
}
interface Method {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestType: Described & { type: { name: string } };
  responseType: Described & { type: { name: string } };
}

describe('apipb subset', () => {
  const subset = loadSync(GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS);
  const upstreamFiles = ['gobgp.proto', 'attribute.proto'];
  test('Debian ships the upstream .proto files', () => {
    for (const f of upstreamFiles) expect(existsSync(`${DEBIAN_API_DIR}/${f}`), `${DEBIAN_API_DIR}/${f}`).toBe(true);
  });
  const upstream: PackageDefinition = existsSync(`${DEBIAN_API_DIR}/gobgp.proto`)
    ? loadSync(upstreamFiles, { ...PROTO_LOADER_OPTIONS, includeDirs: [DEBIAN_API_DIR] })
    : {};

  const apipbNames = Object.keys(subset).filter((n) => n.startsWith('apipb.'));

  test('every message and enum of the subset exists upstream with the same fields and values', () => {
    expect(apipbNames.length).toBeGreaterThan(40);
    for (const name of apipbNames) {
      const mine = subset[name] as Described;
      const theirs = upstream[name] as Described | undefined;
      expect(theirs, name).toBeDefined();
      if (!mine.format) continue; // the service, checked below
      expect(theirs?.format, name).toBe(mine.format);
      for (const f of mine.type?.field ?? []) {
        const u = theirs?.type?.field?.find((x) => x.name === f.name);
        expect(u, `${name}.${f.name}`).toBeDefined();
        expect(
          { number: u?.number, label: u?.label, type: u?.type, typeName: u?.typeName },
          `${name}.${f.name}`,
        ).toEqual({
          number: f.number,
          label: f.label,
          type: f.type,
          typeName: f.typeName,
        });
      }
      for (const v of mine.type?.value ?? []) {
        expect(theirs?.type?.value?.find((x) => x.name === v.name)?.number, `${name}.${v.name}`).toBe(v.number);
      }
    }
  });

  test('every method has the same path, types and streaming upstream', () => {
    const mine = subset['apipb.GobgpApi'] as unknown as Record<string, Method>;
    const theirs = upstream['apipb.GobgpApi'] as unknown as Record<string, Method>;
    expect(Object.keys(mine).sort()).toEqual([
      'AddPath',
      'AddPeer',
      'AddPolicy',
      'DeletePath',
      'DeletePeer',
      'DeletePolicy',
      'DeleteStatement',
      'GetBgp',
      'ListPath',
      'ListPeer',
      'ListPolicy',
      'ListPolicyAssignment',
      'ListStatement',
      'ResetPeer',
      'SetPolicyAssignment',
      'StartBgp',
      'StopBgp',
      'WatchEvent',
    ]);
    for (const [method, m] of Object.entries(mine)) {
      const u = theirs[method] as Method;
      expect(u.path).toBe(m.path);
      expect([u.requestStream, u.responseStream]).toEqual([m.requestStream, m.responseStream]);
      expect(u.requestType.type.name).toBe(m.requestType.type.name);
      expect(u.responseType.type.name).toBe(m.responseType.type.name);
    }
  });
});
