#!/usr/bin/env node
// Writes the files l4fleet-lab.clab.yaml binds, relative to DIR (where the topology file is deployed from):
// router/bgpd.conf and nodeN/agent.yaml of the default lab, from the same model as the topology file
// (containerlabBindFiles in lab/src/topology/containerlab.ts). Needs a built checkout (npm run build).
// Usage: node deploy/containerlab/write-bind-files.mjs DIR
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildTopology, NFTABLES_DATA_PATH } from '../../lab/dist/index.js';
import { containerlabBindFiles } from '../../lab/dist/topology/containerlab.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node deploy/containerlab/write-bind-files.mjs DIR');
  process.exit(2);
}
for (const [path, text] of containerlabBindFiles(buildTopology({ ...NFTABLES_DATA_PATH }))) {
  const target = join(dir, path);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text);
  console.log(target);
}
