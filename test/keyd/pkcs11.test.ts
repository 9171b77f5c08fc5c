/**
 * keyd serving keys that live in a PKCS#11 token (SoftHSM2), configured in keyd.json:
 * generated inside the token, never exported, used by a front over mutual TLS.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { connectKeydAdmin, connectRemoteKey } from '../../src/keys/remoteKey.js';
import type { Keyd } from '../../src/keyd/server.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, makeKeydPki, readAudit, startTestKeyd, tempDir, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let token: SoftHsmToken;
let keyd: Keyd;
let auditFile: string;
let ec: SoftHsmKey;
let rsa: SoftHsmKey;

before(async () => {
  root = await tempDir('keyd-p11-');
  pki = await makeKeydPki(root.dir, ['front', 'admin']);
  token = await createSoftHsmToken({ label: 'keyd-test' });
  ec = await token.generateKey('ec-p256', 'web-ec');
  rsa = await token.generateKey('rsa-2048', 'web-rsa');
  const s = await startTestKeyd(root.dir, pki, {
    pkcs11: [
      { module: token.module, uri: ec.uri, pinFile: token.pinFile, serverNames: ['hsm.example'] },
      { module: token.module, uri: rsa.uri, pinFile: token.pinFile, serverNames: ['hsm.example'] },
    ],
  });
  keyd = s.keyd;
  auditFile = s.config.audit.file;
});

after(async () => {
  await keyd?.close();
  token?.cleanup();
  await root?.cleanup();
});

test('token keys are served by keyd: P-256 and RSA-2048 PSS signatures verify', async () => {
  const cases: Array<[SoftHsmKey, SignatureScheme]> = [
    [ec, SignatureScheme.ecdsa_secp256r1_sha256],
    [rsa, SignatureScheme.rsa_pss_rsae_sha256],
  ];
  for (const [k, scheme] of cases) {
    const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keyd.registry.all().find((r) => r.publicKey.equals(k.publicKey))!.keyId });
    try {
      assert.equal(rk.info.source, 'pkcs11');
      assert.ok(rk.publicKey.equals(k.publicKey));
      const msgs = Array.from({ length: 20 }, () => certificateVerifyInput());
      const sigs = await Promise.all(msgs.map((m) => rk.sign(scheme, m, { tlsVersion: 'TLSv1.3', serverName: 'hsm.example' }, new AbortController().signal)));
      sigs.forEach((s, i) => assert.ok(verifySignature(k.publicKey, scheme, msgs[i], s)));
    } finally {
      await rk.close();
    }
  }
  assert.ok((await readAudit(auditFile)).some((l) => l.op === 'sign' && l.outcome === 'ok' && l.serverName === 'hsm.example'));
});

test('token keys are listed and cannot be deleted or re-imported through the admin API', async () => {
  const admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.tlsAddress!));
  try {
    const list = await admin.listKeys();
    const fromToken = list.keys.filter((k) => k.source === 'pkcs11');
    assert.equal(fromToken.length, 2);
    assert.deepEqual(fromToken.map((k) => k.serverNames), [['hsm.example'], ['hsm.example']]);
    await assert.rejects(admin.deleteKey(fromToken[0].keyId), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused' && /pkcs11/.test(e.message));
  } finally {
    admin.close();
  }
});
