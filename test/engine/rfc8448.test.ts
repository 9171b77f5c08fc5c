// Replays RFC 8448's example handshakes (section 3, Simple 1-RTT; section 5, HelloRetryRequest)
// against the TLS 1.3 server engine and compares every record it sends with the RFC's, byte for
// byte. The engine is made deterministic by injecting the RFC's server random and ephemeral
// private key; the RSA-PSS signature is randomized, so the "key holder" answers the key
// operation with the RFC's own signature bytes after checking what it was asked to sign.
import assert from 'node:assert/strict';
import { constants, createCipheriv, createDecipheriv, createHash, createPrivateKey, verify, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { certifiedKey, type CertifiedKey } from '../../src/tls/engine/certificates.js';
import { resolveServerConfig, type ServerConfig } from '../../src/tls/engine/config.js';
import type { EngineEvent, KeyOperationRequest, SignRequest } from '../../src/tls/engine/events.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { TicketKeyRing } from '../../src/tls/resumption/ticketKeys.js';
import { parseSessionState } from '../../src/tls/resumption/sessionState.js';
import { parseNewSessionTicket13 } from '../../src/tls/wire/messages13.js';
import type { KeyOperations } from '../../src/keys/keyOperations.js';
import { heldElsewhere } from '../support/heldElsewhere.js';
import { simple1RttTicket } from '../support/rfc8448ResumptionVectors.js';
import { helloRetry, rfc8448ServerRsaKey, simple1Rtt } from '../support/rfc8448Vectors.js';

// ---- helpers (test side only: node:crypto, never the engine's own crypto) ----

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Asserts two byte strings are equal; on failure names the first differing offset and shows both sides around it. */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  assert.ok(actual !== undefined, `${what}: nothing was sent`);
  const a = Buffer.from(actual);
  const e = Buffer.from(expected);
  if (a.equals(e)) return;
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  const from = Math.max(0, i - 8);
  const ctx = (b: Buffer) => hexOf(b.subarray(from, i + 24));
  assert.fail(
    `${what}: first difference at byte ${i} (got ${a.length} bytes, RFC has ${e.length})\n` +
      `  engine [${from}..]: ${ctx(a)}\n  RFC    [${from}..]: ${ctx(e)}`,
  );
}

