#!/usr/bin/env node
// Builds native/keyward_nodump.node (the key process's PR_SET_DUMPABLE call) with node-gyp.
// Run by `npm install` (the package's install script) and `npm run build:native`.
//
// node-gyp needs Node's headers: when this Node installation ships them (Debian's and
// NodeSource's packages put them in /usr/include/node), they are used and nothing is
// downloaded; otherwise node-gyp fetches them for this Node version. The addon uses
// Node-API 8 only, so one build serves Node 20 and Node 24 alike.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = dirname(dirname(process.execPath));

function nodeGyp() {
  // npm gives its own node-gyp to lifecycle scripts; otherwise look beside this Node.
  const candidates = [process.env.npm_config_node_gyp, join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  const found = candidates.find((c) => c && existsSync(c));
  return found ? [process.execPath, found] : ['node-gyp'];
}

const args = ['rebuild', `--directory=${here}`];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const [cmd, ...pre] = nodeGyp();
const r = spawnSync(cmd, [...pre, ...args], { stdio: 'inherit' });
if (r.error) {
  console.error(`native/build.mjs: cannot run node-gyp: ${r.error.message}`);
  process.exit(1);
}
if (r.status !== 0) {
  console.error('native/build.mjs: building the key process addon failed; without it a key process refuses to start (see docs/security-keyprocess.md)');
  process.exit(r.status ?? 1);
}
