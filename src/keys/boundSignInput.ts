import { X509Certificate } from 'node:crypto';
import { suiteInfo, type CipherSuiteInfo } from '../tls/crypto/cipherSuites.js';
import { hashLength } from '../tls/crypto/hash.js';
import { Transcript } from '../tls/crypto/transcript.js';
import { receivedCertificateBody } from '../tls/engine/certificateCompression.js';
import { DEFAULT_MAX_HANDSHAKE_MESSAGE } from '../tls/engine/defaults.js';
import { parseCertificate13, parseCertificateRequest13 } from '../tls/wire/certificate13.js';
import { certificateVerifyContent, parseCertificateVerify } from '../tls/wire/certificateVerify.js';
import { parseClientHello, type ClientHello } from '../tls/wire/clientHello.js';
import { HandshakeType, TLS12, TLS13 } from '../tls/wire/constants.js';
import { parseFinished } from '../tls/wire/finished.js';
import { parseHandshakeMessage, type HandshakeMessage } from '../tls/wire/framing.js';
import { parseCertificate12, parseCertificateRequest12, parseClientKeyExchange, parseServerHelloDone, parseServerKeyExchange } from '../tls/wire/messages12.js';
import { parseEncryptedExtensions } from '../tls/wire/messages13.js';
import { parseServerHello, type ServerHello } from '../tls/wire/serverHello.js';
import type { SignPurpose } from './keyOperations.js';

/**
 * Level 2 of "not a signing oracle" (DESIGN.md, The key boundary), "bound": the key
 * holder receives the handshake messages a signature input comes from and recomputes the
 * input itself, so it signs only for a handshake that presents a certificate for this key
 * (one carrying its public key: keyd knows no certificate, so not its dates or names):
 *
 * - TLS 1.3 server CertificateVerify: ClientHello, [HelloRetryRequest, ClientHello,]
 *   ServerHello, EncryptedExtensions, [CertificateRequest,] Certificate (or an RFC 8879
 *   CompressedCertificate in an algorithm the ClientHello offered, decompressed within the
 *   handshake-message limit). The transcript hash (with the suite's hash, and the
 *   message_hash step after a HelloRetryRequest) must give exactly the input; the
 *   Certificate's leaf must carry this key's public key.
 * - TLS 1.3 client CertificateVerify: the same up to the server's Certificate (the
 *   CertificateRequest required), then the server's CertificateVerify and Finished and the
 *   client's Certificate, whose leaf must carry this key's public key.
 * - TLS 1.2 ServerKeyExchange: ClientHello, ServerHello. The input's client and server
 *   randoms must be theirs. (The certificate is not part of a TLS 1.2 signature.)
 * - TLS 1.2 client CertificateVerify: ClientHello, ServerHello, Certificate,
 *   [ServerKeyExchange,] CertificateRequest, ServerHelloDone, the client's Certificate
 *   (leaf: this key) and ClientKeyExchange, each parsed; the input must be exactly their
 *   concatenation (RFC 5246 7.4.8).
 * - Server signatures: the ClientHello's server_name, when present, must be one the key
 *   serves. A client key answers for no name (the name is the server's); it is reported.
 *
 * What it does not stop: the messages are not authenticated, so a compromised front can
 * still relay a real ClientHello (or write one) for a name the key serves; it cannot get a
 * signature over anything but a handshake for this key and certificate. Level 3 (rate
 * limits, the audit log) bounds and records that.
 */

/** What the holder knows about the key it signs with. */
export interface BoundKey {
  /** DER SubjectPublicKeyInfo of the key. */
  spki: Uint8Array;
  /** Whether the key may answer for `serverName` (a ClientHello's SNI). */
  servesName(serverName: string): boolean;
}

export type BoundCheck = { ok: true; serverName: string | undefined } | { ok: false; reason: string };

/**
 * Most handshake messages a bound request may carry: a TLS 1.3 client CertificateVerify
 * after a HelloRetryRequest (ClientHello, HelloRetryRequest, ClientHello, ServerHello,
 * EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished, Certificate).
 */
export const MAX_BOUND_MESSAGES = 10;

class Refusal extends Error {}

function refuse(reason: string): never {
  throw new Refusal(reason);
}

/** A ServerHello with the fields every version fixes checked (RFC 8446 4.1.3). */
function serverHelloOf(m: HandshakeMessage): ServerHello & { version: number } {
  const sh = parseServerHello(m.body);
  if (sh.legacyVersion !== TLS12) refuse('the ServerHello legacy_version is not 0x0303');
  if (sh.compressionMethod !== 0) refuse('the ServerHello names a compression method');
  return { ...sh, version: sh.selectedVersion ?? TLS12 };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function clientHelloOf(ch: HandshakeMessage): ClientHello {
  try {
    return parseClientHello(ch.body);
  } catch (e) {
    refuse(`ClientHello does not parse: ${(e as Error).message}`);
  }
}

function checkServerName(sni: string | undefined, key: BoundKey): string | undefined {
  if (sni !== undefined && !key.servesName(sni)) refuse(`the ClientHello asks for ${sni}, a name this key does not serve`);
  return sni;
}

/** The leaf (first) certificate of a chain must carry this key's public key. */
function checkLeaf(chain: readonly Uint8Array[], key: BoundKey, which: string): void {
  if (chain.length === 0) refuse(`the ${which} Certificate message is empty`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chain[0]);
  } catch {
    refuse(`the ${which} Certificate message does not start with an X.509 certificate`);
  }
  if (!sameBytes(leaf.publicKey.export({ type: 'spki', format: 'der' }), key.spki)) refuse(`the ${which} Certificate's leaf is not this key's certificate`);
}

