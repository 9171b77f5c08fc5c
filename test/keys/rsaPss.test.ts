// RSASSA-PSS keys (id-RSASSA-PSS, RFC 4055) in the key holders that sign: the schemes each
// offers (rsa_pss_pss_* within the key's parameters, never rsa_pss_rsae_* nor PKCS#1), no
// premaster decryption, refusals of the wrong scheme; then a TLS 1.3 and 1.2 handshake
// with openssl s_client -sigalgs rsa_pss_pss_* through the in-process key, the key
// process, keyd's sealed store (stored and generated keys) and a SoftHSM2 token. SoftHSM2
// cannot import an RSASSA-PSS key (softhsm2-util and pkcs11-tool reject its PKCS#8;
// PKCS#11 has no such key type): a token's CKK_RSA key serves an RSASSA-PSS certificate
// for its modulus instead. Last, delegated credentials signed by an RSASSA-PSS certificate key.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCa, issueCertificate, issueCertificateForKey, type Issuer } from '../../src/cli/pki.js';
import { DelegatedCredentialManager } from '../../src/keys/delegatedCredentials.js';
import { KeyOperationError, premasterDecryptionOf, type KeyOperations, type OperationContext } from '../../src/keys/keyOperations.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { LocalDelegatedCredentialIssuer } from '../../src/keys/localDelegatedCredentialIssuer.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { openPkcs11Key, type Pkcs11Key } from '../../src/keys/pkcs11Key.js';
import { connectKeydAdmin, connectRemoteKey, type KeydAdmin, type RemoteKey } from '../../src/keys/remoteKey.js';
import { FrameType, encodeSignRequest } from '../../src/keyd/protocol.js';
import type { Keyd } from '../../src/keyd/server.js';
import { SignatureScheme, schemeFitsPeerKey, schemesForKey, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { resolveServerConfig } from '../../src/tls/engine/config.js';
import { handshakePair } from '../support/enginePair.js';
import { makeKeydPki, readAudit, startTestKeyd, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';
import { describeRun, onlySession, startEchoServer, token, type EchoServer } from '../support/keywardServer.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

const S = SignatureScheme;
const CTX13: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify' };
const never = (): AbortSignal => new AbortController().signal;

/** A TLS 1.3 server CertificateVerify input (64 spaces, context, 0, transcript hash). */
function cvInput(hashLen = 32): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify', 'latin1'), Buffer.of(0), randomBytes(hashLen)]);
}

/** An RSASSA-PSS key restricted by RFC 4055 parameters (@types/node has saltLength a string; node takes bytes). */
function restrictedPss(hash: string, mgf1: string, saltLength: number): KeyObject {
  return generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: hash, mgf1HashAlgorithm: mgf1, saltLength: saltLength as unknown as string }).privateKey;
}

const der = (tag: number, body: Buffer): Buffer => {
  const n = body.length;
  const len = n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff);
  return Buffer.concat([Buffer.of(tag), len, body]);
};

/** The same RSA public key under the id-RSASSA-PSS OID without parameters (RFC 4055 1.2), as a certificate for a token's RSA key carries it. */
function asRsassaPss(rsa: KeyObject): KeyObject {
  const oid = Buffer.from('06092a864886f70d01010a', 'hex'); // 1.2.840.113549.1.1.10
  const bits = der(0x03, Buffer.concat([Buffer.of(0), rsa.export({ type: 'pkcs1', format: 'der' })]));
  return createPublicKey({ key: der(0x30, Buffer.concat([der(0x30, oid), bits])), format: 'der', type: 'spki' });
}

