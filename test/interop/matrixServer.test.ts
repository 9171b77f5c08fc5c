// The server-role interop matrix: keyward as the server (createServer with the key in this
// process and in a key process; `keyward serve` with a key process and client certificates)
// against openssl s_client, gnutls-cli, curl, Python ssl, node:tls and NSS tstclnt, in the
// cells the per-peer suites (openssl.test.ts, gnutls.test.ts, tls12/interop12.test.ts...)
// leave out: ECDSA P-521, Ed448 and RSASSA-PSS certificates, every TLS 1.2 ECDHE suite,
// HelloRetryRequest to P-521, max_fragment_length and split sends, OCSP status requests,
// unknown SNI, resumption from s_client's session files, TLS 1.2 renegotiation (refused with
// a warning no_renegotiation), GnuTLS priority strings and its rehandshake, a ~60 KB
// certificate, client certificates of every type. One representative cell per behaviour.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { startServe, type KeywardChild } from '../support/keywardCli.js';
import { certificate, describeRun, onlySession, receivedText, startEchoServer, startRecordProxy, token, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { getMatrixCerts, type MatrixCerts } from '../support/matrixCerts.js';
import { createNssDb, tstclnt } from '../support/nss.js';
import { curl, gnutlsCli, nodeTlsClient, opensslClient, parseGnutlsOutput, parseOpensslOutput, pythonSsl } from '../support/peers.js';

let certs: MatrixCerts;
/** ECDSA P-521 certificate, key in this process; groups P-521 then X25519 (so a P-256 share gets a HelloRetryRequest). */
let p521: EchoServer;
/** Ed448 certificate, key in a key process. */
let ed448: EchoServer;
let ed448Key: KeyProcessKey;
/** RSA-2048 (rsaEncryption) certificate, key in this process. */
let rsa: EchoServer;
let dir: string;

before(async () => {
  certs = await getMatrixCerts();
  dir = mkdtempSync(join(tmpdir(), 'keyward-matrix-'));
  const p = certs.byType['ecdsa-p521'];
  p521 = await startEchoServer({ certificates: [{ cert: p.chainPem, key: new LocalKey(p.keyPem) }], groups: [NamedGroup.secp521r1, NamedGroup.x25519] });
  const e = certs.byType.ed448;
  ed448Key = await startKeyProcess({ keyPath: e.keyPath, expectedPublicKey: new LocalKey(e.keyPem).publicKey });
  ed448 = await startEchoServer({ certificates: [{ cert: e.chainPem, key: ed448Key }] });
  rsa = await startEchoServer({ certificates: [certificate(certs.pki.server['rsa-2048'])] });
});

after(async () => {
  await p521?.close();
  await ed448?.close();
  await rsa?.close();
  await ed448Key?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One s_client run verifying against the fixture CA, sending a line and waiting for its echo. */
async function sClient(server: EchoServer, args: string[], opts: { input?: string | string[]; waitFor?: string } = {}) {
  const sent = token('line');
  const run = await opensslClient(server.port, {
    cafile: certs.pki.ca.certPath,
    args,
    input: opts.input ?? `${sent}\n`,
    waitFor: opts.waitFor ?? sent,
    timeoutMs: 10_000,
  });
  return { run, s: parseOpensslOutput(run), sent, why: describeRun(run) };
}

/** s_client ended with the server's alert `alert` and no session was established. */
async function refused(server: EchoServer, args: string[], alert: AlertDescription): Promise<void> {
  const mark = server.mark();
  const { run, s, why } = await sClient(server, args);
  assert.equal(s.handshakeOk && /Verify return code: 0/.test(run.stdout) && !/alert/.test(run.stderr), false, why);
  assert.match(run.stderr, new RegExp(`SSL alert number ${alert}\\b`), why);
  await waitUntil(() => server.since(mark).errors.length === 1, 'the server to report the failed handshake');
  assert.equal(server.since(mark).sessions.length, 0);
  assert.equal(server.since(mark).errors[0].alertSent, alert, server.since(mark).errors[0].error.message);
}

describe('openssl s_client x keyward server: certificates beyond the fixture types', () => {
  it('ECDSA P-521 certificate, TLS 1.3: ecdsa_secp521r1_sha512, chain verified, echo', async () => {
    const mark = p521.mark();
    const { s, sent, why, run } = await sClient(p521, ['-tls1_3']);
    assert.equal(s.protocol, 'TLSv1.3', why);
    assert.equal(s.verifyCode, 0, why);
    assert.equal(s.peerSignatureType, 'ECDSA', why);
    assert.equal(s.peerSigningDigest, 'SHA512', why);
    assert.ok(run.stdout.includes(sent), why);
    assert.equal(onlySession(p521, mark).negotiated.signatureScheme, SignatureScheme.ecdsa_secp521r1_sha512);
  });

  it('Ed448 certificate in a key process, TLS 1.3 and TLS 1.2', async () => {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const mark = ed448.mark();
      const { s, sent, why, run } = await sClient(ed448, [version]);
      assert.equal(s.protocol, version === '-tls1_3' ? 'TLSv1.3' : 'TLSv1.2', why);
      assert.equal(s.verifyCode, 0, why);
      assert.equal(s.peerSignatureType, 'ed448', why);
      assert.ok(run.stdout.includes(sent), why);
      assert.equal(onlySession(ed448, mark).negotiated.signatureScheme, SignatureScheme.ed448);
    }
  });

  it('a client accepting only a scheme the key cannot make gets handshake_failure (P-521 key, ecdsa_secp256r1_sha256 in TLS 1.3; RSA key, rsa_pss_pss_sha256)', async () => {
    await refused(p521, ['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256'], AlertDescription.handshake_failure);
    await refused(rsa, ['-sigalgs', 'rsa_pss_pss_sha256'], AlertDescription.handshake_failure);
  });

  it('RSA key: PKCS#1 v1.5 in TLS 1.2 only (RSA+SHA512), refused in TLS 1.3 (RFC 8446 4.2.3)', async () => {
    const { s, why } = await sClient(rsa, ['-tls1_2', '-sigalgs', 'RSA+SHA512']);
    assert.equal(s.peerSignatureType, 'RSA', why);
    assert.equal(s.peerSigningDigest, 'SHA512', why);
    await refused(rsa, ['-tls1_3', '-sigalgs', 'RSA+SHA256'], AlertDescription.handshake_failure);
  });
});

describe('openssl s_client x keyward server: TLS 1.2 suites, HelloRetryRequest, record sizes, extensions', () => {
  for (const [server, suite] of [
    ['p521', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
    ['p521', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
    ['p521', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
    ['rsa', 'ECDHE-RSA-AES128-GCM-SHA256'],
    ['rsa', 'ECDHE-RSA-AES256-GCM-SHA384'],
    ['rsa', 'ECDHE-RSA-CHACHA20-POLY1305'],
  ] as const) {
    it(`TLS 1.2 ${suite}`, async () => {
      const target = server === 'rsa' ? rsa : p521;
      const { s, sent, why, run } = await sClient(target, ['-tls1_2', '-cipher', suite]);
      assert.equal(s.protocol, 'TLSv1.2', why);
      assert.equal(s.cipher, suite, why);
      assert.equal(s.verifyCode, 0, why);
      assert.ok(run.stdout.includes(sent), why);
    });
  }

  it('TLS 1.2 CBC and CCM suites are not offered: handshake_failure', () => refused(p521, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-CCM'], AlertDescription.handshake_failure));

  it('a P-256 share to a server of P-521 and X25519: HelloRetryRequest, then P-521', async () => {
    const mark = p521.mark();
    const { s, sent, why, run } = await sClient(p521, ['-tls1_3', '-groups', 'P-256:P-521']);
    assert.equal(s.group, 'P-521', why);
    assert.ok(run.stdout.includes(sent), why);
    const session = onlySession(p521, mark);
    assert.equal(session.negotiated.helloRetry, true);
    assert.equal(session.negotiated.group, NamedGroup.secp521r1);
  });

  it('-max_send_frag 512 -split_send_frag 512: 3000 bytes arrive in small records and echo back whole', async () => {
    const mark = p521.mark();
    const line = `${'x'.repeat(3000)}${token('big')}`;
    const { why, run } = await sClient(p521, ['-tls1_3', '-max_send_frag', '512', '-split_send_frag', '512'], { input: `${line}\n`, waitFor: line.slice(-20) });
    assert.ok(run.stdout.includes(line), why);
    assert.equal(receivedText(onlySession(p521, mark)), `${line}\n`);
  });

  it('-maxfraglen 512 (RFC 6066 max_fragment_length): not echoed; keyward keeps its record size and the client accepts it', async () => {
    const proxy = await startRecordProxy(p521.port);
    try {
      const line = `${'y'.repeat(2000)}${token('mfl')}`;
      const run = await opensslClient(proxy.port, { cafile: certs.pki.ca.certPath, args: ['-tls1_2', '-maxfraglen', '512'], input: `${line}\n`, waitFor: line.slice(-20), timeoutMs: 10_000 });
      assert.ok(run.stdout.includes(line), describeRun(run));
      await waitUntil(() => proxy.connections[0]?.closed === true, 'the proxied connection to close');
      const big = proxy.connections[0].serverRecords().filter((r) => r.type === 23 && r.length > 512 + 64);
      assert.ok(big.length > 0, 'the echo came back in records above the 512 bytes the client asked for');
    } finally {
      await proxy.close();
    }
  });

  it('-no_middlebox: an empty legacy_session_id gets no ChangeCipherSpec (RFC 8446 D.4)', async () => {
    const proxy = await startRecordProxy(p521.port);
    try {
      const run = await opensslClient(proxy.port, { cafile: certs.pki.ca.certPath, args: ['-tls1_3', '-no_middlebox'], input: 'x\n', waitFor: /^x$/m, timeoutMs: 10_000 });
      assert.equal(parseOpensslOutput(run).verifyCode, 0, describeRun(run));
      await waitUntil(() => proxy.connections[0]?.closed === true, 'the proxied connection to close');
      assert.equal(proxy.connections[0].serverRecords().filter((r) => r.type === 20).length, 0);
    } finally {
      await proxy.close();
    }
  });

  it('-status (OCSP status_request) and an unknown -servername: the handshake goes on without them', async () => {
    const mark = p521.mark();
    const sent = token('status');
    const run = await opensslClient(p521.port, { cafile: certs.pki.ca.certPath, servername: 'unknown.example', args: ['-tls1_3', '-status'], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.match(run.stdout, /OCSP response: no response sent/, why);
    assert.ok(run.stdout.includes(sent), why);
    assert.equal(onlySession(p521, mark).servername, 'unknown.example');
  });

  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`-sess_out / -sess_in ${version}: the second connection is resumed`, async () => {
      const file = join(dir, `sess${version}.pem`);
      const first = await sClient(p521, [version, '-sess_out', file]);
      assert.equal(first.s.reused, false, first.why);
      const second = await sClient(p521, [version, '-sess_in', file]);
      assert.equal(second.s.reused, true, second.why);
      assert.ok(second.run.stdout.includes(second.sent), second.why);
    });
  }

  it('KeyUpdate "k" and "K" to a key-process server; data flows after', async () => {
    const sent = token('after');
    const run = await opensslClient(ed448.port, { cafile: certs.pki.ca.certPath, args: ['-tls1_3'], input: ['k\n', 'K\n', `${sent}\n`], waitFor: sent, timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).keyUpdates, 2, why);
    assert.ok(run.stdout.includes(sent), why);
  });

  it('TLS 1.2 renegotiation ("R") is refused with a warning no_renegotiation; the server stays up', async () => {
    const mark = p521.mark();
    const run = await opensslClient(p521.port, { cafile: certs.pki.ca.certPath, args: ['-tls1_2', '-msg'], input: ['R\n'], keepOpenMs: 1_000, timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.match(`${run.stdout}${run.stderr}`, /RENEGOTIATING/, why);
    assert.match(run.stdout, /<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation/, why);
    assert.equal(onlySession(p521, mark).protocol, 'TLSv1.2');
    const again = await sClient(p521, ['-tls1_2']);
    assert.ok(again.run.stdout.includes(again.sent), again.why);
  });
});

describe('gnutls-cli x keyward server: priority strings', () => {
  const cases: [string, () => EchoServer, string, { protocol?: string; cipher?: string; signature?: string; alert?: number }][] = [
    ['SECURE256 to ECDSA P-521', () => p521, 'SECURE256', { protocol: 'TLSv1.3', cipher: 'AES-256-GCM', signature: 'ECDSA-SECP521R1-SHA512' }],
    ['NORMAL to Ed448 (key process)', () => ed448, 'NORMAL', { protocol: 'TLSv1.3', signature: 'EdDSA-Ed448' }],
    ['NORMAL:-VERS-TLS1.3 to ECDSA P-521', () => p521, 'NORMAL:-VERS-TLS1.3', { protocol: 'TLSv1.2', signature: 'ECDSA-SHA512' }],
    ['NORMAL:-VERS-ALL:+VERS-TLS1.2:%COMPAT to RSA', () => rsa, 'NORMAL:-VERS-ALL:+VERS-TLS1.2:%COMPAT', { protocol: 'TLSv1.2', signature: 'RSA-PSS-RSAE-SHA256' }],
    ['NORMAL:%COMPAT to RSA', () => rsa, 'NORMAL:%COMPAT', { protocol: 'TLSv1.3', signature: 'RSA-PSS-RSAE-SHA256' }],
    // No extensions at all: no signature_algorithms, groups or extended_master_secret.
    ['NORMAL:%NO_EXTENSIONS is refused', () => p521, 'NORMAL:%NO_EXTENSIONS', { alert: AlertDescription.handshake_failure }],
  ];
  for (const [name, server, priority, want] of cases) {
    it(name, async () => {
      const sent = token('gnutls');
      const run = await gnutlsCli(server().port, { cafile: certs.pki.ca.certPath, priority, input: `${sent}\n`, waitFor: want.alert === undefined ? sent : undefined, timeoutMs: 10_000 });
      const g = parseGnutlsOutput(run);
      const why = describeRun(run);
      if (want.alert !== undefined) {
        assert.equal(g.handshakeCompleted, false, why);
        assert.equal(g.alert, want.alert, why);
        return;
      }
      assert.equal(g.protocol, want.protocol, why);
      if (want.cipher) assert.equal(g.cipher, want.cipher, why);
      assert.equal(g.signature, want.signature, why);
      assert.equal(g.trusted, true, why);
      assert.ok(run.stdout.includes(sent), why);
    });
  }

  it('--rehandshake over TLS 1.2: each renegotiating ClientHello gets a warning no_renegotiation, then keyward ends it; the server stays up', async () => {
    const mark = p521.mark();
    const run = await gnutlsCli(p521.port, { cafile: certs.pki.ca.certPath, priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2', args: ['--rehandshake'], timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.match(run.stderr, /A TLS warning alert has been received/, why);
    assert.match(run.stderr, /ReHandshake has failed/, why);
    await waitUntil(() => p521.since(mark).sessions[0]?.closed === true, 'the renegotiating connection to close');
    const again = await sClient(p521, ['-tls1_2']);
    assert.ok(again.run.stdout.includes(again.sent), again.why);
  });
});

describe('other clients x keyward server', () => {
  it('curl, Python ssl and node:tls to the Ed448 key-process server', async () => {
    const py = await pythonSsl(ed448.port, { cafile: certs.pki.ca.certPath, send: 'py\n', until: 'py' });
    assert.equal(py.report?.ok, true, describeRun(py));
    assert.equal(py.report?.version, 'TLSv1.3');
    const node = await nodeTlsClient(ed448.port, { ca: certs.pki.ca.certPem, send: 'nd', until: 'nd' });
    assert.equal(node.authorized, true, node.error);
    assert.equal(node.received, 'nd');
    const tls12 = await nodeTlsClient(ed448.port, { ca: certs.pki.ca.certPem, maxVersion: 'TLSv1.2', send: 'n2', until: 'n2' });
    assert.equal(tls12.protocol, 'TLSv1.2', tls12.error);
    assert.equal(tls12.received, 'n2');
  });

  it('NSS tstclnt to the P-521 server, TLS 1.3 and 1.2', async () => {
    const db = await createNssDb(dir, [{ nickname: 'keyward test CA', certPath: certs.pki.ca.certPath }]);
    for (const versions of ['tls1.3:tls1.3', 'tls1.2:tls1.2']) {
      const run = await tstclnt(p521.port, { db, versions });
      assert.equal(run.summary.handshakeOk, true, describeRun(run));
      assert.equal(run.summary.protocol, versions.startsWith('tls1.3') ? 'TLSv1.3' : 'TLSv1.2');
      assert.equal(run.summary.serverAuthBits, 521);
    }
  });
});

describe('keyward serve (key process) with a ~60 KB certificate and required client certificates', () => {
  let serve: KeywardChild;
  before(async () => {
    serve = await startServe(['--cert', certs.large.chainPath, '--key-process', '--key', certs.large.keyPath, '--client-ca', certs.pki.ca.certPath, '--require-client-cert']);
  });
  after(() => serve?.stop());

  const get = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  for (const [client, version] of [
    ['ecdsa-p521', '-tls1_3'],
    ['ed448', '-tls1_3'],
    ['ecdsa-p521', '-tls1_2'],
    ['ed448', '-tls1_2'],
    ['rsa-pss', '-tls1_3'],
    ['rsa-pss', '-tls1_2'],
  ] as const) {
    it(`${client} client certificate, ${version}: the page names the client; the 60 KB chain verifies`, async () => {
      const c = certs.byType[client];
      const run = await opensslClient(serve.port, { cafile: certs.pki.ca.certPath, args: [version, '-cert', c.certPath, '-key', c.keyPath], input: get, waitFor: /<\/html>|\r\n0\r\n/, timeoutMs: 10_000 });
      const why = describeRun(run);
      assert.equal(parseOpensslOutput(run).verifyCode, 0, why);
      assert.match(run.stdout, /HTTP\/1\.1 200/, why);
      assert.match(run.stdout, /CN=localhost \(verified\)/, why);
    });
  }

  it('no client certificate: certificate_required in TLS 1.3', async () => {
    const run = await opensslClient(serve.port, { cafile: certs.pki.ca.certPath, args: ['-tls1_3'], input: get, keepOpenMs: 1_000, timeoutMs: 10_000 });
    assert.match(run.stderr, /SSL alert number 116\b/, describeRun(run));
  });

  it('curl with a client certificate over HTTP/2', async () => {
    const c = certs.byType['ecdsa-p521'];
    const res = await curl(`https://localhost:${serve.port}/`, { cacert: certs.pki.ca.certPath, resolve: [`localhost:${serve.port}:127.0.0.1`], http: '2', args: ['--cert', c.certPath, '--key', c.keyPath] });
    assert.equal(res.status, 200, describeRun(res));
    assert.equal(res.httpVersion, '2');
  });
});
