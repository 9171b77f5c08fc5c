import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { keyIdOf } from '../../src/keys/keyId.js';
import { SealedStore, StoreError } from '../../src/keyd/store.js';
import { TEST_SCRYPT, tempDir } from '../support/keydFixture.js';

const PASS = { type: 'passphrase' as const, passphrase: 'right passphrase' };
let root: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  root = await tempDir('keyd-store-');
});
after(async () => {
  await root.cleanup();
});

/** Path → SHA-256 of every file under `dir`: the store must be byte-identical after a failed open. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(p, createHash('sha256').update(await readFile(p)).digest('hex'));
  }
  return out;
}

async function makeStore(name: string): Promise<{ dir: string; ids: string[] }> {
  const dir = join(root.dir, name);
  const s = await SealedStore.create(dir, PASS, { scrypt: TEST_SCRYPT });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const a = await s.putKey(ec, { serverNames: ['a.example'], origin: 'imported' });
  const b = await s.putKey(rsa, { serverNames: ['b.example', '*.b.example'], origin: 'generated' });
  await s.putPsk(Buffer.from('client-1'), Buffer.alloc(32, 7));
  s.close();
  return { dir, ids: [a.keyId, b.keyId] };
}

test('keys and PSKs survive a reopen with the right passphrase; records are 0600', async () => {
  const { dir, ids } = await makeStore('roundtrip');
  const s = await SealedStore.open(dir, PASS);
  assert.deepEqual(s.keys().map((k) => k.keyId).sort(), [...ids].sort());
  const b = s.getKey(ids[1])!;
  assert.equal(keyIdOf(b.publicKey), ids[1]);
  assert.deepEqual(b.serverNames, ['b.example', '*.b.example']);
  assert.equal(b.origin, 'generated');
  assert.equal(b.keyType, 'rsa');
  assert.deepEqual(s.getPsk(Buffer.from('client-1'))?.secret, Buffer.alloc(32, 7));
  assert.equal((await stat(join(dir, 'keys', `${ids[0]}.json`))).mode & 0o777, 0o600);
  // The files hold no key material in clear.
  const raw = await readFile(join(dir, 'keys', `${ids[0]}.json`), 'utf8');
  const der = s.getKey(ids[0])!.privateKey.export({ type: 'pkcs8', format: 'der' });
  assert.ok(!raw.includes(der.toString('base64').slice(40, 80)));
  assert.equal(await s.deleteKey(ids[0]), true);
  assert.equal(await s.deleteKey(ids[0]), false);
  s.close();
  const again = await SealedStore.open(dir, PASS);
  assert.deepEqual(again.keys().map((k) => k.keyId), [ids[1]]);
  again.close();
});

test('a wrong passphrase is named as such and changes nothing', async () => {
  const { dir } = await makeStore('wrongpass');
  const before = await snapshot(dir);
  await assert.rejects(SealedStore.open(dir, { type: 'passphrase', passphrase: 'wrong passphrase' }), (e: unknown) => {
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 'wrong-secret');
    assert.match(e.message, /wrong passphrase or corrupt store/);
    assert.match(e.message, /header is intact/);
    return true;
  });
  await assert.rejects(SealedStore.open(dir, { type: 'keyfile', path: '/nonexistent' }), /sealed with a passphrase/);
  assert.deepEqual(await snapshot(dir), before);
});

test('a corrupt key file is named, with the store left byte-identical', async () => {
  const { dir, ids } = await makeStore('corrupt');
  const path = join(dir, 'keys', `${ids[1]}.json`);
  const rec = JSON.parse(await readFile(path, 'utf8')) as { ciphertext: string };
  const c = rec.ciphertext;
  rec.ciphertext = c.slice(0, 20) + (c[20] === 'A' ? 'B' : 'A') + c.slice(21);
  await writeFile(path, JSON.stringify(rec));
  const before = await snapshot(dir);
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => {
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 'corrupt');
    assert.equal(e.file, path);
    assert.match(e.message, new RegExp(`corrupt key file ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: authentication failed`));
    return true;
  });
  assert.deepEqual(await snapshot(dir), before);

  // Not JSON at all.
  await writeFile(path, '{"format": "keyward-sealed-key", ');
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && e.message.includes(path) && /not valid JSON/.test(e.message));
});

test('a record moved under another key id is refused', async () => {
  const { dir, ids } = await makeStore('swapped');
  const a = join(dir, 'keys', `${ids[0]}.json`);
  const b = join(dir, 'keys', `${ids[1]}.json`);
  await writeFile(b, await readFile(a));
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && e.file === b && /does not match the file name/.test(e.message));
});

test('server names are bound to the sealed key: relabelling fails authentication', async () => {
  const { dir, ids } = await makeStore('relabel');
  const path = join(dir, 'keys', `${ids[0]}.json`);
  const rec = JSON.parse(await readFile(path, 'utf8')) as { serverNames: string[] };
  rec.serverNames = ['evil.example'];
  await writeFile(path, JSON.stringify(rec));
  await assert.rejects(SealedStore.open(dir, PASS), /authentication failed/);
});

test('an edited header is reported as a corrupt header, not as a wrong passphrase', async () => {
  const { dir } = await makeStore('header');
  const path = join(dir, 'keystore.json');
  const h = JSON.parse(await readFile(path, 'utf8')) as { kek: { N: number } };
  h.kek.N = 2048;
  await writeFile(path, JSON.stringify(h));
  const before = await snapshot(dir);
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && e.file === path && /checksum mismatch/.test(e.message));
  assert.deepEqual(await snapshot(dir), before);
});

test('key-file stores: right file opens, wrong file is named, short file refused', async () => {
  const dir = join(root.dir, 'keyfile');
  const kf = join(root.dir, 'kek.bin');
  const other = join(root.dir, 'other.hex');
  await writeFile(kf, randomBytes(32), { mode: 0o600 });
  await writeFile(other, randomBytes(32).toString('hex') + '\n');
  const s = await SealedStore.create(dir, { type: 'keyfile', path: kf });
  await s.putKey(generateKeyPairSync('ed25519').privateKey, { serverNames: [], origin: 'imported' });
  s.close();
  assert.equal((await SealedStore.open(dir, { type: 'keyfile', path: kf })).keys().length, 1);
  await assert.rejects(SealedStore.open(dir, { type: 'keyfile', path: other }), (e: unknown) => e instanceof StoreError && e.code === 'wrong-secret' && /wrong key file/.test(e.message));
  // Another binary key file too: the key is the file's bytes, never something derived without them.
  const otherBin = join(root.dir, 'other.bin');
  await writeFile(otherBin, randomBytes(32), { mode: 0o600 });
  await assert.rejects(SealedStore.open(dir, { type: 'keyfile', path: otherBin }), (e: unknown) => e instanceof StoreError && e.code === 'wrong-secret' && /wrong key file/.test(e.message));
  await assert.rejects(SealedStore.open(dir, PASS), /sealed with a key file/);
  const short = join(root.dir, 'short.bin');
  await writeFile(short, randomBytes(16));
  await assert.rejects(SealedStore.create(join(root.dir, 'short-store'), { type: 'keyfile', path: short }), /at least 32/);
});

test('a store is never created over a folder with content', async () => {
  const { dir } = await makeStore('nonempty');
  const { rm } = await import('node:fs/promises');
  await rm(join(dir, 'keystore.json'));
  await assert.rejects(SealedStore.openOrCreate(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'not-empty');
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'not-a-store');
});

test('the audit key: made once, sealed apart from the TLS keys, the same after reopening; an edited file is refused', async () => {
  const dir = join(root.dir, 'audit-key');
  const s = await SealedStore.create(dir, PASS, { scrypt: TEST_SCRYPT });
  assert.equal(s.existingAuditKey(), undefined);
  const k = await s.auditKey();
  assert.equal(k.privateKey.asymmetricKeyType, 'ed25519');
  assert.equal(k.keyId, keyIdOf(k.publicKey));
  assert.equal((await s.auditKey()).keyId, k.keyId, 'made once');
  assert.deepEqual(s.keys(), [], 'not a TLS key');
  s.close();
  const file = join(dir, 'audit-key.json');
  const sealed = await readFile(file, 'utf8');
  assert.ok(!sealed.includes(k.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64')), 'sealed, not in clear');
  const again = await SealedStore.open(dir, PASS);
  assert.equal(again.existingAuditKey()?.keyId, k.keyId);
  again.close();
  const f = JSON.parse(sealed) as { createdAt: string };
  await writeFile(file, JSON.stringify({ ...f, createdAt: '2000-01-01T00:00:00.000Z' }));
  await assert.rejects(SealedStore.open(dir, PASS), (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && /corrupt audit key file .*audit-key\.json: authentication failed/.test(e.message));
});