const isKeyError = (code: string, pattern?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof KeyOperationError, `expected KeyOperationError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

let dir: string;
let ca: Issuer & { certPath: string };
let leaf: { chainPem: string; keyPem: string; keyPath: string };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-rsapss-keys-'));
  ca = { ...(await createCa({ commonName: 'keyward RSA-PSS holders CA' })), certPath: join(dir, 'ca.pem') };
  writeFileSync(ca.certPath, ca.certPem);
  const issued = await issueCertificate(ca, { keyType: 'rsa-pss-2048', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  leaf = { ...issued, keyPath: join(dir, 'pss-key.pem') };
  writeFileSync(leaf.keyPath, issued.keyPem, { mode: 0o600 });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the schemes of an RSASSA-PSS key', () => {
  it('without parameters: every rsa_pss_pss_*, and nothing an rsaEncryption key signs', () => {
    const k = new LocalKey(leaf.keyPem);
    assert.deepEqual(k.schemes, [S.rsa_pss_pss_sha256, S.rsa_pss_pss_sha384, S.rsa_pss_pss_sha512]);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    assert.ok(!schemesForKey(rsa).some((s) => s >= S.rsa_pss_pss_sha256 && s <= S.rsa_pss_pss_sha512));
  });

  it('restricted to SHA-384 (MGF1 SHA-384, salt 48): rsa_pss_pss_sha384 only', () => {
    assert.deepEqual(schemesForKey(createPublicKey(restrictedPss('sha384', 'sha384', 48))), [S.rsa_pss_pss_sha384]);
    // A shorter minimum salt is fine: TLS's salt (the digest length) is at least it.
    assert.deepEqual(schemesForKey(createPublicKey(restrictedPss('sha256', 'sha256', 20))), [S.rsa_pss_pss_sha256]);
  });

  for (const [what, key, why] of [
    ['a salt longer than the digest', () => restrictedPss('sha256', 'sha256', 64), /salt length 64/],
    ['MGF1 with another hash', () => restrictedPss('sha256', 'sha512', 32), /MGF1 sha512/],
    ['SHA-1', () => restrictedPss('sha1', 'sha1', 20), /hash sha1/],
  ] as const) {
    it(`restricted to ${what}: no TLS scheme, and LocalKey says which parameters rule it out`, () => {
      const k = key();
      assert.deepEqual(schemesForKey(createPublicKey(k)), []);
      assert.throws(() => new LocalKey(k), why);
    });
  }

  it('a peer key: rsa_pss_rsae_* never fits an RSASSA-PSS key, rsa_pss_pss_* never an rsaEncryption one', () => {
    const pss = new LocalKey(leaf.keyPem).publicKey;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
      assert.equal(schemeFitsPeerKey(pss, S.rsa_pss_pss_sha256, v), true);
      assert.equal(schemeFitsPeerKey(pss, S.rsa_pss_rsae_sha256, v), false);
      assert.equal(schemeFitsPeerKey(pss, S.rsa_pkcs1_sha256, v), false);
      assert.equal(schemeFitsPeerKey(rsa, S.rsa_pss_pss_sha256, v), false);
    }
  });
});

/** The checks every holder of the leaf's key passes. */
async function checkHolder(key: KeyOperations): Promise<void> {
  assert.deepEqual(key.schemes, [S.rsa_pss_pss_sha256, S.rsa_pss_pss_sha384, S.rsa_pss_pss_sha512]);
  assert.equal(premasterDecryptionOf(key), undefined, 'an RSASSA-PSS key never decrypts (RFC 4055)');
  // The transcript hash is the suite's (32 or 48 bytes), whatever the scheme's.
  for (const [scheme, len] of [[S.rsa_pss_pss_sha256, 32], [S.rsa_pss_pss_sha384, 48], [S.rsa_pss_pss_sha512, 32]] as const) {
    const msg = cvInput(len);
    const sig = await key.sign(scheme, msg, CTX13, never());
    assert.ok(verifySignature(key.publicKey, scheme, msg, sig), `0x${scheme.toString(16)} verifies`);
  }
  await assert.rejects(key.sign(S.rsa_pss_rsae_sha256, cvInput(), CTX13, never()), isKeyError('unsupported'));
}

/** A TLS 1.3 and a TLS 1.2 handshake with s_client offering only `sigalg`, through `key` (for `chainPem`, the leaf's by default). */
async function handshakes(key: KeyOperations, sigalg: string, scheme: SignatureScheme, chainPem = leaf.chainPem): Promise<void> {
  const server: EchoServer = await startEchoServer({ certificates: [{ cert: chainPem, key }] });
  try {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const mark = server.mark();
      const sent = token('pss-holder');
      const run = await opensslClient(server.port, { cafile: ca.certPath, args: [version, '-verify_ip', '127.0.0.1', '-sigalgs', sigalg], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
      const s = parseOpensslOutput(run);
      const why = describeRun(run);
      assert.equal(s.handshakeOk, true, why);
      assert.equal(s.verifyCode, 0, why);
      assert.equal(s.peerSignatureType, 'RSA-PSS', why);
      assert.ok(run.stdout.includes(sent), why);
      assert.equal(onlySession(server, mark).negotiated.signatureScheme, scheme);
    }
  } finally {
    await server.close();
  }
}

describe('LocalKey', () => {
  it('signs rsa_pss_pss_* on the thread pool (no inline signNow), refuses rsae, has no decryption', async () => {
    const k = new LocalKey(leaf.keyPem);
    assert.equal(k.signNow, undefined);
    await checkHolder(k);
    await handshakes(k, 'rsa_pss_pss_sha512', S.rsa_pss_pss_sha512);
  });
});

describe('the key process', () => {
  let kp: KeyProcessKey;
  before(async () => {
    kp = await startKeyProcess({ keyPath: leaf.keyPath, startTimeoutMs: 10_000 });
  });
  after(() => kp?.close());

  it('offers rsa_pss_pss_*, signs them, refuses rsae, has no decryption', () => checkHolder(kp));
  it('serves TLS 1.3 and 1.2 handshakes with rsa_pss_pss_sha384', () => handshakes(kp, 'rsa_pss_pss_sha384', S.rsa_pss_pss_sha384));

  it('refuses to start on a key whose PSS parameters fit no TLS scheme, naming the file', async () => {
    const path = join(dir, 'sha1-pss.pem');
    writeFileSync(path, restrictedPss('sha1', 'sha1', 20).export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await assert.rejects(startKeyProcess({ keyPath: path, startTimeoutMs: 10_000 }), (e: Error) => e.message.includes(path) && /RSASSA-PSS key restricted to hash sha1/.test(e.message));
  });
});

describe('PKCS#11 (SoftHSM2): a token RSA key serving an RSASSA-PSS certificate', () => {
  let tok: SoftHsmToken;
  let rsaKey: SoftHsmKey;
  let ecKey: SoftHsmKey;
  let pssPublic: KeyObject;
  let key: Pkcs11Key;
  let leafForToken: string;
  before(async () => {
    tok = await createSoftHsmToken();
    rsaKey = await tok.generateKey('rsa-2048', 'pss-rsa');
    ecKey = await tok.generateKey('ec-p256', 'pss-ec');
    pssPublic = asRsassaPss(rsaKey.publicKey);
    const cert = await issueCertificateForKey(ca, pssPublic, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
    leafForToken = cert.chainPem;
    key = await openPkcs11Key({ uri: rsaKey.uri, module: tok.module, pin: tok.pin, publicKey: pssPublic });
  });
  after(async () => {
    await key?.close();
    tok?.cleanup();
  });

  it('takes the certificate key for the token key: rsa_pss_pss_* with CKM_RSA_PKCS_PSS, no decryption', async () => {
    assert.equal(key.publicKey.asymmetricKeyType, 'rsa-pss');
    assert.equal(key.info.keyType, 'rsa');
    await checkHolder(key);
  });

  it('serves TLS 1.3 and 1.2 handshakes with rsa_pss_pss_sha256 (the engine verifies each token signature)', () =>
    handshakes(key, 'rsa_pss_pss_sha256', S.rsa_pss_pss_sha256, leafForToken));

  it('keyd serves the token key for its RSASSA-PSS certificate ("certificate" in a pkcs11 entry), verifying each result', async () => {
    const keydDir = join(dir, 'keyd-token');
    mkdirSync(keydDir);
    const certPath = join(keydDir, 'token-cert.pem');
    writeFileSync(certPath, leafForToken);
    const pkcs11 = [{ module: tok.module, uri: rsaKey.uri, pinFile: tok.pinFile, certificate: certPath, serverNames: ['localhost'] }];
    const { keyd } = await startTestKeyd(keydDir, undefined, { listen: { unix: join(keydDir, 'keyd.sock') }, pkcs11 });
    let remote: RemoteKey | undefined;
    try {
      remote = await connectRemoteKey({ addresses: [`unix:${join(keydDir, 'keyd.sock')}`], serverName: 'localhost', keyType: 'rsa-pss' });
      assert.equal(remote.keyId, keyIdOf(pssPublic));
      await checkHolder(remote);
      await handshakes(remote, 'rsa_pss_pss_sha384', S.rsa_pss_pss_sha384, leafForToken);
    } finally {
      await remote?.close();
      await keyd.close();
    }
  });

  it('refuses an RSASSA-PSS public key of another modulus, or for an EC token key', async () => {
    const other = asRsassaPss(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
    await assert.rejects(openPkcs11Key({ uri: rsaKey.uri, module: tok.module, pin: tok.pin, publicKey: other }), isKeyError('refused', /does not match/));
    await assert.rejects(openPkcs11Key({ uri: ecKey.uri, module: tok.module, pin: tok.pin, publicKey: pssPublic }), isKeyError('refused', /needs an RSA key/));
  });
});

describe('keyd: an RSASSA-PSS key in its sealed store', () => {
  let keyd: Keyd;
  let pki: KeydPki;
  let admin: KeydAdmin;
  let remote: RemoteKey;
  let auditFile: string;
  before(async () => {
    mkdirSync(join(dir, 'keyd'));
    pki = await makeKeydPki(join(dir, 'keyd'), ['front', 'admin']);
    const started = await startTestKeyd(join(dir, 'keyd'), pki);
    keyd = started.keyd;
    auditFile = started.config.audit.file;
    admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.tlsAddress!));
    const info = await admin.putKey(createPrivateKey(leaf.keyPem), ['localhost']);
    assert.equal(info.keyType, 'rsa-pss');
    // Chosen by server name and key type, as a front asks for it.
    remote = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), serverName: 'localhost', keyType: 'rsa-pss' });
  });
  after(async () => {
    await remote?.close();
    admin?.close();
    await keyd?.close();
  });

  it('grants rsa_pss_pss_* only, signs them, refuses rsae (in keyd too, audited), has no decryption', async () => {
    await checkHolder(remote);
    // The front's RemoteKey refuses rsae itself; keyd refuses it when asked directly.
    const body = encodeSignRequest({ key: { keyId: remote.keyId }, scheme: S.rsa_pss_rsae_sha256, message: cvInput(), ctx: { ...CTX13, connectionId: 'pss-rsae' } });
    await assert.rejects(remote.client.request(FrameType.SIGN, body), isKeyError('unsupported', /rsa_pss_rsae_sha256 does not fit key .* \(rsa-pss\)/));
    const audit = await readAudit(auditFile);
    assert.ok(audit.some((l) => l.op === 'sign' && l.scheme === 'rsa_pss_pss_sha384' && l.outcome === 'ok'));
    const refused = audit.find((l) => l.connectionId === 'pss-rsae');
    assert.deepEqual([refused?.scheme, refused?.keyId], ['rsa_pss_rsae_sha256', remote.keyId]);
    assert.notEqual(refused?.outcome, 'ok');
  });

  it('serves TLS 1.3 and 1.2 handshakes with rsa_pss_pss_sha256', () => handshakes(remote, 'rsa_pss_pss_sha256', S.rsa_pss_pss_sha256));

  it('generates one (rsa-pss-2048): never leaves keyd, granted rsa_pss_pss_* only', async () => {
    const info = await admin.generateKey('rsa-pss-2048', ['gen-pss.example']);
    assert.equal(info.keyType, 'rsa-pss');
    assert.deepEqual(info.schemes, [S.rsa_pss_pss_sha256, S.rsa_pss_pss_sha384, S.rsa_pss_pss_sha512]);
    const pub = createPublicKey({ key: Buffer.from(info.spki), format: 'der', type: 'spki' });
    assert.equal(pub.asymmetricKeyType, 'rsa-pss');
  });

  it('refuses to store a key whose PSS parameters fit no TLS scheme, saying which', async () => {
    await assert.rejects(admin.putKey(restrictedPss('sha1', 'sha1', 20), ['sha1.example']), isKeyError('bad-request', /RSASSA-PSS key restricted to hash sha1/));
  });
});

describe('delegated credentials (RFC 9345) under an RSASSA-PSS certificate', () => {
  it('the certificate key signs each credential with rsa_pss_pss_sha256; keyward\'s client verifies it', async () => {
    const issued = await issueCertificate(ca, { keyType: 'rsa-pss-2048', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server', delegation: true });
    const privateKey = createPrivateKey(issued.keyPem);
    const manager = new DelegatedCredentialManager({ issuer: new LocalDelegatedCredentialIssuer(privateKey), certificate: new X509Certificate(issued.certPem).raw });
    try {
      assert.equal(await manager.start(), true);
      assert.equal(manager.current()?.algorithm, S.rsa_pss_pss_sha256);
      const key = certifiedKey(issued.chainPem, new LocalKey(privateKey), { delegatedCredentials: manager });
      const p = await handshakePair(resolveServerConfig({ certificates: [key] }), resolveClientConfig({ serverName: 'localhost', delegatedCredentials: true }));
      assert.ok(p.client.isConnected && p.server.isConnected, `server: ${p.s.error?.message ?? '-'}; client: ${p.c.error?.message ?? '-'}`);
      assert.equal(p.client.info.delegatedCredential, true);
      assert.deepEqual(p.s.signs, [], 'the credential key signed CertificateVerify, not the certificate key');
    } finally {
      manager.stop();
    }
  });
});