/** Opens a TLS 1.3 AES-128-GCM record with the RFC's traffic key and iv (RFC 8446 5.2, 5.3). */
function openRecord(key: Uint8Array, iv: Uint8Array, seq: number, record: Uint8Array): { type: number; content: Buffer } {
  const nonce = Buffer.from(iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
  const d = createDecipheriv('aes-128-gcm', key, nonce);
  d.setAAD(record.subarray(0, 5));
  const body = record.subarray(5);
  d.setAuthTag(body.subarray(body.length - 16));
  const inner = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
  let end = inner.length - 1;
  while (end > 0 && inner[end] === 0) end--;
  return { type: inner[end], content: inner.subarray(0, end) };
}

/** Seals a TLS 1.3 AES-128-GCM record (the client side, to send a well-formed but wrong Finished). */
function sealRecord(key: Uint8Array, iv: Uint8Array, seq: number, type: number, content: Uint8Array): Buffer {
  const nonce = Buffer.from(iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
  const len = content.length + 1 + 16;
  const header = Buffer.from([23, 3, 3, len >> 8, len & 0xff]);
  const c = createCipheriv('aes-128-gcm', key, nonce);
  c.setAAD(header);
  const body = Buffer.concat([c.update(content), c.update(Uint8Array.of(type)), c.final(), c.getAuthTag()]);
  return Buffer.concat([header, body]);
}

/** The TLS 1.3 server CertificateVerify content (RFC 8446 4.4.3) over `transcriptHash`. */
function certificateVerifyContent(transcriptHash: Uint8Array): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify', 'latin1'), Buffer.of(0), transcriptHash]);
}

/** The signature field of a CertificateVerify message: type(1) len(3) scheme(2) siglen(2) sig. */
function signatureOf(certificateVerify: Uint8Array): Buffer {
  return Buffer.from(certificateVerify.subarray(8));
}

/** The handshake message inside a plaintext handshake record. */
const body = (record: Uint8Array) => Buffer.from(record.subarray(5));

/** The RFC's server: its self-signed RSA certificate, and its RSA key held by a LocalKey. */
function rfcCertifiedKey(holder: (k: LocalKey) => KeyOperations = (k) => k): { cert: CertifiedKey; key: LocalKey } {
  const k = rfc8448ServerRsaKey;
  const jwk = {
    kty: 'RSA',
    n: b64u(k.modulus),
    e: b64u(k.publicExponent),
    d: b64u(k.privateExponent),
    p: b64u(k.prime1),
    q: b64u(k.prime2),
    dp: b64u(k.exponent1),
    dq: b64u(k.exponent2),
    qi: b64u(k.coefficient),
  };
  const key = new LocalKey(createPrivateKey({ key: jwk, format: 'jwk' }));
  // Certificate message: type(1) len(3) context(1) list len(3) cert len(3) DER, extensions(2).
  const msg = simple1Rtt.certificate;
  const derLen = msg.readUIntBE(8, 3);
  const der = msg.subarray(11, 11 + derLen);
  // The certificate's CN is "rsa"; the RFC's server answers SNI "server" with it.
  return { cert: certifiedKey([new X509Certificate(der)], holder(key), { names: ['server'] }), key };
}

/** A random source that hands out the RFC's server random once and refuses anything else. */
function fixedRandom(serverRandom: Uint8Array): (n: number) => Uint8Array {
  let used = false;
  return (n) => {
    if (used || n !== 32) throw new Error(`unexpected random(${n}) request: only the ServerHello random is scripted`);
    used = true;
    return Buffer.from(serverRandom);
  };
}

function only<T extends EngineEvent['type']>(events: EngineEvent[], type: T, what: string): Extract<EngineEvent, { type: T }> {
  assert.deepEqual(
    events.map((e) => e.type),
    [type],
    `${what}: expected one ${type} event, got ${JSON.stringify(events.map((e) => (e.type === 'error' ? `error(${e.error.message})` : e.type)))}`,
  );
  return events[0] as Extract<EngineEvent, { type: T }>;
}

/** The request as a signature request (the kind the server's handshakes ask for here). */
function signRequest(req: KeyOperationRequest): SignRequest {
  assert.equal(req.kind, 'sign');
  return req as SignRequest;
}

function errorEvent(events: EngineEvent[], what: string): Extract<EngineEvent, { type: 'error' }> {
  return only(events, 'error', what);
}

// ---- section 3: Simple 1-RTT Handshake ----

function config3(cert: CertifiedKey, ticketKeys?: TicketKeyRing): ServerConfig {
  return resolveServerConfig({
    certificates: [cert],
    groups: [NamedGroup.x25519],
    tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256],
    advertisedGroups: simple1Rtt.encryptedExtensionsGroups,
    ticketKeys,
    ticketCount: 1,
  });
}

/** With `ticketKeys`, one ticket follows the handshake; its ticket_age_add is the RFC's. */
function connection3(ticketKeys?: TicketKeyRing, holder?: (k: LocalKey) => KeyOperations): { conn: TlsServerConnection; key: LocalKey } {
  const { cert, key } = rfcCertifiedKey(holder);
  const serverRandom = fixedRandom(simple1Rtt.serverRandom);
  const ageAdd = Buffer.alloc(4);
  ageAdd.writeUInt32BE(parseNewSessionTicket13(simple1RttTicket.newSessionTicket.subarray(4)).ageAdd);
  const conn = new TlsServerConnection(config3(cert, ticketKeys), {
    random: (n) => (n === 4 && ticketKeys ? Buffer.from(ageAdd) : serverRandom(n)),
    keyShareFactory: (group) => {
      assert.equal(group, NamedGroup.x25519, 'the engine must choose x25519');
      return generateKeyExchange(group, simple1Rtt.serverX25519Private);
    },
  });
  return { conn, key };
}

/** The engine's output split into whole records (takeOutput may hand out a record in pieces). */
function takeRecords(conn: TlsServerConnection): Buffer[] {
  const all = Buffer.concat(conn.takeOutput());
  const recs: Buffer[] = [];
  for (let off = 0; off + 5 <= all.length; ) {
    const end = off + 5 + all.readUInt16BE(off + 3);
    recs.push(all.subarray(off, end));
    off = end;
  }
  return recs;
}

