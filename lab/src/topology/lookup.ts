/**
 * Lookups in a lab's topology that throw a LabError naming the host or segment instead of returning undefined
 * (re-exported by model.ts, where the topology is built).
 */
import { LabError } from '../errors.js';
import { type Attachment, BACKEND_SEGMENT, type HostKind, type LabHost, type Segment, type Topology } from './model.js';

export function hostOf(topology: Topology, name: string): LabHost {
  const host = topology.hosts.find((h) => h.name === name);
  if (!host) {
    const known = topology.hosts.map((h) => h.name).join(', ');
    throw new LabError('HOST_UNKNOWN', `host "${name}" is not in lab "${topology.id}" (hosts: ${known})`);
  }
  return host;
}

export function hostsOfKind(topology: Topology, kind: HostKind): LabHost[] {
  return topology.hosts.filter((h) => h.kind === kind);
}

export function segmentOf(topology: Topology, name: string): Segment {
  const segment = topology.segments.find((s) => s.name === name);
  if (!segment) throw new LabError('HOST_UNKNOWN', `segment "${name}" is not in lab "${topology.id}"`);
  return segment;
}

export function attachmentOf(topology: Topology, segment: string, host: string): Attachment {
  const a = segmentOf(topology, segment).attachments.find((x) => x.host === host);
  if (!a) throw new LabError('HOST_UNKNOWN', `host "${host}" is not attached to segment "${segment}"`);
  return a;
}

/** The segment a backend sits on: the fabric, or (routed) the backends' own. */
export function backendSegmentOf(topology: Topology): Segment {
  return topology.dataPath.backendNetwork === 'routed'
    ? segmentOf(topology, BACKEND_SEGMENT)
    : segmentOf(topology, 'fabric');
}

/** A backend's attachment on its segment (its member address). */
export function backendAttachment(topology: Topology, backend: string): Attachment {
  return attachmentOf(topology, backendSegmentOf(topology).name, backend);
}
