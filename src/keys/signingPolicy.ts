import { SignatureScheme, schemeInfo, type TlsVersion } from '../tls/crypto/signatureSchemes.js';
import { CERTIFICATE_VERIFY_CONTEXT } from '../tls/wire/handshake.js';
import type { SignPurpose } from './keyOperations.js';

/**
 * Level 1 of "not a signing oracle" (DESIGN.md, The key boundary): key holders that
 * sit across a trust boundary (keyd, the key process) sign only the exact shapes of
 * TLS handshake signature inputs. This does not stop a compromised front that relays
 * real handshakes; it stops it from getting arbitrary data signed (a certificate, a
 * JWT, a CMS blob) with the TLS key.
 */

const CV_PAD = 64;
const CV_CONTEXTS: Record<'server' | 'client', Buffer> = {
  server: Buffer.from(CERTIFICATE_VERIFY_CONTEXT.server, 'latin1'),
  client: Buffer.from(CERTIFICATE_VERIFY_CONTEXT.client, 'latin1'),
};
/** Transcript hashes of the TLS 1.3 suites: SHA-256 and SHA-384. */
const TRANSCRIPT_HASH_LENGTHS = new Set([32, 48]);

/** Encoded public point length per TLS NamedGroup in ServerECDHParams. */
const ECDHE_POINT_LENGTHS = new Map<number, number>([
  [23, 65], // secp256r1, uncompressed
  [24, 97], // secp384r1
  [25, 133], // secp521r1
  [29, 32], // x25519
  [30, 56], // x448
]);

export type SignInputShape = { ok: true; purpose: SignPurpose } | { ok: false; reason: string };

/** Shapes a holder signs only when it says so (see {@link checkSignInput}). */
export interface SignInputOptions {
  /**
   * Accept the TLS 1.2 client CertificateVerify input: the handshake messages themselves,
   * whole, from ClientHello through ClientKeyExchange in a client's order. Its content is
   * not fixed beyond that, so a holder that can check more (keyd's bound mode) should; the
   * key process, which serves one local client, accepts the shape.
   */
  tls12ClientCertificateVerify?: boolean;
}

/**
 * Handshake types a TLS 1.2 client's CertificateVerify covers, in order (RFC 5246 7.4.8):
 * ClientHello, ServerHello, Certificate, ServerKeyExchange (absent with RSA key exchange),
 * CertificateRequest, ServerHelloDone, the client's Certificate, ClientKeyExchange.
 */
const TLS12_CLIENT_CV_ORDERS: readonly (readonly number[])[] = [
  [1, 2, 11, 12, 13, 14, 11, 16],
  [1, 2, 11, 13, 14, 11, 16],
];

function isTls12ClientCertificateVerify(m: Uint8Array): boolean {
  const types: number[] = [];
  for (let off = 0; off < m.length; ) {
    if (off + 4 > m.length) return false;
    const len = (m[off + 1] << 16) | (m[off + 2] << 8) | m[off + 3];
    if (off + 4 + len > m.length) return false;
    types.push(m[off]);
    off += 4 + len;
  }
  return TLS12_CLIENT_CV_ORDERS.some((order) => order.length === types.length && order.every((t, i) => t === types[i]));
}

function isTls13CertificateVerify(m: Uint8Array, side: 'server' | 'client'): boolean {
  const ctx = CV_CONTEXTS[side];
  const hashLen = m.length - CV_PAD - ctx.length - 1;
  if (!TRANSCRIPT_HASH_LENGTHS.has(hashLen)) return false;
  for (let i = 0; i < CV_PAD; i++) if (m[i] !== 0x20) return false;
  for (let i = 0; i < ctx.length; i++) if (m[CV_PAD + i] !== ctx[i]) return false;
  return m[CV_PAD + ctx.length] === 0x00;
}

function isTls12ServerKeyExchange(m: Uint8Array): boolean {
  // client_random(32) server_random(32) curve_type=named_curve(3) group(2) point<1..255>
  if (m.length < 64 + 4) return false;
  if (m[64] !== 3) return false;
  const group = (m[65] << 8) | m[66];
  const pointLen = ECDHE_POINT_LENGTHS.get(group);
  if (pointLen === undefined || m[67] !== pointLen) return false;
  // NIST curve points are uncompressed in TLS 1.2 (RFC 8422 5.4.1): a first byte of 4.
  if (group <= 25 && m[68] !== 4) return false;
  return m.length === 68 + pointLen;
}

/**
 * Classifies `message` as one of the TLS handshake signature inputs keyward signs, and
 * checks that `scheme` may be used for it (PKCS#1 v1.5 is never valid in TLS 1.3).
 * When `claimed` is given, the message must have that shape.
 */
export function checkSignInput(message: Uint8Array, scheme: SignatureScheme, claimed?: SignPurpose, options: SignInputOptions = {}): SignInputShape {
  const info = schemeInfo(scheme);
  if (!info) return { ok: false, reason: 'unknown signature scheme' };
  let purpose: SignPurpose | undefined;
  if (isTls13CertificateVerify(message, 'server')) purpose = 'tls13-server-certificate-verify';
  else if (isTls13CertificateVerify(message, 'client')) purpose = 'tls13-client-certificate-verify';
  else if (isTls12ServerKeyExchange(message)) purpose = 'tls12-server-key-exchange';
  else if (options.tls12ClientCertificateVerify && isTls12ClientCertificateVerify(message)) purpose = 'tls12-client-certificate-verify';
  if (!purpose) return { ok: false, reason: 'not a TLS handshake signature input' };
  if (claimed && claimed !== purpose) return { ok: false, reason: `input is ${purpose}, not ${claimed}` };
  if (purpose.startsWith('tls13-') && !info.tls13) return { ok: false, reason: `${info.name} is not allowed in TLS 1.3` };
  return { ok: true, purpose };
}

/** The TLS version a signature input belongs to: it decides whether an ECDSA scheme binds the curve. */
export function versionOfPurpose(purpose: SignPurpose): TlsVersion {
  return purpose.startsWith('tls12-') ? 'TLSv1.2' : 'TLSv1.3';
}
