/**
 * `keyward keyd --check` checks the files a valid keyd.json names, in a child process as
 * an operator runs it: certificate and key that do not belong together, a CA file without
 * a certificate, a wrong store passphrase, a torn audit log, an audit public key of
 * another key; and says "configuration ok" (exit 0) for a keyd that then starts.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KEYD_CLI, TEST_PASSPHRASE, keydConfigJson, makeKeydPki, startTestKeyd, tempDir, writeKeydConfig, type KeydPki } from '../support/keydFixture.js';
import { runProcess, type RunResult } from '../support/processes.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;

before(async () => {
  root = await tempDir('keyd-check-');
  pki = await makeKeydPki(root.dir, ['front']);
  // A store with an audit key and a log, made by a keyd that ran once.
  const { keyd } = await startTestKeyd(root.dir, pki, { audit: { file: join(root.dir, 'audit.log'), checkpoints: { publicKeyFile: join(root.dir, 'audit.pub.pem') } } });
  await keyd.close();
});

after(async () => {
  await root?.cleanup();
});

function check(config: string, passphrase = TEST_PASSPHRASE): Promise<RunResult> {
  return runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', config, '--check'], { timeoutMs: 20_000, env: { ...process.env, KEYD_TEST_PASSPHRASE: passphrase } });
}

test('a keyd that starts: every file checked, configuration ok', async () => {
  const good = await writeKeydConfig(root.dir, keydConfigJson(root.dir, pki, { audit: { file: join(root.dir, 'audit.log'), checkpoints: { publicKeyFile: join(root.dir, 'audit.pub.pem') } } }), 'good.json');
  const r = await check(good);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^ok +tls\.cert: .*keyd-cert\.pem \(CN=keyd, until .*\) matches the key in .*keyd-key\.pem$/m);
  assert.match(r.stdout, /^ok +tls\.clientCa: .*ca\.pem: 1 CA certificate\(s\)$/m);
  assert.match(r.stdout, /^ok +store: .* opens: 0 key\(s\), 0 PSK\(s\)$/m);
  assert.match(r.stdout, /^ok +audit\.file: .*audit\.log continues at seq \d+$/m);
  assert.match(r.stdout, /^ok +audit\.checkpoints\.publicKeyFile: .*audit\.pub\.pem is the store's audit key/m);
  assert.match(r.stdout, /configuration ok$/m);
  assert.doesNotMatch(r.stdout, /PROBLEM/);
});

test('files that are missing or do not belong together are each named, exit 1', async () => {
  const otherKey = join(root.dir, 'other-key.pem');
  await writeFile(otherKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const emptyCa = join(root.dir, 'empty-ca.pem');
  await writeFile(emptyCa, 'no certificate here\n');
  const otherPub = join(root.dir, 'other.pub.pem');
  await writeFile(otherPub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const torn = join(root.dir, 'torn.log');
  await appendFile(torn, '{"seq":1,"time":"2026-01-01T00:00:00.000Z","prev":"00"}\n{"seq":2,');
  const bad = await writeKeydConfig(
    root.dir,
    {
      ...keydConfigJson(root.dir, pki, { audit: { file: torn, checkpoints: { publicKeyFile: otherPub } } }),
      tls: { cert: pki.server.certPath, key: otherKey, clientCa: emptyCa },
      pkcs11: [{ module: join(root.dir, 'no-such-module.so'), uri: 'pkcs11:token=t;object=o', serverNames: ['a.example'] }],
    },
    'bad.json',
  );
  // With the right passphrase: the store opens, so the audit public key is compared.
  const r = await check(bad);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^PROBLEM tls\.key: .*other-key\.pem is not the key of the certificate in .*keyd-cert\.pem$/m);
  assert.match(r.stdout, /^PROBLEM tls\.clientCa: .*empty-ca\.pem holds no PEM certificate$/m);
  assert.match(r.stdout, /^PROBLEM audit\.file: audit log .*torn\.log ends with an incomplete line/m);
  assert.match(r.stdout, /^PROBLEM audit\.checkpoints\.publicKeyFile: .*other\.pub\.pem holds another key than the store's audit key [0-9a-f]{64}/m);
  assert.match(r.stdout, /^PROBLEM pkcs11\[0\]: cannot read .*no-such-module\.so \(ENOENT\)$/m);
  assert.match(r.stdout, /: 5 problem\(s\)$/m);
  // With a wrong passphrase the store does not open, and says so.
  const wrong = await check(bad, 'not the passphrase');
  assert.equal(wrong.code, 1);
  assert.match(wrong.stdout, /^PROBLEM store: wrong passphrase or corrupt store .*: the header is intact but does not open with this passphrase$/m);
  assert.doesNotMatch(wrong.stdout + wrong.stderr, /not the passphrase/);
});
