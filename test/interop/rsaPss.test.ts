// RSASSA-PSS keys (SPKI id-RSASSA-PSS) and the rsa_pss_pss_* schemes (RFC 8446 4.2.3), in
// both roles against real peers. keyward's server, its certificate's key an RSASSA-PSS
// one: openssl s_client -sigalgs rsa_pss_pss_* in TLS 1.3 and 1.2, gnutls-cli with
// SIGN-RSA-PSS-SHA256, node:tls with sigalgs, a key restricted to SHA-384 (RFC 4055
// parameters), and the refusals (a client offering only rsa_pss_rsae_* or RSA key
// exchange gets handshake_failure). keyward's client against openssl s_server and
// gnutls-serv with an `-newkey rsa-pss` chain signed with RSASSA-PSS, a server signing
// such a key with rsa_pss_rsae_* (illegal_parameter), and client certificates with
// RSASSA-PSS keys both ways (openssl, Python ssl, keyward's client).
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as cryptoSign, constants } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCa, issueCertificate, issueCertificateForKey, type Issuer } from '../../src/cli/pki.js';
import { vouchForSignatures, type KeyOperations } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { connect } from '../../src/node/clientSocket.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey } from '../../src/tls/engine/certificates.js';
import { handshake, sendSeen, sServer, stopSServers } from '../client/clientHelpers.js';
import { gnutlsCli, nodeTlsClient, opensslClient, parseGnutlsOutput, parseOpensslOutput, pythonSsl } from '../support/peers.js';
import { describeRun, onlySession, startEchoServer, token, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { runProcess } from '../support/processes.js';

const S = SignatureScheme;
let dir: string;
let ca: Issuer & { certPath: string };
/** PEM of an RSASSA-PSS leaf without parameters (every rsa_pss_pss_* scheme), its key, and a client one. */
let pss: { chainPem: string; keyPem: string };
let pssClient: { chainPem: string; keyPem: string; chainPath: string; keyPath: string };
/** openssl-made: a CA with an RSASSA-PSS key, and a server certificate it signed with RSASSA-PSS. */
let osl: { caPath: string; caPem: string; certPath: string; keyPath: string };
let server: EchoServer;
let restricted: EchoServer;
let mutual: EchoServer;

async function openssl(args: string[]): Promise<void> {
  const run = await runProcess('openssl', args, { timeoutMs: 15_000 });
  assert.equal(run.code, 0, `openssl ${args.join(' ')}\n${run.stderr}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-rsapss-'));
  const issuer = await createCa({ commonName: 'keyward RSA-PSS test CA' });
  ca = { ...issuer, certPath: join(dir, 'ca.pem') };
  writeFileSync(ca.certPath, ca.certPem);
  pss = await issueCertificate(ca, { keyType: 'rsa-pss-2048', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  const client = await issueCertificate(ca, { keyType: 'rsa-pss-2048', commonName: 'pss-client', usage: 'client' });
  pssClient = { ...client, chainPath: join(dir, 'client-chain.pem'), keyPath: join(dir, 'client-key.pem') };
  writeFileSync(pssClient.chainPath, client.chainPem);
  writeFileSync(pssClient.keyPath, client.keyPem, { mode: 0o600 });
  // RFC 4055 parameters: SHA-384, MGF1 SHA-384, salt at least 48 bytes: rsa_pss_pss_sha384 only.
  // (@types/node has saltLength a string; node:crypto takes the number of bytes.)
  const only384 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha384', mgf1HashAlgorithm: 'sha384', saltLength: 48 as unknown as string });
  const only384Cert = await issueCertificateForKey(ca, only384.publicKey, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });

  osl = { caPath: join(dir, 'osl-ca.pem'), caPem: '', certPath: join(dir, 'osl-cert.pem'), keyPath: join(dir, 'osl-key.pem') };
  const caKey = join(dir, 'osl-ca-key.pem');
  const csr = join(dir, 'osl.csr');
  const ext = join(dir, 'osl.ext');
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n');
  const rsaPss = ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-nodes'];
  await openssl(['req', '-x509', ...rsaPss, '-keyout', caKey, '-out', osl.caPath, '-subj', '/CN=openssl RSA-PSS CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await openssl(['req', '-new', ...rsaPss, '-keyout', osl.keyPath, '-out', csr, '-subj', '/CN=localhost']);
  await openssl(['x509', '-req', '-in', csr, '-CA', osl.caPath, '-CAkey', caKey, '-set_serial', '7', '-days', '2', '-out', osl.certPath, '-extfile', ext]);
  osl.caPem = readFileSync(osl.caPath, 'utf8');

  server = await startEchoServer({ certificates: [{ cert: pss.chainPem, key: new LocalKey(pss.keyPem) }], rsaKeyExchange: true });
  restricted = await startEchoServer({ certificates: [{ cert: only384Cert.chainPem, key: new LocalKey(only384.privateKey) }] });
  mutual = await startEchoServer({ certificates: [{ cert: pss.chainPem, key: new LocalKey(pss.keyPem) }], requestCert: true, ca: [ca.certPem] });
});

after(async () => {
  stopSServers();
  await Promise.all([server?.close(), restricted?.close(), mutual?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One s_client echo against `target`, verifying the chain against the test CA. */
async function sClient(target: EchoServer, args: string[]) {
  const sent = token('pss');
  const mark = target.mark();
  const run = await opensslClient(target.port, { cafile: ca.certPath, args: ['-verify_ip', '127.0.0.1', ...args], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
  return { run, summary: parseOpensslOutput(run), sent, since: () => target.since(mark), mark };
}

describe('keyward server with an RSASSA-PSS certificate: openssl s_client', () => {
  const cases: [string, SignatureScheme, string][] = [
    ['rsa_pss_pss_sha256', S.rsa_pss_pss_sha256, 'SHA256'],
    ['rsa_pss_pss_sha384', S.rsa_pss_pss_sha384, 'SHA384'],
    ['rsa_pss_pss_sha512', S.rsa_pss_pss_sha512, 'SHA512'],
  ];
  for (const version of ['-tls1_3', '-tls1_2']) {
    for (const [name, scheme, digest] of cases) {
      it(`${version} -sigalgs ${name}`, async () => {
        const { run, summary, sent, mark } = await sClient(server, [version, '-sigalgs', name]);
        const why = describeRun(run);
        assert.equal(summary.handshakeOk, true, why);
        assert.equal(summary.protocol, version === '-tls1_3' ? 'TLSv1.3' : 'TLSv1.2', why);
        assert.equal(summary.verifyCode, 0, why);
        assert.equal(summary.peerSignatureType, 'RSA-PSS', why);
        assert.equal(summary.peerSigningDigest, digest, why);
        // TLS 1.2: an ECDHE_RSA suite carries it (RFC 8446 4.2.3), as OpenSSL does.
        if (version === '-tls1_2') assert.match(summary.cipher ?? '', /^ECDHE-RSA-/, why);
        assert.ok(run.stdout.includes(sent), why);
        assert.equal(onlySession(server, mark).negotiated.signatureScheme, scheme);
      });
    }
  }

  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`${version}: a client offering only rsa_pss_rsae_* and PKCS#1 gets handshake_failure`, async () => {
      const { run, summary, since } = await sClient(server, [version, '-sigalgs', 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256']);
      const why = describeRun(run);
      assert.equal(summary.handshakeOk, false, why);
      assert.match(run.stderr, /alert handshake failure|alert number 40/, why);
      const { sessions, errors } = since();
      assert.equal(sessions.length, 0);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].alertSent, 40, errors[0].error.message);
    });
  }

  it('TLS 1.2 RSA key exchange never uses the RSASSA-PSS key (handshake_failure, though the server enables it)', async () => {
    const { run, summary, since } = await sClient(server, ['-tls1_2', '-cipher', 'AES128-GCM-SHA256']);
    const why = describeRun(run);
    assert.equal(summary.handshakeOk, false, why);
    assert.match(run.stderr, /alert handshake failure|alert number 40/, why);
    assert.equal(since().errors[0]?.alertSent, 40);
  });
});

