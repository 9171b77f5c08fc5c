import { X509Certificate } from 'node:crypto';
import { suiteInfo } from '../tls/crypto/cipherSuites.js';
import { Transcript } from '../tls/crypto/transcript.js';
import { parseCertificate13 } from '../tls/wire/certificate13.js';
import { certificateVerifyContent } from '../tls/wire/certificateVerify.js';
import { parseClientHello, type ClientHello } from '../tls/wire/clientHello.js';
import { HandshakeType, TLS12, TLS13 } from '../tls/wire/constants.js';
import { parseHandshakeMessage, type HandshakeMessage } from '../tls/wire/framing.js';
import { parseServerHello, type ServerHello } from '../tls/wire/serverHello.js';
import type { SignPurpose } from './keyOperations.js';

/**
 * Level 2 of "not a signing oracle" (DESIGN.md, The key boundary), "bound": the key
 * holder receives the handshake messages a signature input comes from and recomputes the
 * input itself, so it signs only for a handshake that presents a certificate for this key
 * (one carrying its public key: keyd knows no certificate, so not its dates or names) to a
 * server name the key serves:
 *
 * - TLS 1.3 CertificateVerify: ClientHello, [HelloRetryRequest, ClientHello,] ServerHello,
 *   EncryptedExtensions, Certificate. The transcript hash (with the suite's hash, and the
 *   message_hash step after a HelloRetryRequest) must give exactly the input; the
 *   Certificate's leaf must carry this key's public key.
 * - TLS 1.2 ServerKeyExchange: ClientHello, ServerHello. The input's client and server
 *   randoms must be theirs. (The certificate is not part of a TLS 1.2 signature.)
 * - Either way, the ClientHello's server_name, when present, must be one the key serves.
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

/** Most handshake messages a bound request may carry (TLS 1.3 with a HelloRetryRequest). */
export const MAX_BOUND_MESSAGES = 6;

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

/** The leaf certificate's DER from a server's TLS 1.3 Certificate message. */
function leafOf13(m: HandshakeMessage): Uint8Array {
  const cert = parseCertificate13(m.body);
  if (cert.context.length !== 0) refuse('a server Certificate has a non-empty certificate_request_context');
  if (cert.entries.length === 0) refuse('the Certificate message is empty');
  return cert.entries[0].data;
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

function checkTls13(message: Uint8Array, msgs: HandshakeMessage[], key: BoundKey): string | undefined {
  const types = msgs.map((m) => m.type);
  const plain = [HandshakeType.client_hello, HandshakeType.server_hello, HandshakeType.encrypted_extensions, HandshakeType.certificate];
  const retried = [HandshakeType.client_hello, HandshakeType.server_hello, ...plain];
  const hrr = types.length === retried.length;
  if (!sameList(types, hrr ? retried : plain)) refuse(`expected ClientHello, [HelloRetryRequest, ClientHello,] ServerHello, EncryptedExtensions, Certificate; got types ${types.join(',')}`);
  const sh = serverHelloOf(msgs[hrr ? 3 : 1]);
  if (sh.version !== TLS13) refuse('the ServerHello does not select TLS 1.3');
  if (sh.isHelloRetryRequest) refuse('the ServerHello is a HelloRetryRequest');
  let firstName: string | undefined;
  if (hrr) {
    const retry = serverHelloOf(msgs[1]);
    if (!retry.isHelloRetryRequest) refuse('the second message is not a HelloRetryRequest');
    if (retry.version !== TLS13) refuse('the HelloRetryRequest does not select TLS 1.3');
    if (retry.cipherSuite !== sh.cipherSuite) refuse('the HelloRetryRequest and the ServerHello name different suites');
    firstName = clientHelloOf(msgs[0]).serverName;
  }
  const suite = suiteInfo(sh.cipherSuite);
  if (!suite || suite.version !== 'TLSv1.3') refuse(`the ServerHello names suite 0x${sh.cipherSuite.toString(16)}, not a TLS 1.3 suite`);
  const t = new Transcript(suite.hash);
  t.update(msgs[0].raw);
  if (hrr) t.replaceWithMessageHash();
  for (const m of msgs.slice(1)) t.update(m.raw);
  if (!sameBytes(certificateVerifyContent(t.current()), message)) refuse('the input is not the CertificateVerify content of these handshake messages');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafOf13(msgs[msgs.length - 1]));
  } catch (e) {
    if (e instanceof Refusal) throw e;
    refuse('the Certificate message does not start with an X.509 certificate');
  }
  if (!sameBytes(leaf.publicKey.export({ type: 'spki', format: 'der' }), key.spki)) refuse("the Certificate's leaf is not this key's certificate");
  // The name is checked in the ClientHello answered; after a retry both must ask for it (4.1.2).
  const sni = clientHelloOf(msgs[hrr ? 2 : 0]).serverName;
  if (hrr && firstName !== sni) refuse('the two ClientHellos ask for different server names');
  return checkServerName(sni, key);
}

function checkTls12(message: Uint8Array, msgs: HandshakeMessage[], key: BoundKey): string | undefined {
  if (!sameList(
    msgs.map((m) => m.type),
    [HandshakeType.client_hello, HandshakeType.server_hello],
  )) {
    refuse('expected ClientHello, ServerHello');
  }
  const sh = serverHelloOf(msgs[1]);
  if (sh.version !== TLS12) refuse('the ServerHello does not select TLS 1.2');
  if (sh.isHelloRetryRequest) refuse('the ServerHello is a HelloRetryRequest');
  const suite = suiteInfo(sh.cipherSuite);
  if (!suite || suite.version !== 'TLSv1.2' || (suite.keyExchange !== 'ECDHE_ECDSA' && suite.keyExchange !== 'ECDHE_RSA')) {
    refuse(`the ServerHello names suite 0x${sh.cipherSuite.toString(16)}, not a signed TLS 1.2 ECDHE suite`);
  }
  const ch = clientHelloOf(msgs[0]);
  if (message.length < 64 || !sameBytes(message.subarray(0, 32), ch.random) || !sameBytes(message.subarray(32, 64), sh.random)) {
    refuse("the input's randoms are not those of these hellos");
  }
  return checkServerName(ch.serverName, key);
}

function sameList(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
    if (purpose === 'tls13-server-certificate-verify') serverName = checkTls13(message, msgs, key);
    else if (purpose === 'tls12-server-key-exchange') serverName = checkTls12(message, msgs, key);
    else refuse(`${purpose} cannot be bound`);
    return { ok: true, serverName };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.message };
    // A wire parser's TlsAlertError: the messages are malformed.
    return { ok: false, reason: `malformed handshake messages: ${(e as Error).message}` };
  }
}
