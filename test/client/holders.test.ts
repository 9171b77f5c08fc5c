/**
 * Client keys and PSKs in the other key holders, against `openssl s_server`: a client
 * certificate whose key is in keyd (TLS 1.3; TLS 1.2 in bound mode, where keyd parses the
 * handshake messages it signs; outside bound mode keyd refuses the TLS 1.2 client
 * CertificateVerify, which the test pins) or in a SoftHSM2 token (TLS 1.3 and 1.2),
 * accepted by `-Verify`; a TLS 1.2 ECDHE_PSK client whose PSK is in keyd, against
 * `-psk ... -nocert`.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { issueCertificateForKey } from '../../src/cli/pki.js';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import type { KeyOperations, PskOperations } from '../../src/keys/keyOperations.js';
import { openPkcs11Key, type Pkcs11Key } from '../../src/keys/pkcs11Key.js';
import { connectKeydAdmin, connectRemoteKey, connectRemotePsk } from '../../src/keys/remoteKey.js';
import { connect, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, tlsClientOptions } from '../support/keydFixture.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { createSoftHsmToken, type SoftHsmToken } from '../support/softhsm.js';
import { handshake as connectTo, sendSeen, sServer, stopSServers } from './clientHelpers.js';

const PSK = randomBytes(32);
const PSK_IDENTITY = 'keyd-client-psk';

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
let keyd: Keyd;
let keydKey: KeyOperations;
let boundKey: KeyOperations;
let keydPsk: PskOperations;
let token: SoftHsmToken;
let hsmKey: Pkcs11Key;
let hsmChain: string;

before(async () => {
  pki = await getPki();
  dir = await tempDir('client-holders-');
  // Token first: SoftHSM sees only tokens that exist when it is initialized.
  token = await createSoftHsmToken();
  const generated = await token.generateKey('ec-p256', 'client-auth');
  hsmChain = (await issueCertificateForKey(pki.ca, generated.publicKey, { commonName: 'hsm-client', usage: 'client' })).chainPem;
  hsmKey = await openPkcs11Key({ uri: generated.uri, module: token.module, pinFile: token.pinFile });

  const kpki = await makeKeydPki(dir.dir, ['front', 'admin']);
  keyd = (await startTestKeyd(dir.dir, kpki)).keyd;
  const admin = await connectKeydAdmin(tlsClientOptions(kpki, 'admin', keyd.tlsAddress!));
  try {
    await admin.putKey(createPrivateKey(pki.client.keyPem));
    await admin.putPsk(Buffer.from(PSK_IDENTITY), PSK);
  } finally {
    admin.close();
  }
  const keyId = keyIdOf(new X509Certificate(pki.client.certPem).publicKey);
  keydKey = await connectRemoteKey({ ...tlsClientOptions(kpki, 'front', keyd.tlsAddress!), keyId });
  boundKey = await connectRemoteKey({ ...tlsClientOptions(kpki, 'front', keyd.tlsAddress!), keyId, bound: true });
  keydPsk = await connectRemotePsk(tlsClientOptions(kpki, 'front', keyd.tlsAddress!));
});

after(async () => {
  stopSServers();
  await keydKey?.close?.();
  await boundKey?.close?.();
  await keydPsk?.close?.();
  await hsmKey?.close();
  await keyd?.close();
  token?.cleanup();
  await dir?.cleanup();
});


async function keydAudit(): Promise<Array<Record<string, unknown>>> {
  await keyd.audit.flush();
  return readAudit(join(dir.dir, 'audit.log'));
}

const handshake = (port: number, opts: Partial<KeywardConnectOptions>) => connectTo(port, pki.ca.certPem, opts);

const verifyArgs = () => ['-cert', pki.server['ecdsa-p256'].chainPath, '-key', pki.server['ecdsa-p256'].keyPath, '-Verify', '2', '-CAfile', pki.ca.certPath];

describe('client certificates in keyd and in a SoftHSM2 token', { timeout: 60_000 }, () => {
  it('keyd, TLS 1.3: the client CertificateVerify signed by keyd, accepted by s_server -Verify', async () => {
    const s = await sServer([...verifyArgs(), '-tls1_3']);
    const c = await handshake(s.port, { cert: pki.client.chainPem, key: keydKey });
    assert.equal(c.negotiated.clientSignatureScheme, 0x0403);
    await sendSeen(c, s, 'signed by keyd');
    assert.match(s.output(), /CN\s*=\s*keyward-test-client/);
  });

  it('keyd, TLS 1.2: refused by keyd outside bound mode, so the handshake fails with internal_error', async () => {
    const s = await sServer([...verifyArgs(), '-tls1_2']);
    const c = connect({ port: s.port, host: 'localhost', ca: pki.ca.certPem, cert: pki.client.chainPem, key: keydKey, handshakeTimeout: 10_000 });
    const refusals: Error[] = [];
    c.on('keyOperationError', (e: Error) => refusals.push(e));
    const [err] = (await once(c, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_INTERNAL_ERROR');
    assert.equal(refusals.length, 1, 'the key holder refused');
    assert.match(refusals[0].message, /TLS 1\.2 client CertificateVerify is signed only in bound mode/);
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`keyd in bound mode, ${version}: keyd checks the handshake messages and signs, accepted by s_server -Verify`, async () => {
      const s = await sServer([...verifyArgs(), version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2']);
      const c = await handshake(s.port, { cert: pki.client.chainPem, key: boundKey });
      assert.equal(c.getProtocol(), version);
      assert.equal(c.negotiated.clientSignatureScheme, 0x0403);
      await sendSeen(c, s, `bound signature over ${version}`);
      assert.match(s.output(), /CN\s*=\s*keyward-test-client/);
      const audit = (await keydAudit()).filter((l) => l.op === 'sign' && l.bound === true);
      assert.equal(audit.at(-1)?.purpose, version === 'TLSv1.3' ? 'tls13-client-certificate-verify' : 'tls12-client-certificate-verify');
      assert.equal(audit.at(-1)?.outcome, 'ok');
    });
  }

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`SoftHSM2, ${version}: signed in the token, accepted by s_server -Verify`, async () => {
      const s = await sServer([...verifyArgs(), version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2']);
      const c = await handshake(s.port, { cert: hsmChain, key: hsmKey });
      assert.equal(c.getProtocol(), version);
      await sendSeen(c, s, `signed in the token over ${version}`);
      assert.match(s.output(), /CN\s*=\s*hsm-client/);
    });
  }
});

describe('TLS 1.2 PSK in keyd', { timeout: 60_000 }, () => {
  it('ECDHE_PSK against s_server -psk -nocert: keyd returns only the master secret', async () => {
    const s = await sServer(['-nocert', '-psk', PSK.toString('hex'), '-psk_identity', PSK_IDENTITY, '-tls1_2', '-cipher', 'ECDHE-PSK-CHACHA20-POLY1305']);
    const c = await handshake(s.port, { psk: { holder: keydPsk, identity: PSK_IDENTITY } });
    assert.equal(c.getCipher()?.standardName, 'TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256');
    await sendSeen(c, s, 'psk in keyd');
  });
});