describe('an RSASSA-PSS key restricted to SHA-384 (RFC 4055 parameters)', () => {
  it('signs with rsa_pss_pss_sha384 when the client offers SHA-256 first', async () => {
    const { run, summary, mark } = await sClient(restricted, ['-tls1_3', '-sigalgs', 'rsa_pss_pss_sha256:rsa_pss_pss_sha384']);
    const why = describeRun(run);
    assert.equal(summary.handshakeOk, true, why);
    assert.equal(summary.peerSigningDigest, 'SHA384', why);
    assert.equal(onlySession(restricted, mark).negotiated.signatureScheme, S.rsa_pss_pss_sha384);
  });

  it('refuses a client offering only rsa_pss_pss_sha256 and sha512 with handshake_failure', async () => {
    const { run, summary, since } = await sClient(restricted, ['-tls1_3', '-sigalgs', 'rsa_pss_pss_sha256:rsa_pss_pss_sha512']);
    assert.equal(summary.handshakeOk, false, describeRun(run));
    assert.equal(since().errors[0]?.alertSent, 40);
  });
});

describe('keyward server with an RSASSA-PSS certificate: gnutls-cli and node:tls', () => {
  for (const version of ['TLS1.3', 'TLS1.2']) {
    it(`gnutls-cli ${version} with only SIGN-RSA-PSS-SHA256`, async () => {
      const sent = token('gnutls-pss');
      const mark = server.mark();
      const run = await gnutlsCli(server.port, {
        cafile: ca.certPath,
        priority: `NORMAL:-VERS-ALL:+VERS-${version}:-SIGN-ALL:+SIGN-RSA-PSS-SHA256`,
        input: `${sent}\n`,
        waitFor: sent,
        timeoutMs: 10_000,
      });
      const g = parseGnutlsOutput(run);
      const why = describeRun(run);
      assert.equal(g.handshakeCompleted, true, why);
      assert.equal(g.trusted, true, why);
      assert.equal(g.protocol, version === 'TLS1.3' ? 'TLSv1.3' : 'TLSv1.2', why);
      assert.equal(g.signature, 'RSA-PSS-SHA256', why);
      assert.equal(onlySession(server, mark).negotiated.signatureScheme, S.rsa_pss_pss_sha256);
    });
  }

  it('gnutls-cli with only SIGN-RSA-PSS-RSAE-SHA256 is refused with handshake_failure', async () => {
    const mark = server.mark();
    const run = await gnutlsCli(server.port, { cafile: ca.certPath, priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256', timeoutMs: 10_000 });
    const g = parseGnutlsOutput(run);
    assert.equal(g.handshakeCompleted, false, describeRun(run));
    assert.equal(g.alert, 40, describeRun(run));
    assert.equal(server.since(mark).errors[0]?.alertSent, 40);
  });

  it('node:tls with sigalgs rsa_pss_pss_sha384', async () => {
    const mark = server.mark();
    const sent = token('node-pss');
    const r = await nodeTlsClient(server.port, { ca: ca.certPem, servername: 'localhost', sigalgs: 'rsa_pss_pss_sha384', minVersion: 'TLSv1.3', send: sent, until: sent });
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.authorized, true, r.authorizationError);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.received, sent);
    assert.equal(onlySession(server, mark).negotiated.signatureScheme, S.rsa_pss_pss_sha384);
  });
});