/** Transcript hash the RFC's CertificateVerify covers: ClientHello .. Certificate. */
const cvHash3 = () => sha256(body(simple1Rtt.clientHelloRecord), body(simple1Rtt.serverHelloRecord), simple1Rtt.encryptedExtensions, simple1Rtt.certificate);

/** Feeds the ClientHello (as given) and returns the ServerHello output and the signature request. */
function hello3(conn: TlsServerConnection, feed: (c: TlsServerConnection) => void = (c) => c.receive(simple1Rtt.clientHelloRecord)) {
  feed(conn);
  const out = takeRecords(conn);
  const ev = conn.takeEvents();
  const op = only(ev, 'keyOperation', 'after the ClientHello');
  return { out, request: signRequest(op.request) };
}

/** Runs section 3 up to the server's protected flight, answering with the RFC's signature. */
function flight3(conn: TlsServerConnection, feed?: (c: TlsServerConnection) => void) {
  const { out: helloOut, request } = hello3(conn, feed);
  conn.completeKeyOperation(request.id, signatureOf(simple1Rtt.certificateVerify));
  const events = conn.takeEvents();
  assert.deepEqual(events, [], `no events expected after the signature, got ${JSON.stringify(events.map((e) => (e.type === 'error' ? e.error.message : e.type)))}`);
  return { helloOut, flightOut: takeRecords(conn), request };
}

