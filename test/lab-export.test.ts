/** `lab export --format containerlab` checked against containerlab's own JSON schema (draft-07). */
import { readFileSync } from 'node:fs';
import { parseAgentConfigText } from '@l4fleet/agent';
import {
  agentYaml,
  buildTopology,
  containerlabYaml,
  createLabProgram,
  DEFAULT_DATA_PATH,
  NFTABLES_DATA_PATH,
  type TopologyOptions,
  toContainerlab,
} from '@l4fleet/lab';
import { Ajv } from 'ajv';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const schema = JSON.parse(readFileSync('/work/shared/schemas/containerlab.schema.json', 'utf8')) as Record<
  string,
  unknown
>;
// The schema uses a few keywords from later drafts (prefixItems) and formats ajv does not know: not strict.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const validate = ajv.compile(schema);

/** containerlab runs the Docker runtime's images: nftables nodes with backends on their segment (issue 14). */
const clab = (options: TopologyOptions = {}) => buildTopology({ ...options, ...NFTABLES_DATA_PATH });

function errorsOf(doc: unknown): string {
  return validate(doc) ? '' : ajv.errorsText(validate.errors, { separator: '\n' });
}

describe('lab export - containerlab', () => {
  test.each([
    [3, 4, 1],
    [1, 1, 1],
    [8, 20, 2],
  ])('%i nodes, %i backends, %i clients: the topology file validates', (nodes, backends, clients) => {
    const text = containerlabYaml(clab({ nodes, backends, clients }));
    expect(errorsOf(parse(text))).toBe('');
  });

  test('the schema check can fail: a wrong kind is refused', () => {
    const doc = toContainerlab(clab()) as { topology: { nodes: Record<string, Record<string, unknown>> } };
    (doc.topology.nodes.router as Record<string, unknown>).kind = 'not-a-kind';
    expect(errorsOf(doc)).toMatch(/kind/);
  });

  test('same model: every host, one link per attachment, addresses from the model', () => {
    const topology = clab();
    const doc = toContainerlab(topology) as {
      name: string;
      topology: {
        nodes: Record<string, { kind: string; image?: string; exec?: string[]; env?: Record<string, string> }>;
        links: { endpoints: string[] }[];
      };
    };
    expect(doc.name).toBe('l4f-lab');
    for (const h of topology.hosts.filter((x) => x.kind !== 'host')) expect(doc.topology.nodes[h.name]).toBeDefined();
    expect(doc.topology.nodes['l4f-lab-fab']?.kind).toBe('bridge');
    const attachments = topology.segments.reduce(
      (n, s) => n + (s.hub ? s.attachments.filter((a) => a.host !== 'host').length : 1),
      0,
    );
    expect(doc.topology.links).toHaveLength(attachments);
    expect(doc.topology.nodes.node1?.exec).toContain('ip addr add 198.18.2.11/24 dev eth1');
    expect(doc.topology.nodes.node1?.image).toBe('l4fleet/agent:latest');
    // The agent starts once containerlab's exec commands have put its addresses on (its entrypoint waits).
    expect(doc.topology.nodes.node1?.env).toMatchObject({ L4FLEET_WAIT_ADDRESSES: '198.18.2.11,198.19.0.11' });
    // The backend's entrypoint puts the VIPs on lo itself: an exec adding them again would fail (File exists).
    expect(doc.topology.nodes.backend1?.exec?.some((c) => c.endsWith(' dev lo'))).toBe(false);
  });

  test('the CLI prints the same file', async () => {
    let out = '';
    await createLabProgram({ out: (t) => (out += t), err: () => {} }).parseAsync(
      ['export', '--format', 'containerlab'],
      {
        from: 'user',
      },
    );
    expect(out).toBe(containerlabYaml(clab()));
  });
});

describe('deploy/ files match the lab model', () => {
  test('deploy/containerlab/l4fleet-lab.clab.yaml is the export of the default lab and validates', () => {
    const file = readFileSync(new URL('../deploy/containerlab/l4fleet-lab.clab.yaml', import.meta.url), 'utf8');
    expect(file).toBe(containerlabYaml(clab()));
    expect(errorsOf(parse(file))).toBe('');
  });

  test('deploy/examples/agent.yaml is accepted by the agent and matches what the default (bpf) lab writes for node1', () => {
    const file = readFileSync(new URL('../deploy/examples/agent.yaml', import.meta.url), 'utf8');
    const example = parseAgentConfigText(file);
    const lab = parseAgentConfigText(agentYaml(buildTopology(DEFAULT_DATA_PATH), 'node1'));
    expect(example).toEqual(lab);
  });
});
