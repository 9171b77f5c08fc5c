/**
 * What keyward's client refuses, and with which alert: a TLS 1.2 ServerHello carrying the
 * TLS 1.3 downgrade sentinel, a suite or an extension it did not offer, a second
 * HelloRetryRequest, and a server CertificateVerify made with another key.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { schemesForKey } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey, type CertifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveClientConfig, type ClientConfigInput } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { resolveServerConfig, type ServerConfigInput } from '../../src/tls/engine/config.js';
import type { TlsConnection } from '../../src/tls/engine/connection.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { HRR_RANDOM, TLS13 } from '../../src/tls/wire/constants.js';
import { cookieExt, keyShareHrrExt, keyShareServerExt, supportedVersionsServerExt } from '../../src/tls/wire/extensionCodecs.js';
import { encodeServerHello } from '../../src/tls/wire/serverHello.js';
import { getPki } from '../support/pki.js';

/** A plaintext handshake record around `msg`. */
function record(msg: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(22, 3, 3, msg.length >> 8, msg.length & 0xff), msg]);
}

/** The alert the connection reported sending, after feeding it `input`. */
function alertAfter(conn: TlsConnection, input: Uint8Array): number | undefined {
  conn.receive(input);
  for (const e of conn.takeEvents()) if (e.type === 'error') return e.alertSent;
  return undefined;
}

/** Answers the server's signature requests with its key holder. */
async function signFor(server: TlsServerConnection): Promise<void> {
  for (const e of server.takeEvents()) {
    if (e.type === 'keyOperation' && e.request.kind === 'sign') server.completeKeyOperation(e.request.id, await e.request.key.sign(e.request.scheme, e.request.message, e.request.context, new AbortController().signal));
  }
}

const client = (input: ClientConfigInput = {}) => new TlsClientConnection(resolveClientConfig({ serverName: 'localhost', compatibilityMode: false, ...input }));

/** The session id a TLS 1.3 ServerHello echoes: empty (compatibility mode off). */
function serverHello13(extra: { suite?: number; exts?: { type: number; data: Uint8Array }[] } = {}): Uint8Array {
  const kx = generateKeyExchange(NamedGroup.x25519);
  return encodeServerHello({
    random: Buffer.alloc(32, 7),
    sessionId: new Uint8Array(0),
    cipherSuite: extra.suite ?? 0x1301,
    extensions: [supportedVersionsServerExt.encode(TLS13), keyShareServerExt.encode({ group: NamedGroup.x25519, keyExchange: kx.publicKey }), ...(extra.exts ?? [])],
  });
}

describe('client refusals', () => {
  it('a TLS 1.2 ServerHello with the downgrade sentinel (from a server that speaks 1.3): illegal_parameter', async () => {
    const pki = await getPki();
    const server = new TlsServerConnection(resolveServerConfig({ certificates: [certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem))] }));
    // A 1.2-only hello reaches the server (as if an attacker stripped 1.3 from ours)...
    const stripped = client({ maxVersion: 'TLSv1.2' });
    for (const b of stripped.takeOutput()) server.receive(b);
    await signFor(server);
    const flight = Buffer.concat(server.takeOutput());
    // ...and its answer reaches a client that offered 1.3.
    const victim = client();
    victim.takeOutput();
    assert.equal(alertAfter(victim, flight), AlertDescription.illegal_parameter);
    // The same answer is fine for the client that really offered only 1.2.
    stripped.receive(flight);
    assert.deepEqual(stripped.takeEvents().map((e) => e.type), ['verifyPeer']);
  });

  it('a suite that was not offered: illegal_parameter', () => {
    const c = client({ tls13CipherSuites: [0x1301] });
    c.takeOutput();
    assert.equal(alertAfter(c, record(serverHello13({ suite: 0x1302 }))), AlertDescription.illegal_parameter);
  });

  it('an extension that was not offered: unsupported_extension', () => {
    const c = client();
    c.takeOutput();
    assert.equal(alertAfter(c, record(serverHello13({ exts: [{ type: 0x1234, data: new Uint8Array(0) }] }))), AlertDescription.unsupported_extension);
  });

  it('a second HelloRetryRequest: unexpected_message; one for the group already shared: illegal_parameter', () => {
    const hrr = (group: number, cookie: number) =>
      record(
        encodeServerHello({
          random: HRR_RANDOM,
          sessionId: new Uint8Array(0),
          cipherSuite: 0x1301,
          extensions: [keyShareHrrExt.encode(group), cookieExt.encode(Uint8Array.of(cookie)), supportedVersionsServerExt.encode(TLS13)],
        }),
      );
    const c = client({ groups: [NamedGroup.x25519, NamedGroup.secp256r1] });
    c.takeOutput();
    c.receive(hrr(NamedGroup.secp256r1, 1));
    assert.equal(c.takeEvents().length, 0, 'the first retry is taken');
    assert.ok(Buffer.concat(c.takeOutput()).length > 0, 'a second ClientHello went out');
    assert.equal(alertAfter(c, hrr(NamedGroup.secp384r1, 2)), AlertDescription.unexpected_message);
    const d = client({ groups: [NamedGroup.x25519, NamedGroup.secp256r1] });
    d.takeOutput();
    assert.equal(alertAfter(d, hrr(NamedGroup.x25519, 1)), AlertDescription.illegal_parameter);
  });

  it('a server CertificateVerify made with another key: decrypt_error', async () => {
    const pki = await getPki();
    // A server whose key holder signs with the P-256 key of another certificate: its own
    // check passes (publicKey is the signer's), the client checks against the leaf it got.
    const signer = new LocalKey(pki.clients['ecdsa-p256'].keyPem);
    const real = certifiedKey(pki.server['ecdsa-p256'].chainPem, new LocalKey(pki.server['ecdsa-p256'].keyPem));
    const lying: CertifiedKey = { ...real, key: signer, publicKey: signer.publicKey, schemes: schemesForKey(signer.publicKey) };
    const server = new TlsServerConnection(resolveServerConfig({ certificates: [lying] } as ServerConfigInput));
    const c = client();
    for (const b of c.takeOutput()) server.receive(b);
    await signFor(server);
    c.receive(Buffer.concat(server.takeOutput()));
    const verify = c.takeEvents().find((e) => e.type === 'verifyPeer');
    assert.ok(verify?.type === 'verifyPeer');
    assert.equal(new X509Certificate(verify.request.chain[0]).subject, 'CN=localhost');
    c.completePeerVerification(verify.request.id, { ok: true });
    const failed = c.takeEvents().find((e) => e.type === 'error');
    assert.equal(failed?.type === 'error' && failed.alertSent, AlertDescription.decrypt_error);
  });
});
