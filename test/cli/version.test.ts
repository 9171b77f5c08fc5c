/**
 * `keyward --version` prints package.json's version, and `npx keyward` works from a clone
 * (npm runs the package's own bin), as the README says.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runKeyward } from '../support/keywardCli.js';
import { runProcess } from '../support/processes.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test('keyward --version and npx keyward --version from the clone', async () => {
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const direct = await runKeyward(['--version']);
  assert.equal(direct.code, 0);
  assert.equal(direct.stdout.trim(), version);
  const npx = await runProcess('npx', ['--no-install', 'keyward', '--version'], { cwd: ROOT, timeoutMs: 60_000 });
  assert.equal(npx.code, 0, npx.stderr);
  assert.equal(npx.stdout.trim(), version);
});