describe('keyward client, server certificate an RSASSA-PSS one (openssl s_server, chain signed with RSASSA-PSS)', () => {
  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`${version}: verifies the chain and the rsa_pss_pss_sha256 signature`, async () => {
      const s = await sServer(['-cert', osl.certPath, '-key', osl.keyPath, version]);
      const c = await handshake(s.port, osl.caPem);
      assert.equal(c.getProtocol(), version === '-tls1_3' ? 'TLSv1.3' : 'TLSv1.2');
      assert.equal(c.negotiated.signatureScheme, S.rsa_pss_pss_sha256);
      await sendSeen(c, s, `pss client ${version}`);
    });
  }

  it('node:tls server (TLS 1.3), asking for a client certificate: both signatures rsa_pss_pss_*', async () => {
    const pem = (p: string) => readFileSync(p, 'utf8');
    const peers: (string | undefined)[] = [];
    const s = tls.createServer({ key: pem(osl.keyPath), cert: pem(osl.certPath), ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (sock) => {
      peers.push(sock.getPeerX509Certificate()?.subject);
      sock.on('data', (d) => sock.write(d));
      sock.on('error', () => undefined);
    });
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    try {
      const c = await handshake((s.address() as AddressInfo).port, osl.caPem, { cert: pssClient.chainPem, key: pssClient.keyPem });
      assert.equal(c.getProtocol(), 'TLSv1.3');
      assert.equal(c.negotiated.signatureScheme, S.rsa_pss_pss_sha256);
      assert.equal(c.negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
      c.write('node\n');
      await once(c, 'data');
      c.destroy();
      assert.match(peers[0] ?? '', /CN=pss-client/);
    } finally {
      s.close();
    }
  });

  it('a client that does not offer rsa_pss_pss_* gets the server\'s handshake_failure', async () => {
    const s = await sServer(['-cert', osl.certPath, '-key', osl.keyPath, '-tls1_3']);
    const err = await handshake(s.port, osl.caPem, { engine: { signatureSchemes: [S.rsa_pss_rsae_sha256, S.ecdsa_secp256r1_sha256] } }).then(
      () => assert.fail('handshake succeeded'),
      (e: Error & { code?: string }) => e,
    );
    assert.equal(err.code, 'ERR_TLS_ALERT_RECEIVED_HANDSHAKE_FAILURE', err.message);
  });
});

