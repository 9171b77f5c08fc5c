/**
 * A sealed store whose key-encryption key is an AES key inside a PKCS#11 token (SoftHSM2):
 * the store opens with that token key only, and keyd starts from such a store.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pkcs11js from 'pkcs11js';
import { acquirePkcs11Module } from '../../src/keys/pkcs11Module.js';
import { connectRemoteKey } from '../../src/keys/remoteKey.js';
import { SealedStore, StoreError } from '../../src/keyd/store.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, startTestKeyd, tempDir } from '../support/keydFixture.js';
import { createSoftHsmToken, type SoftHsmToken } from '../support/softhsm.js';

let root: { dir: string; cleanup: () => Promise<void> };
let token: SoftHsmToken;

/** An AES-256 key generated inside the token: sensitive, never extractable. */
function generateAesKey(label: string): void {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === token.label)!;
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
  } finally {
    lib.C_CloseSession(session);
    mod.release();
  }
}

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(join(e.parentPath, e.name), createHash('sha256').update(await readFile(join(e.parentPath, e.name))).digest('hex'));
  }
  return out;
}

before(async () => {
  root = await tempDir('keyd-p11kek-');
  token = await createSoftHsmToken({ label: 'kek-test' });
  generateAesKey('store-kek');
  generateAesKey('other-kek');
});
after(async () => {
  token?.cleanup();
  await root?.cleanup();
});

test('a store sealed by a token AES key opens with it, and only with it', async () => {
  const kek = { type: 'pkcs11' as const, module: token.module, uri: `pkcs11:token=${token.label};object=store-kek`, pinFile: token.pinFile };
  const dir = join(root.dir, 'store');
  const s = await SealedStore.create(dir, kek);
  const stored = await s.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { serverNames: ['t.example'], origin: 'imported' });
  s.close();
  const header = JSON.parse(await readFile(join(dir, 'keystore.json'), 'utf8')) as { kek: { type: string; uri: string } };
  assert.deepEqual(header.kek, { type: 'pkcs11', uri: `pkcs11:token=${token.label};object=store-kek` });

  const again = await SealedStore.open(dir, kek);
  assert.equal(again.getKey(stored.keyId)?.serverNames[0], 't.example');
  again.close();

  const before = await snapshot(dir);
  await assert.rejects(SealedStore.open(dir, { ...kek, uri: `pkcs11:token=${token.label};object=other-kek` }), (e: unknown) => {
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 'wrong-secret');
    assert.match(e.message, /wrong token key or corrupt store/);
    return true;
  });
  await assert.rejects(SealedStore.open(dir, { type: 'passphrase', passphrase: 'x' }), /sealed with a PKCS#11 token key, but a passphrase was given/);
  await assert.rejects(SealedStore.open(dir, { ...kek, uri: `pkcs11:token=${token.label};object=missing` }), /no AES key matches/);
  assert.deepEqual(await snapshot(dir), before);
});

test('keyd starts from a token-sealed store configured with store.pkcs11Kek', async () => {
  const dir = join(root.dir, 'keyd');
  const { keyd } = await startTestKeyd(dir, undefined, {
    listen: { unix: join(root.dir, 'k.sock') },
    store: { dir: join(dir, 'store'), pkcs11Kek: { module: token.module, uri: `pkcs11:token=${token.label};object=store-kek`, pinFile: token.pinFile } },
  });
  try {
    const { connectKeydAdmin } = await import('../../src/keys/remoteKey.js');
    const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
    const info = await admin.generateKey('ec-p256', ['t.example']);
    admin.close();
    const rk = await connectRemoteKey({ addresses: [`unix:${keyd.unixPath}`], keyId: info.keyId });
    const msg = certificateVerifyInput();
    assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, msg, await rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, msg, { tlsVersion: 'TLSv1.3' }, new AbortController().signal)));
    await rk.close();
  } finally {
    await keyd.close();
  }
});
