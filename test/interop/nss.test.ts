// Interop with NSS's `tstclnt` (Debian libnss3-tools, NSS 3.87): TLS 1.3 and TLS 1.2
// handshakes with a keyward server, verified against the test CA through a throwaway NSS
// database; with `-B` tstclnt offers delegated_credential (RFC 9345), seen in its
// ClientHello through a proxy, and still completes the handshake with a server that serves
// none; a database that does not trust the CA makes NSS refuse with unknown_ca.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme, schemeName } from '../../src/tls/crypto/signatureSchemes.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { parseClientHello as parseWireClientHello } from '../../src/tls/wire/clientHello.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { tempDir } from '../support/keydFixture.js';
import { certificate, describeRun, onlySession, plaintextHandshakes, startEchoServer, startRecordProxy, waitUntil, type EchoServer, type Mark, type ServerSession } from '../support/keywardServer.js';
import { createNssDb, tstclnt } from '../support/nss.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
let trusting: string;
let server: EchoServer;

before(async () => {
  pki = await getPki();
  dir = await tempDir('keyward-nss-');
  trusting = await createNssDb(dir.dir, [{ nickname: 'keyward test CA', certPath: pki.ca.certPath }]);
  // ECDSA: the certificate type delegated credentials are tested with (Firefox offers ECDSA DCs only).
  server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])] });
});

after(async () => {
  await server?.close();
  await dir?.cleanup();
});

/**
 * The one session the server established since `mark`: tstclnt -Q exits once its own side is
 * done, which may be before the server has read its Finished.
 */
async function sessionSince(mark: Mark): Promise<ServerSession> {
  await waitUntil(() => server.since(mark).sessions.length + server.since(mark).errors.length > 0, 'the server to finish the handshake');
  return onlySession(server, mark);
}

/** Says what tstclnt negotiated, for the test log. */
function report(t: TestContext, what: string, summary: object): void {
  t.diagnostic(`${what}: ${JSON.stringify(summary)}`);
}

describe('NSS tstclnt', () => {
  it('completes a TLS 1.3 handshake, verifying the chain against the CA in its database', async (t) => {
    const mark = server.mark();
    const run = await tstclnt(server.port, { db: trusting });
    const s = run.summary;
    report(t, 'tstclnt TLS 1.3', s);
    assert.equal(s.handshakeOk, true, describeRun(run));
    assert.equal(s.protocol, 'TLSv1.3');
    assert.equal(s.cipher, '128-bit AES-GCM');
    assert.equal(s.keyExchangeBits, 255, 'x25519');
    assert.equal(s.serverAuthBits, 256, 'the P-256 certificate key signed');
    assert.equal(s.signatureScheme, 'ecdsa_secp256r1_sha256');
    assert.equal(s.subject, 'CN=localhost');
    assert.equal(s.delegatedCredential, false);
    const session = await sessionSince(mark);
    assert.equal(session.protocol, 'TLSv1.3');
    assert.equal(session.negotiated.group, NamedGroup.x25519);
    assert.equal(session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp256r1_sha256);
  });

  it('completes a TLS 1.2 handshake, by name (SNI) and over P-256', async (t) => {
    const mark = server.mark();
    const run = await tstclnt(server.port, { db: trusting, host: 'localhost', versions: 'tls1.2:tls1.2', groups: ['P256'] });
    report(t, 'tstclnt TLS 1.2', run.summary);
    assert.equal(run.summary.handshakeOk, true, describeRun(run));
    assert.equal(run.summary.protocol, 'TLSv1.2');
    assert.equal(run.summary.keyExchangeBits, 256);
    const session = await sessionSince(mark);
    assert.equal(session.protocol, 'TLSv1.2');
    assert.equal(session.servername, 'localhost');
    assert.equal(session.negotiated.group, NamedGroup.secp256r1);
  });

  it('-B offers delegated_credential; with no DC served it verifies the certificate signature', async (t) => {
    const proxy = await startRecordProxy(server.port);
    try {
      for (const dc of [true, false]) {
        const mark = server.mark();
        const run = await tstclnt(proxy.port, { db: trusting, delegatedCredentials: dc });
        assert.equal(run.summary.handshakeOk, true, describeRun(run));
        assert.equal(run.summary.delegatedCredential, false, 'no DC was served');
        await sessionSince(mark);
        const conn = proxy.connections.at(-1)!;
        const hello = plaintextHandshakes(conn.clientRecords()).find((m) => m.type === HandshakeType.client_hello);
        assert.ok(hello, 'the ClientHello was captured');
        const schemes = parseWireClientHello(hello.body).delegatedCredentialSchemes;
        if (!dc) {
          assert.equal(schemes, undefined, 'no delegated_credential without -B');
          continue;
        }
        report(t, 'tstclnt -B delegated_credential schemes', schemes?.map(schemeName) ?? []);
        assert.ok(schemes?.includes(SignatureScheme.ecdsa_secp256r1_sha256), `ECDSA P-256 DCs accepted: ${String(schemes?.map(schemeName))}`);
      }
    } finally {
      await proxy.close();
    }
  });

  it('a database without the CA refuses the chain: NSS sends unknown_ca', async () => {
    const other = await tempDir('keyward-nss-untrusted-');
    try {
      const db = await createNssDb(other.dir, [{ nickname: 'unrelated CA', certPath: pki.untrusted.ca.certPath }]);
      const mark = server.mark();
      const run = await tstclnt(server.port, { db });
      assert.equal(run.summary.handshakeOk, false, describeRun(run));
      // The server sends its CA with the leaf, so NSS finds the root and finds it untrusted.
      assert.equal(run.summary.error, 'SEC_ERROR_UNTRUSTED_ISSUER', describeRun(run));
      await waitUntil(() => server.since(mark).errors.length > 0, 'the handshake error on the server');
      const { sessions, errors } = server.since(mark);
      assert.equal(sessions.length, 0);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].alertReceived, AlertDescription.unknown_ca);
    } finally {
      await other.cleanup();
    }
  });
});