/**
 * A holder that signs for an RSASSA-PSS certificate with rsa_pss_rsae_sha256 (a server's,
 * or a client's): the bytes verify under the modulus, but RFC 8446 4.2.3 forbids the
 * scheme for such a key.
 */
function rsaeSigningHolder(keyPem: string, chainPem: string) {
  const honest = new LocalKey(keyPem);
  const holder: KeyOperations = {
    publicKey: honest.publicKey,
    keyId: honest.keyId,
    schemes: [S.rsa_pss_rsae_sha256],
    sign: (_scheme, message) => Promise.resolve(cryptoSign('sha256', message, { key: keyPem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })),
  };
  // It stands for a holder whose results are not re-checked, so the peer sees the scheme.
  vouchForSignatures(holder);
  const certified = certifiedKey(chainPem, honest);
  return { ...certified, key: holder, schemes: [S.rsa_pss_rsae_sha256] };
}

describe('a server that signs its RSASSA-PSS key with rsa_pss_rsae_*', () => {
  let liar: EchoServer;
  before(async () => {
    liar = await startEchoServer({ certificates: [rsaeSigningHolder(pss.keyPem, pss.chainPem)] });
  });
  after(() => liar?.close());

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`keyward's client refuses it with illegal_parameter (${version})`, async () => {
      const mark = liar.mark();
      const err = await handshake(liar.port, ca.certPem, { maxVersion: version }).then(
        () => assert.fail('handshake succeeded'),
        (e: Error) => e,
      );
      assert.match(err.message, /rsa_pss_rsae_sha256, which its certificate's key cannot use/);
      await waitUntil(() => liar.since(mark).errors.length > 0, 'the server to see the alert');
      const { errors } = liar.since(mark);
      assert.equal(errors[0]?.alertReceived, 47, errors[0]?.error.message);
    });
  }

  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`openssl s_client ${version} refuses it too ("wrong signature type", illegal_parameter)`, async () => {
      const { run, sent, since } = await sClient(liar, [version]);
      assert.match(run.stderr, /wrong signature type/, describeRun(run));
      assert.ok(!run.stdout.includes(sent), describeRun(run));
      await waitUntil(() => since().errors.length > 0, 'the server to see the alert');
      assert.equal(since().sessions.length, 0);
      assert.equal(since().errors[0].alertReceived, 47, since().errors[0].error.message);
    });
  }
});

