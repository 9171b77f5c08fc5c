/**
 * The example systemd units (contrib/systemd) pass `systemd-analyze verify` with no warning,
 * run keyd and the proxy as different users, and keep systemd's exposure score low
 * (`systemd-analyze security --offline`).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/keydFixture.js';
import { runProcess } from '../support/processes.js';

const UNITS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'contrib', 'systemd');
const NAMES = ['keyward-keyd.service', 'keyward-proxy.service'];

let root: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  root = await tempDir('keyward-systemd-');
  for (const n of NAMES) {
    // verify checks that ExecStart's program exists: point it at this machine's node.
    const text = (await readFile(join(UNITS, n), 'utf8')).replaceAll('/usr/bin/node ', `${process.execPath} `);
    await writeFile(join(root.dir, n), text);
  }
});
after(async () => root?.cleanup());

function setting(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);
}

test('systemd-analyze verify: both units, no warning', async () => {
  const r = await runProcess('systemd-analyze', ['verify', '--man=no', ...NAMES.map((n) => join(root.dir, n))], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'no warnings');
  // The check is real: a misspelt key is reported.
  const bad = join(root.dir, 'bad.service');
  await writeFile(bad, (await readFile(join(root.dir, NAMES[0]), 'utf8')).replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'));
  const b = await runProcess('systemd-analyze', ['verify', '--man=no', bad], { timeoutMs: 30_000 });
  assert.match(b.stderr, /Unknown key 'NoNewPrivilege'/);
});

test('keyd and the proxy run as different users, hardened', async () => {
  const keyd = await readFile(join(UNITS, NAMES[0]), 'utf8');
  const proxy = await readFile(join(UNITS, NAMES[1]), 'utf8');
  assert.deepEqual(setting(keyd, 'User'), ['keyward-keyd']);
  assert.deepEqual(setting(proxy, 'User'), ['keyward-front']);
  for (const text of [keyd, proxy]) {
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['LimitCORE', '0']]) {
      assert.deepEqual(setting(text, k), [v], `${k}=${v}`);
    }
  }
  assert.match(setting(proxy, 'InaccessiblePaths')[0], /\/var\/lib\/keyward-keyd/, "the front cannot see keyd's store");
  assert.deepEqual(setting(proxy, 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
  for (const n of NAMES) {
    const r = await runProcess('systemd-analyze', ['security', '--offline=true', join(root.dir, n)], { timeoutMs: 30_000 });
    const score = Number(/Overall exposure level for .*: ([\d.]+)/.exec(r.stdout)?.[1]);
    assert.ok(score > 0 && score <= 2.5, `${n}: exposure ${score}\n${r.stdout.slice(-500)}`);
  }
});