/** Reads the messages in order, each of the type the handshake expects there. */
class Sequence {
  private i = 0;
  constructor(
    private readonly msgs: readonly HandshakeMessage[],
    private readonly expected: string,
  ) {}

  /** The next message, which must be of `type`. */
  next(type: HandshakeType): HandshakeMessage {
    const m = this.msgs[this.i];
    if (m?.type !== type) this.fail();
    this.i++;
    return m;
  }

  /** The next message, which must be of one of `types`. */
  nextOf(types: readonly HandshakeType[]): HandshakeMessage {
    const m = this.msgs[this.i];
    if (!m || !types.includes(m.type)) this.fail();
    this.i++;
    return m;
  }

  /** The next message if it is of `type`. */
  optional(type: HandshakeType): HandshakeMessage | undefined {
    return this.msgs[this.i]?.type === type ? this.next(type) : undefined;
  }

  end(): void {
    if (this.i !== this.msgs.length) this.fail();
  }

  private fail(): never {
    refuse(`expected ${this.expected}; got types ${this.msgs.map((m) => m.type).join(',')}`);
  }
}

const TLS13_EXPECTED = {
  server: 'ClientHello, [HelloRetryRequest, ClientHello,] ServerHello, EncryptedExtensions, [CertificateRequest,] Certificate',
  client: 'ClientHello, [HelloRetryRequest, ClientHello,] ServerHello, EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished, Certificate',
};

/** The server's Certificate body, from a Certificate or a CompressedCertificate in an algorithm the ClientHello offered. */
function serverCertificateBody(seq: Sequence, offered: readonly number[] | undefined): Uint8Array {
  const m = seq.nextOf([HandshakeType.certificate, HandshakeType.compressed_certificate]);
  try {
    return receivedCertificateBody(m, offered, DEFAULT_MAX_HANDSHAKE_MESSAGE);
  } catch (e) {
    refuse(`the server's certificate message: ${(e as Error).message}`);
  }
}

function checkTls13(message: Uint8Array, msgs: HandshakeMessage[], key: BoundKey, side: 'server' | 'client'): string | undefined {
  const seq = new Sequence(msgs, TLS13_EXPECTED[side]);
  const hello1 = seq.next(HandshakeType.client_hello);
  let sh = serverHelloOf(seq.next(HandshakeType.server_hello));
  let hello = hello1;
  let firstName: string | undefined;
  const hrr = sh.isHelloRetryRequest;
  if (hrr) {
    if (sh.version !== TLS13) refuse('the HelloRetryRequest does not select TLS 1.3');
    firstName = clientHelloOf(hello1).serverName;
    hello = seq.next(HandshakeType.client_hello);
    const retry = sh;
    sh = serverHelloOf(seq.next(HandshakeType.server_hello));
    if (sh.isHelloRetryRequest) refuse('a second HelloRetryRequest');
    if (retry.cipherSuite !== sh.cipherSuite) refuse('the HelloRetryRequest and the ServerHello name different suites');
  }
  if (sh.version !== TLS13) refuse('the ServerHello does not select TLS 1.3');
  const suite = suiteInfo(sh.cipherSuite);
  if (!suite || suite.version !== 'TLSv1.3') refuse(`the ServerHello names suite 0x${sh.cipherSuite.toString(16)}, not a TLS 1.3 suite`);
  parseEncryptedExtensions(seq.next(HandshakeType.encrypted_extensions).body);
  const request = side === 'client' ? seq.next(HandshakeType.certificate_request) : seq.optional(HandshakeType.certificate_request);
  if (request && parseCertificateRequest13(request.body).context.length !== 0) refuse('the CertificateRequest has a non-empty certificate_request_context');
  const serverCert = parseCertificate13(serverCertificateBody(seq, clientHelloOf(hello).compressCertificate));
  if (serverCert.context.length !== 0) refuse('a server Certificate has a non-empty certificate_request_context');
  let own = serverCert;
  if (side === 'client') {
    if (serverCert.entries.length === 0) refuse('the server Certificate message is empty');
    parseCertificateVerify(seq.next(HandshakeType.certificate_verify).body);
    parseFinished(seq.next(HandshakeType.finished).body, hashLength(suite.hash));
    own = parseCertificate13(seq.next(HandshakeType.certificate).body);
    if (own.context.length !== 0) refuse('the client Certificate has a non-empty certificate_request_context');
  }
  seq.end();
  const t = new Transcript(suite.hash);
  t.update(msgs[0].raw);
  if (hrr) t.replaceWithMessageHash();
  for (const m of msgs.slice(1)) t.update(m.raw);
  if (!sameBytes(certificateVerifyContent(t.current(), side), message)) refuse('the input is not the CertificateVerify content of these handshake messages');
  checkLeaf(own.entries.map((e) => e.data), key, side);
  // The name is checked in the ClientHello answered; after a retry both must ask for it (4.1.2).
  const sni = clientHelloOf(hello).serverName;
  if (hrr && firstName !== sni) refuse('the two ClientHellos ask for different server names');
  return side === 'server' ? checkServerName(sni, key) : sni;
}