describe('RFC 8448 section 3: Simple 1-RTT Handshake', () => {
  it('the vectors are self-consistent: the RFC signature verifies over the content the transcript implies', () => {
    const { cert } = rfcCertifiedKey();
    assert.equal(simple1Rtt.certificateVerify.readUInt16BE(4), SignatureScheme.rsa_pss_rsae_sha256);
    // Checked with node:crypto directly, so a failure further down is the engine's, not the vectors'.
    const sig = signatureOf(simple1Rtt.certificateVerify);
    assert.ok(verify('sha256', certificateVerifyContent(cvHash3()), { key: cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig));
    const plain = openRecord(simple1Rtt.serverHandshakeKey, simple1Rtt.serverHandshakeIv, 0, simple1Rtt.serverFlightRecord);
    assert.equal(plain.type, 22);
    assert.deepEqual(
      plain.content,
      Buffer.concat([simple1Rtt.encryptedExtensions, simple1Rtt.certificate, simple1Rtt.certificateVerify, simple1Rtt.serverFinished]),
    );
    const fin = openRecord(simple1Rtt.clientHandshakeKey, simple1Rtt.clientHandshakeIv, 0, simple1Rtt.clientFinishedRecord);
    assert.deepEqual([fin.type, ...fin.content], [22, ...simple1Rtt.clientFinished]);
  });

  it('answers the ClientHello with the RFC ServerHello record, byte for byte', () => {
    const { conn } = connection3();
    const { out } = hello3(conn);
    assert.equal(out.length, 1, `expected only the ServerHello record (no compatibility CCS: the session id is empty), got ${out.length} records`);
    assertBytes(out[0], simple1Rtt.serverHelloRecord, 'ServerHello record');
  });

  it('asks the key holder for rsa_pss_rsae_sha256 over exactly the RFC CertificateVerify content', () => {
    const { conn, key } = connection3();
    const { request } = hello3(conn);
    const req: SignRequest = request;
    assert.equal(req.kind, 'sign');
    assert.equal(req.scheme, 0x0804);
    assert.equal(req.key, key, 'the request names the certificate key holder');
    assert.equal(req.context.tlsVersion, 'TLSv1.3');
    assert.equal(req.context.purpose, 'tls13-server-certificate-verify');
    assert.equal(req.context.serverName, 'server');
    assertBytes(req.message, certificateVerifyContent(cvHash3()), 'CertificateVerify content to sign');
  });

  it('sends the RFC protected server flight (EE, Certificate, CertificateVerify, Finished), byte for byte', () => {
    const { conn } = connection3();
    const { flightOut } = flight3(conn);
    assert.equal(flightOut.length, 1, `expected one protected record, got ${flightOut.length}`);
    if (!Buffer.from(flightOut[0]).equals(simple1Rtt.serverFlightRecord)) {
      // Name the message that differs, not only the ciphertext offset.
      const mine = openRecord(simple1Rtt.serverHandshakeKey, simple1Rtt.serverHandshakeIv, 0, flightOut[0]);
      assertBytes(
        mine.content,
        Buffer.concat([simple1Rtt.encryptedExtensions, simple1Rtt.certificate, simple1Rtt.certificateVerify, simple1Rtt.serverFinished]),
        'decrypted server flight (EE @0, Certificate @40, CertificateVerify @485, Finished @621)',
      );
    }
    assertBytes(flightOut[0], simple1Rtt.serverFlightRecord, 'protected server flight record');
  });

  it('completes on the RFC client Finished, then reads the client application data and close_notify', () => {
    const { conn } = connection3();
    flight3(conn);
    conn.receive(simple1Rtt.clientFinishedRecord);
    only(conn.takeEvents(), 'handshakeComplete', 'after the client Finished');
    assert.deepEqual(takeRecords(conn), [], 'no NewSessionTicket without ticket keys');
    assert.equal(conn.isConnected, true);
    assert.equal(conn.info.version, 'TLSv1.3');
    assert.equal(conn.info.cipherSuite, 0x1301);
    assert.equal(conn.info.group, 0x001d);
    assert.equal(conn.info.signatureScheme, 0x0804);
    assert.equal(conn.info.serverName, 'server');

    conn.receive(simple1Rtt.clientApplicationDataRecord);
    const data = only(conn.takeEvents(), 'data', 'after the client application data');
    assert.equal(data.data.length, 50);
    assertBytes(data.data, simple1Rtt.clientApplicationData, 'client application data');

    conn.receive(simple1Rtt.clientAlertRecord);
    only(conn.takeEvents(), 'peerClosed', 'after the client close_notify');
    assert.deepEqual(takeRecords(conn), []);
  });

  it("with ticket keys, a NewSessionTicket follows the client Finished: the RFC's nonce and age_add, and the RFC's PSK sealed in it", () => {
    const ring = new TicketKeyRing();
    const { conn } = connection3(ring);
    flight3(conn);
    conn.receive(simple1Rtt.clientFinishedRecord);
    only(conn.takeEvents(), 'handshakeComplete', 'after the client Finished');
    const out = takeRecords(conn);
    assert.equal(out.length, 1, 'one NewSessionTicket record');
    // The server's first record under its application key (RFC 8448 sends its ticket there too).
    const plain = openRecord(simple1Rtt.serverApplicationKey, simple1Rtt.serverApplicationIv, 0, out[0]);
    assert.equal(plain.type, 22);
    assert.equal(plain.content[0], 4, 'new_session_ticket');
    const mine = parseNewSessionTicket13(plain.content.subarray(4));
    const rfc = parseNewSessionTicket13(simple1RttTicket.newSessionTicket.subarray(4));
    assert.equal(hexOf(mine.nonce), hexOf(rfc.nonce));
    assert.equal(mine.ageAdd, rfc.ageAdd);
    assert.equal(mine.lifetime, ring.ticketLifetime);
    assert.equal(mine.maxEarlyDataSize, undefined, 'keyward tickets allow no early data');
    const opened = ring.open(mine.ticket);
    assert.ok(opened, 'the ticket opens with the ring that sealed it');
    const state = parseSessionState(opened.plaintext);
    assert.ok(state);
    assertBytes(state.secret, simple1RttTicket.psk, 'resumption PSK from the RFC resumption master secret and nonce 00 00');
    assert.equal(state.serverName, 'server');
    assert.equal(state.cipherSuite, CipherSuite.TLS_AES_128_GCM_SHA256);
    assert.equal(state.ageAdd, rfc.ageAdd);
  });

  describe('a fragmented ClientHello gives the same records', () => {
    const ch = body(simple1Rtt.clientHelloRecord);
    // Each handshake byte in its own record (RFC 8446 5.1 allows any fragmentation); outer version 0x0301 as the RFC's.
    const oneByteRecords = Array.from(ch, (b) => Buffer.from([22, 3, 1, 0, 1, b]));

    const cases: Array<[string, (c: TlsServerConnection) => void]> = [
      ['one-byte records, one receive call each', (c) => oneByteRecords.forEach((r) => c.receive(r))],
      ['one-byte records, all in a single receive call', (c) => c.receive(Buffer.concat(oneByteRecords))],
      ['the RFC record delivered one byte per receive call', (c) => simple1Rtt.clientHelloRecord.forEach((b) => c.receive(Uint8Array.of(b)))],
    ];
    for (const [name, feed] of cases) {
      it(name, () => {
        const { conn } = connection3();
        const { helloOut, flightOut, request } = flight3(conn, feed);
        assertBytes(request.message, certificateVerifyContent(cvHash3()), 'CertificateVerify content to sign');
        assert.equal(helloOut.length, 1);
        assertBytes(helloOut[0], simple1Rtt.serverHelloRecord, 'ServerHello record');
        assert.equal(flightOut.length, 1);
        assertBytes(flightOut[0], simple1Rtt.serverFlightRecord, 'protected server flight record');
        conn.receive(simple1Rtt.clientFinishedRecord);
        only(conn.takeEvents(), 'handshakeComplete', 'after the client Finished');
      });
    }
  });

  describe('failures', () => {
    it('a modified ciphertext byte in the client Finished fails the AEAD: bad_record_mac', () => {
      const { conn } = connection3();
      flight3(conn);
      const bad = Buffer.from(simple1Rtt.clientFinishedRecord);
      bad[10] ^= 0x01;
      conn.receive(bad);
      const err = errorEvent(conn.takeEvents(), 'after a tampered client Finished');
      assert.equal(err.alertSent, AlertDescription.bad_record_mac);
      const out = takeRecords(conn);
      assert.equal(out.length, 1, 'exactly the alert record');
      // The server already switched to its application key after its Finished (RFC 8446 7.1).
      const alert = openRecord(simple1Rtt.serverApplicationKey, simple1Rtt.serverApplicationIv, 0, out[0]);
      assert.equal(alert.type, 21);
      assert.deepEqual([...alert.content], [2, AlertDescription.bad_record_mac]);
      assert.equal(conn.isClosed, true);
    });

    it('a well-protected client Finished with wrong verify_data: decrypt_error', () => {
      const { conn } = connection3();
      flight3(conn);
      const fin = Buffer.from(simple1Rtt.clientFinished);
      fin[fin.length - 1] ^= 0x80;
      conn.receive(sealRecord(simple1Rtt.clientHandshakeKey, simple1Rtt.clientHandshakeIv, 0, 22, fin));
      const err = errorEvent(conn.takeEvents(), 'after a wrong client Finished');
      assert.equal(err.alertSent, AlertDescription.decrypt_error);
      const out = takeRecords(conn);
      assert.equal(out.length, 1);
      const alert = openRecord(simple1Rtt.serverApplicationKey, simple1Rtt.serverApplicationIv, 0, out[0]);
      assert.deepEqual([alert.type, ...alert.content], [21, 2, AlertDescription.decrypt_error]);
    });

    it('a failed handshake wipes the key schedule and the (EC)DHE secret', () => {
      const { conn } = connection3();
      flight3(conn);
      // The server handshake's own state, reached from outside only to watch it forget.
      const hs = (conn as unknown as { handshake: { stages: { wipe(): void }; dhe: Uint8Array | null } }).handshake;
      const dhe = hs.dhe!;
      assert.ok(dhe.some((b) => b !== 0), 'the shared secret is there before');
      let wiped = 0;
      const wipe = hs.stages.wipe;
      hs.stages.wipe = () => {
        wiped++;
        wipe();
      };
      const fin = Buffer.from(simple1Rtt.clientFinished);
      fin[fin.length - 1] ^= 0x80;
      conn.receive(sealRecord(simple1Rtt.clientHandshakeKey, simple1Rtt.clientHandshakeIv, 0, 22, fin));
      assert.equal(errorEvent(conn.takeEvents(), 'after a wrong client Finished').alertSent, AlertDescription.decrypt_error);
      assert.equal(wiped, 1);
      assert.ok(dhe.every((b) => b === 0), 'the shared secret is zeroed');
    });

    it('a handshake abandoned by the transport wipes its secrets; a completed one keeps no abandon callback', () => {
      const { conn } = connection3();
      flight3(conn);
      const hs = (conn as unknown as { handshake: { dhe: Uint8Array | null } }).handshake;
      const dhe = hs.dhe!;
      conn.destroy();
      assert.ok(dhe.every((b) => b === 0), 'the shared secret is zeroed');
      const done = connection3().conn;
      flight3(done);
      done.receive(simple1Rtt.clientFinishedRecord);
      only(done.takeEvents(), 'handshakeComplete', 'after the client Finished');
      // Nothing registered by the handshake outlives it (it would keep the whole handshake in memory).
      assert.equal((done as unknown as { abandonedCallbacks: unknown[] }).abandonedCallbacks.length, 0);
    });

    it('a signature that does not verify is never sent: internal_error and no CertificateVerify', () => {
      // A key holder other than an in-process LocalKey (whose node:crypto signatures are not checked again).
      const { conn } = connection3(undefined, heldElsewhere);
      const { request } = hello3(conn);
      const sig = signatureOf(simple1Rtt.certificateVerify);
      sig[sig.length - 1] ^= 0x01;
      conn.completeKeyOperation(request.id, sig);
      const err = errorEvent(conn.takeEvents(), 'after a bad signature');
      assert.equal(err.alertSent, AlertDescription.internal_error);
      const out = takeRecords(conn);
      assert.equal(out.length, 1, `expected only the alert record, got ${out.length} records`);
      // The alert is the first record under the server handshake key: nothing (no EE/Certificate/CV) went before it.
      const alert = openRecord(simple1Rtt.serverHandshakeKey, simple1Rtt.serverHandshakeIv, 0, out[0]);
      assert.deepEqual([alert.type, ...alert.content], [21, 2, AlertDescription.internal_error]);
      assert.equal(conn.isClosed, true);
    });
  });
});

// ---- section 5: HelloRetryRequest ----

function connection5(cookieInputs: Uint8Array[] = []): TlsServerConnection {
  const { cert } = rfcCertifiedKey();
  const config = resolveServerConfig({
    certificates: [cert],
    // Only P-256: the client's lone x25519 share forces a HelloRetryRequest.
    groups: [NamedGroup.secp256r1],
    tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256],
    advertisedGroups: helloRetry.encryptedExtensionsGroups,
    helloRetryCookie: (ch1Hash) => {
      cookieInputs.push(Buffer.from(ch1Hash));
      return Buffer.from(helloRetry.cookie);
    },
  });
  return new TlsServerConnection(config, {
    random: fixedRandom(helloRetry.serverRandom),
    keyShareFactory: (group) => {
      assert.equal(group, NamedGroup.secp256r1, 'the engine must choose secp256r1');
      return generateKeyExchange(group, helloRetry.serverP256Private);
    },
  });
}

