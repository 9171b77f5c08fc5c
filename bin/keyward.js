#!/usr/bin/env node
// The keyward command. It runs the compiled TypeScript in dist/: from a clone, build first
// (npm run build; npm start and npm test build by themselves).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('keyward: not built yet: run "npm run build" in the repository (npm start and npm test build by themselves)\n');
  process.exit(2);
}
await import(main.href);