/** A TLS 1.2 ServerHello of a suite whose server signs (ECDHE_ECDSA, ECDHE_RSA). */
function signedTls12Suite(m: HandshakeMessage): { sh: ServerHello; suite: CipherSuiteInfo } {
  const sh = serverHelloOf(m);
  if (sh.version !== TLS12) refuse('the ServerHello does not select TLS 1.2');
  if (sh.isHelloRetryRequest) refuse('the ServerHello is a HelloRetryRequest');
  const suite = suiteInfo(sh.cipherSuite);
  if (!suite || suite.version !== 'TLSv1.2' || (suite.keyExchange !== 'ECDHE_ECDSA' && suite.keyExchange !== 'ECDHE_RSA')) {
    refuse(`the ServerHello names suite 0x${sh.cipherSuite.toString(16)}, not a signed TLS 1.2 ECDHE suite`);
  }
  return { sh, suite };
}

function checkTls12(message: Uint8Array, msgs: HandshakeMessage[], key: BoundKey): string | undefined {
  const seq = new Sequence(msgs, 'ClientHello, ServerHello');
  const ch = clientHelloOf(seq.next(HandshakeType.client_hello));
  const { sh } = signedTls12Suite(seq.next(HandshakeType.server_hello));
  seq.end();
  if (message.length < 64 || !sameBytes(message.subarray(0, 32), ch.random) || !sameBytes(message.subarray(32, 64), sh.random)) {
    refuse("the input's randoms are not those of these hellos");
  }
  return checkServerName(ch.serverName, key);
}

/** RFC 5246 7.4.8: the client signs every handshake message before its CertificateVerify. */
function checkTls12Client(message: Uint8Array, msgs: HandshakeMessage[], key: BoundKey): string | undefined {
  const seq = new Sequence(msgs, 'ClientHello, ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone, Certificate, ClientKeyExchange');
  const ch = clientHelloOf(seq.next(HandshakeType.client_hello));
  signedTls12Suite(seq.next(HandshakeType.server_hello));
  if (parseCertificate12(seq.next(HandshakeType.certificate).body).length === 0) refuse('the server Certificate message is empty');
  parseServerKeyExchange(seq.next(HandshakeType.server_key_exchange).body, 'ECDHE');
  parseCertificateRequest12(seq.next(HandshakeType.certificate_request).body);
  parseServerHelloDone(seq.next(HandshakeType.server_hello_done).body);
  const own = parseCertificate12(seq.next(HandshakeType.certificate).body);
  parseClientKeyExchange(seq.next(HandshakeType.client_key_exchange).body, 'ECDHE');
  seq.end();
  if (!sameBytes(Buffer.concat(msgs.map((m) => m.raw)), message)) refuse('the input is not the concatenation of these handshake messages');
  checkLeaf(own, key, 'client');
  return ch.serverName;
}

/**
 * Checks that `message` (already known to have the shape of `purpose`, see
 * checkSignInput) is the signature input of the handshake `handshakeMessages` describe,
 * for this key. Never throws: malformed messages are a refusal with a reason.
 */
export function checkBoundSignInput(message: Uint8Array, purpose: SignPurpose, handshakeMessages: readonly Uint8Array[], key: BoundKey): BoundCheck {
  try {
    if (handshakeMessages.length === 0) refuse('no handshake messages (bound mode needs them)');
    if (handshakeMessages.length > MAX_BOUND_MESSAGES) refuse(`more than ${MAX_BOUND_MESSAGES} handshake messages`);
    const msgs = handshakeMessages.map((raw, i) => parseHandshakeMessage(raw, `handshake message ${i}`));
    let serverName: string | undefined;
    if (purpose === 'tls13-server-certificate-verify') serverName = checkTls13(message, msgs, key, 'server');
    else if (purpose === 'tls13-client-certificate-verify') serverName = checkTls13(message, msgs, key, 'client');
    else if (purpose === 'tls12-server-key-exchange') serverName = checkTls12(message, msgs, key);
    else serverName = checkTls12Client(message, msgs, key);
    return { ok: true, serverName };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.message };
    // A wire parser's TlsAlertError: the messages are malformed.
    return { ok: false, reason: `malformed handshake messages: ${(e as Error).message}` };
  }
}