/** The RFC's transcript after the ServerHello: message_hash(ClientHello1), HRR, ClientHello2, ServerHello (RFC 8446 4.4.1). */
function transcript5(): Buffer[] {
  const ch1Hash = sha256(body(helloRetry.clientHello1Record));
  return [
    Buffer.concat([Buffer.of(254, 0, 0, 32), ch1Hash]),
    body(helloRetry.helloRetryRequestRecord),
    body(helloRetry.clientHello2Record),
    body(helloRetry.serverHelloRecord),
  ];
}

/** Splits a ServerHello/HRR body into its fields, for a comparison that ignores extension order. */
function parseServerHello(msg: Uint8Array) {
  const b = Buffer.from(msg);
  assert.equal(b[0], 2, 'a ServerHello message');
  let off = 4;
  const version = b.readUInt16BE(off);
  off += 2;
  const random = hexOf(b.subarray(off, off + 32));
  off += 32;
  const sidLen = b[off++];
  const sessionId = hexOf(b.subarray(off, off + sidLen));
  off += sidLen;
  const suite = b.readUInt16BE(off);
  off += 2;
  const compression = b[off++];
  const extEnd = off + 2 + b.readUInt16BE(off);
  off += 2;
  const extensions = new Map<number, string>();
  const order: number[] = [];
  while (off < extEnd) {
    const type = b.readUInt16BE(off);
    const len = b.readUInt16BE(off + 2);
    extensions.set(type, hexOf(b.subarray(off + 4, off + 4 + len)));
    order.push(type);
    off += 4 + len;
  }
  return { version, random, sessionId, suite, compression, extensions, order };
}

