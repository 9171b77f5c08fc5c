/**
 * The keyd commands as a user runs them: `keys put|list|generate|delete|put-psk|delete-psk`
 * against a live keyd over mutual TLS and the Unix socket, and `keyd --config` errors.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { keyIdOf } from '../../src/keys/keyId.js';
import type { Keyd } from '../../src/keyd/server.js';
import { KEYD_CLI, makeKeydPki, readAudit, startTestKeyd, tempDir, writeKeydConfig, type KeydPki } from '../support/keydFixture.js';
import { runProcess, type RunResult } from '../support/processes.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let keyd: Keyd;
let auditFile: string;

before(async () => {
  root = await tempDir('keyd-cli-');
  pki = await makeKeydPki(root.dir, ['admin', 'front']);
  const s = await startTestKeyd(root.dir, pki);
  keyd = s.keyd;
  auditFile = s.config.audit.file;
});
after(async () => {
  await keyd?.close();
  await root?.cleanup();
});

function cli(args: string[]): Promise<RunResult> {
  return runProcess(process.execPath, [KEYD_CLI, ...args], { timeoutMs: 20_000 });
}

function tlsArgs(who: 'admin' | 'front'): string[] {
  const c = pki.clients[who];
  return ['--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`, '--ca', pki.caPath, '--cert', c.certPath, '--key', c.keyPath];
}

test('keys put / list / delete over mutual TLS', async () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const keyFile = join(root.dir, 'site-key.pem');
  await writeFile(keyFile, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const id = keyIdOf(createPublicKey(key));
  const put = await cli(['keys', 'put', keyFile, '--name', 'site.example', '--name', 'www.site.example', ...tlsArgs('admin')]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout, `key ${id} (ec-p256, imported) serves site.example, www.site.example\n`);
  const list = await cli(['keys', 'list', ...tlsArgs('admin')]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${id}\\s+ec-p256\\s+store\\s+imported\\s+\\S+\\s+site.example,www.site.example$`, 'm'));
  const json = await cli(['keys', 'list', '--json', ...tlsArgs('admin')]);
  const parsed = JSON.parse(json.stdout) as { keys: Array<{ keyId: string; publicKey: string; schemes: string[] }> };
  const entry = parsed.keys.find((k) => k.keyId === id)!;
  assert.ok(entry.publicKey.startsWith('-----BEGIN PUBLIC KEY-----'));
  assert.deepEqual(entry.schemes, ['ecdsa_secp256r1_sha256']);
  const del = await cli(['keys', 'delete', id, ...tlsArgs('admin')]);
  assert.equal(del.code, 0, del.stderr);
  assert.ok(!(await cli(['keys', 'list', ...tlsArgs('admin')])).stdout.includes(id));
  assert.ok((await readAudit(auditFile)).some((l) => l.op === 'put-key' && l.keyId === id && l.client === 'cn:admin' && l.outcome === 'ok'));
});

test('keys generate writes the public key only; the key stays in keyd', async () => {
  const pub = join(root.dir, 'gen-pub.pem');
  const r = await cli(['keys', 'generate', '--type', 'ed25519', '--name', 'gen.example', '--public-out', pub, '--json', ...tlsArgs('admin')]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { keyId: string; origin: string; publicKey: string };
  assert.equal(out.origin, 'generated');
  const pem = await readFile(pub, 'utf8');
  assert.equal(pem, out.publicKey);
  assert.ok(!pem.includes('PRIVATE'));
  assert.ok(!r.stdout.includes('PRIVATE'));
  assert.ok(keyd.registry.get(out.keyId));
});

test('PSKs: put-psk and delete-psk over the Unix socket', async () => {
  const secretFile = join(root.dir, 'psk.hex');
  await writeFile(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const put = await cli(['keys', 'put-psk', 'client-7', '--secret-file', secretFile, '--hex', '--keyd', `unix:${keyd.unixPath}`]);
  assert.equal(put.code, 0, put.stderr);
  const list = await cli(['keys', 'list', '--keyd', `unix:${keyd.unixPath}`]);
  assert.match(list.stdout, /^PSK IDENTITY\s+HASH\s+CREATED$/m);
  assert.match(list.stdout, /^client-7\s+sha256\s+\S+$/m);
  // A TLS 1.3 PSK used with SHA-384 keeps its hash; an unknown hash is a usage error.
  const put384 = await cli(['keys', 'put-psk', '--identity', 'client-384', '--psk-file', secretFile, '--hex', '--hash', 'sha384', '--keyd', `unix:${keyd.unixPath}`]);
  assert.equal(put384.code, 0, put384.stderr);
  const json = JSON.parse((await cli(['keys', 'list', '--json', '--keyd', `unix:${keyd.unixPath}`])).stdout) as { psks: Array<{ identity: string; hash: string }> };
  assert.deepEqual(json.psks.map((p) => [p.identity, p.hash]).sort(), [
    ['client-384', 'sha384'],
    ['client-7', 'sha256'],
  ]);
  const badHash = await cli(['keys', 'put-psk', '--identity', 'x', '--psk-file', secretFile, '--hash', 'md5', '--keyd', `unix:${keyd.unixPath}`]);
  assert.notEqual(badHash.code, 0);
  assert.match(badHash.stderr, /--hash.*md5.*sha256, sha384|Allowed choices are sha256, sha384/);
  assert.equal((await cli(['keys', 'delete-psk', '--identity', 'client-384', '--keyd', `unix:${keyd.unixPath}`])).code, 0);
  assert.equal((await cli(['keys', 'delete-psk', 'client-7', '--keyd', `unix:${keyd.unixPath}`])).code, 0);
  const again = await cli(['keys', 'delete-psk', 'client-7', '--keyd', `unix:${keyd.unixPath}`]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /unknown-key/);
});

test('errors: a front is not an admin, a bad key file, a missing client certificate', async () => {
  const r = await cli(['keys', 'list', ...tlsArgs('front')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^keyward keys list: refused: keyd: identity cn:front is not an admin\n$/);
  const junk = join(root.dir, 'junk.pem');
  await writeFile(junk, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  const bad = await cli(['keys', 'put', junk, ...tlsArgs('admin')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /junk.pem is not a readable private key/);
  const nocert = await cli(['keys', 'list', '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`, '--ca', pki.caPath]);
  assert.equal(nocert.code, 2);
  assert.match(nocert.stderr, /needs --cert and --key/);
});

test('keyd --config: every configuration problem is listed; --check; --help documents the config', async () => {
  const bad = await writeKeydConfig(root.dir, { listen: { tls: 'nowhere' }, store: { dir: 's' }, audit: {}, clients: [{ id: 'x', keys: 'all', bound: 'yes' }], extra: 1 }, 'bad.json');
  const r = await cli(['keyd', '--config', bad]);
  assert.equal(r.code, 2);
  for (const expected of ['(top).extra: unknown setting', 'listen.tls: expected "HOST:PORT"', 'tls: listen.tls needs tls.cert', 'store: give exactly one of', 'audit.file: expected a non-empty string', 'clients[0].keys: expected a list', 'clients[0].bound: expected true or false']) {
    assert.ok(r.stderr.includes(expected), `missing ${JSON.stringify(expected)} in:\n${r.stderr}`);
  }
  const good = await writeKeydConfig(root.dir, { listen: { unix: 'k.sock' }, store: { dir: 's', passphraseEnv: 'P' }, audit: { file: 'a.log' }, clients: [{ id: 'unix', keys: ['*'] }] }, 'good.json');
  const check = await runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', good, '--check'], { timeoutMs: 20_000, env: { ...process.env, P: 'a test passphrase' } });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /configuration ok/);
  const noPass = await cli(['keyd', '--config', good, '--check']);
  assert.equal(noPass.code, 1);
  assert.match(noPass.stdout, /^PROBLEM store: store.passphraseEnv: the environment variable P is not set$/m);
  const help = await cli(['keyd', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--config <file>/);
  assert.match(help.stdout, /passphraseEnv/);
  assert.match(help.stdout, /"bound": true/);
  const missingPass = await cli(['keyd', '--config', good]);
  assert.equal(missingPass.code, 1);
  assert.match(missingPass.stderr, /environment variable P is not set/);
});
