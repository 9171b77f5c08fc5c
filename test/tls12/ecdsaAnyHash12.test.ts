// In TLS 1.2 an ECDSA scheme names only the hash (RFC 5246 7.4.1.4.1, RFC 8422 5.4): a
// P-256 key signs the ServerKeyExchange with ECDSA+SHA-384 and a P-384 key with
// ECDSA+SHA-256 when that is all the client offers, through every key holder (each checks
// the scheme against the key). In TLS 1.3 the scheme binds the curve, and still does.
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { startKeyProcess } from '../../src/keys/keyProcess.js';
import { connectKeydAdmin, connectRemoteKey } from '../../src/keys/remoteKey.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';
import { makeKeydPki, startTestKeyd, tempDir, tlsClientOptions } from '../support/keydFixture.js';
import { certificate, describeRun, onlySession, startEchoServer, type EchoServer } from '../support/keywardServer.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const TIMEOUT = 10_000;
const CURVES = ['ecdsa-p256', 'ecdsa-p384'] as const;
type Curve = (typeof CURVES)[number];
type Holder = 'local' | 'keyProcess' | 'keyd';

let pki: PkiFixtures;
let keyd: Keyd;
let cleanupDir: () => Promise<void>;
const holders: { close?(): Promise<void> }[] = [];
const keys = {} as Record<Exclude<Holder, 'local'>, Record<Curve, KeyOperations>>;
const servers = {} as Record<Holder, Record<Curve, EchoServer>>;

before(async () => {
  pki = await getPki();
  const t = await tempDir('tls12-ecdsa-');
  cleanupDir = t.cleanup;
  const kpki = await makeKeydPki(t.dir, ['front', 'admin']);
  keyd = (await startTestKeyd(t.dir, kpki)).keyd;
  const admin = await connectKeydAdmin(tlsClientOptions(kpki, 'admin', keyd.tlsAddress!));
  try {
    for (const c of CURVES) await admin.putKey(createPrivateKey(pki.server[c].keyPem));
  } finally {
    admin.close();
  }
  keys.keyd = {} as Record<Curve, KeyOperations>;
  keys.keyProcess = {} as Record<Curve, KeyOperations>;
  for (const c of CURVES) {
    const publicKey = new X509Certificate(pki.server[c].certPem).publicKey;
    keys.keyd[c] = await connectRemoteKey({ ...tlsClientOptions(kpki, 'front', keyd.tlsAddress!), keyId: keyIdOf(publicKey) });
    keys.keyProcess[c] = await startKeyProcess({ keyPath: pki.server[c].keyPath, expectedPublicKey: publicKey });
    holders.push(keys.keyd[c], keys.keyProcess[c]);
  }
  for (const h of ['local', 'keyProcess', 'keyd'] as const) {
    servers[h] = {} as Record<Curve, EchoServer>;
    for (const c of CURVES) {
      servers[h][c] = await startEchoServer({ certificates: [h === 'local' ? certificate(pki.server[c]) : { cert: pki.server[c].chainPem, key: keys[h][c] }] });
    }
  }
});

after(async () => {
  for (const byCurve of Object.values(servers)) for (const s of Object.values(byCurve)) await s.close();
  for (const h of holders) await h.close?.();
  await keyd?.close();
  await cleanupDir?.();
});

async function tls12(server: EchoServer, sigalgs: string, digest: 'SHA256' | 'SHA384', scheme: SignatureScheme): Promise<void> {
  const sent = `ec12-${randomBytes(6).toString('hex')}`;
  const mark = server.mark();
  const run = await opensslClient(server.port, {
    args: ['-tls1_2', '-sigalgs', sigalgs, '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
    cafile: pki.ca.certPath,
    input: `${sent}\n`,
    waitFor: sent,
    timeoutMs: TIMEOUT,
  });
  const why = describeRun(run);
  const summary = parseOpensslOutput(run);
  assert.equal(summary.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256', why);
  assert.equal(summary.verifyCode, 0, why);
  assert.equal(summary.peerSignatureType, 'ECDSA', why);
  assert.equal(summary.peerSigningDigest, digest, why);
  assert.ok(run.stdout.includes(sent), why);
  const session = onlySession(server, mark);
  assert.equal(session.protocol, 'TLSv1.2');
  assert.equal(session.negotiated.signatureScheme, scheme);
}

for (const holder of ['local', 'keyProcess', 'keyd'] as const) {
  describe(`TLS 1.2 ECDSA with another curve's hash, key ${holder === 'local' ? 'in process' : `in ${holder}`}`, () => {
    it('a P-256 key signs with ECDSA+SHA384 when the client offers only that', () =>
      tls12(servers[holder]['ecdsa-p256'], 'ECDSA+SHA384', 'SHA384', SignatureScheme.ecdsa_secp384r1_sha384));
    it('a P-384 key signs with ECDSA+SHA256 when the client offers only that', () =>
      tls12(servers[holder]['ecdsa-p384'], 'ECDSA+SHA256', 'SHA256', SignatureScheme.ecdsa_secp256r1_sha256));
  });
}

describe('ECDSA scheme choice and the TLS 1.3 curve binding', () => {
  it("TLS 1.2: the hash of the key's own curve is preferred when the client offers it", () =>
    tls12(servers.local['ecdsa-p384'], 'ECDSA+SHA256:ECDSA+SHA384', 'SHA384', SignatureScheme.ecdsa_secp384r1_sha384));

  it('TLS 1.3: a client offering only ecdsa_secp384r1_sha384 gets handshake_failure from a P-256 server', async () => {
    const server = servers.local['ecdsa-p256'];
    const mark = server.mark();
    const run = await opensslClient(server.port, { args: ['-tls1_3', '-sigalgs', 'ecdsa_secp384r1_sha384'], cafile: pki.ca.certPath, input: 'x\n', timeoutMs: TIMEOUT });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).handshakeOk, false, why);
    assert.match(run.stderr, /alert handshake failure|alert number 40/, why);
    const { sessions, errors } = server.since(mark);
    assert.equal(sessions.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].alertSent, 40, errors[0].error.message);
  });

  // A front that claims TLS 1.2 for a TLS 1.3 CertificateVerify input: the holder goes by
  // the input's shape, so the curve binding holds.
  for (const holder of ['keyProcess', 'keyd'] as const) {
    it(`${holder} refuses a P-256 key with ecdsa_secp384r1_sha384 for a TLS 1.3 CertificateVerify`, async () => {
      const input = certificateVerifyContent(randomBytes(48), 'server');
      await assert.rejects(
        keys[holder]['ecdsa-p256'].sign(SignatureScheme.ecdsa_secp384r1_sha384, input, { tlsVersion: 'TLSv1.2', purpose: 'tls13-server-certificate-verify' }, new AbortController().signal),
        (e: Error & { code?: string }) => e.code === 'unsupported' && /ecdsa_secp384r1_sha384|0x0503/.test(e.message),
      );
    });
  }
});