describe('RFC 8448 section 5: HelloRetryRequest', () => {
  it('the vectors are self-consistent: the RFC flight opens to the RFC messages', () => {
    const plain = openRecord(helloRetry.serverHandshakeKey, helloRetry.serverHandshakeIv, 0, helloRetry.serverFlightRecord);
    assert.deepEqual(
      plain.content,
      Buffer.concat([helloRetry.encryptedExtensions, helloRetry.certificate, helloRetry.certificateVerify, helloRetry.serverFinished]),
    );
  });

  it('sends a HelloRetryRequest with the RFC fields (random, suite, key_share=secp256r1, cookie, supported_versions)', () => {
    const cookieInputs: Uint8Array[] = [];
    const conn = connection5(cookieInputs);
    conn.receive(helloRetry.clientHello1Record);
    assert.deepEqual(conn.takeEvents(), []);
    const out = takeRecords(conn);
    assert.equal(out.length, 1, `expected only the HRR record (no CCS: the session id is empty), got ${out.length}`);
    assertBytes(out[0].subarray(0, 5), helloRetry.helloRetryRequestRecord.subarray(0, 5), 'HRR record header');
    const mine = parseServerHello(body(out[0]));
    const rfc = parseServerHello(body(helloRetry.helloRetryRequestRecord));
    assert.deepEqual({ ...mine, order: undefined }, { ...rfc, order: undefined });
    // The cookie callback is given Hash(ClientHello1), the value the HRR transcript restarts from.
    assert.equal(cookieInputs.length, 1);
    assertBytes(cookieInputs[0], sha256(body(helloRetry.clientHello1Record)), 'cookie callback input');
  });

  it('sends the RFC HelloRetryRequest record, byte for byte (extension order included)', () => {
    const conn = connection5();
    conn.receive(helloRetry.clientHello1Record);
    const out = takeRecords(conn);
    const mine = parseServerHello(body(out[0]));
    const rfc = parseServerHello(body(helloRetry.helloRetryRequestRecord));
    const names = (o: number[]) => o.map((t) => `0x${t.toString(16).padStart(4, '0')}`).join(', ');
    assertBytes(out[0], helloRetry.helloRetryRequestRecord, `HRR record (engine extension order ${names(mine.order)}; RFC ${names(rfc.order)})`);
  });

  it('answers ClientHello2 with the RFC ServerHello record, byte for byte', () => {
    const conn = connection5();
    conn.receive(helloRetry.clientHello1Record);
    takeRecords(conn);
    conn.receive(helloRetry.clientHello2Record);
    const out = takeRecords(conn);
    only(conn.takeEvents(), 'keyOperation', 'after ClientHello2');
    assert.equal(out.length, 1);
    assertBytes(out[0], helloRetry.serverHelloRecord, 'ServerHello record');
  });

  it('asks for the signature over the RFC transcript (which includes the HRR bytes)', () => {
    const conn = connection5();
    conn.receive(helloRetry.clientHello1Record);
    conn.receive(helloRetry.clientHello2Record);
    const request = signRequest(only(conn.takeEvents(), 'keyOperation', 'after ClientHello2').request);
    assert.equal(request.scheme, SignatureScheme.rsa_pss_rsae_sha256);
    const hash = sha256(...transcript5(), helloRetry.encryptedExtensions, helloRetry.certificate);
    assertBytes(request.message, certificateVerifyContent(hash), 'CertificateVerify content to sign');
  });

  it('sends the RFC protected server flight and completes on the RFC client Finished', () => {
    const conn = connection5();
    conn.receive(helloRetry.clientHello1Record);
    conn.receive(helloRetry.clientHello2Record);
    takeRecords(conn);
    const op = only(conn.takeEvents(), 'keyOperation', 'after ClientHello2');
    conn.completeKeyOperation(op.request.id, signatureOf(helloRetry.certificateVerify));
    const events = conn.takeEvents();
    assert.deepEqual(
      events.map((e) => (e.type === 'error' ? `error(${e.error.message})` : e.type)),
      [],
      'the RFC signature must verify over the content the engine asked for',
    );
    const out = takeRecords(conn);
    assert.equal(out.length, 1);
    assertBytes(out[0], helloRetry.serverFlightRecord, 'protected server flight record');
    conn.receive(helloRetry.clientFinishedRecord);
    only(conn.takeEvents(), 'handshakeComplete', 'after the client Finished');
    assert.equal(conn.info.helloRetry, true);
    assert.equal(conn.info.group, 0x0017);
  });
});