describe('client certificates with RSASSA-PSS keys (mutual TLS)', () => {
  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`openssl s_client ${version} presents one; keyward's server verifies it`, async () => {
      const { run, summary, mark } = await sClient(mutual, [version, '-cert', pssClient.chainPath, '-key', pssClient.keyPath]);
      assert.equal(summary.handshakeOk, true, describeRun(run));
      const session = onlySession(mutual, mark);
      assert.equal(session.negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
      assert.equal(session.negotiated.signatureScheme, S.rsa_pss_pss_sha256);
    });

    it(`keyward's client ${version} presents one to openssl s_server -Verify`, async () => {
      const s = await sServer(['-cert', osl.certPath, '-key', osl.keyPath, '-Verify', '1', '-CAfile', ca.certPath, version]);
      const c = await handshake(s.port, osl.caPem, { cert: pssClient.chainPem, key: pssClient.keyPem });
      assert.equal(c.negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
      await sendSeen(c, s, `pss client cert ${version}`);
      assert.match(s.output(), /CN\s*=\s*pss-client/);
    });
  }

  for (const version of ['TLSv1_3', 'TLSv1_2'] as const) {
    it(`Python ssl ${version} presents one and verifies the server's`, async () => {
      const mark = mutual.mark();
      const sent = token('python-pss');
      const r = await pythonSsl(mutual.port, { cafile: ca.certPath, minVersion: version, maxVersion: version, certfile: pssClient.chainPath, keyfile: pssClient.keyPath, send: sent, until: sent, timeoutMs: 10_000 });
      assert.equal(r.report?.ok, true, describeRun(r));
      assert.equal(r.report?.received, sent);
      const session = onlySession(mutual, mark);
      assert.equal(session.negotiated.signatureScheme, S.rsa_pss_pss_sha256);
      assert.equal(session.negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
    });
  }

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`a client that signs its RSASSA-PSS certificate with rsa_pss_rsae_* gets illegal_parameter (${version})`, async () => {
      const mark = mutual.mark();
      const c = connect({ port: mutual.port, host: 'localhost', ca: ca.certPem, maxVersion: version, handshakeTimeout: 10_000, engine: { certificate: rsaeSigningHolder(pssClient.keyPem, pssClient.chainPem) } });
      const [err] = (await once(c, 'error')) as [Error & { code?: string }];
      assert.equal(err.code, 'ERR_TLS_ALERT_RECEIVED_ILLEGAL_PARAMETER', err.message);
      await waitUntil(() => mutual.since(mark).errors.length > 0, 'the server to refuse it');
      const { sessions, errors } = mutual.since(mark);
      assert.equal(errors[0].alertSent, 47, errors[0].error.message);
      assert.match(errors[0].error.message, /client signed with rsa_pss_rsae_sha256, which its certificate's key cannot use/);
      assert.equal(sessions.length, 0);
    });
  }

  it('keyward client to keyward server, both RSASSA-PSS', async () => {
    const mark = mutual.mark();
    const c = connect({ port: mutual.port, host: 'localhost', ca: ca.certPem, cert: pssClient.chainPem, key: pssClient.keyPem, handshakeTimeout: 10_000 });
    await once(c, 'secureConnect');
    assert.equal(c.negotiated.signatureScheme, S.rsa_pss_pss_sha256);
    assert.equal(c.negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
    c.write('both pss\n');
    await once(c, 'data');
    c.destroy();
    assert.equal(onlySession(mutual, mark).negotiated.clientSignatureScheme, S.rsa_pss_pss_sha256);
  });
});
