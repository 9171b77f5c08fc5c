import { SignatureScheme, schemeInfo } from '../tls/crypto/signatureSchemes.js';
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
  return m.length === 68 + pointLen;
}

/**
 * Classifies `message` as one of the TLS handshake signature inputs keyward signs, and
 * checks that `scheme` may be used for it (PKCS#1 v1.5 is never valid in TLS 1.3).
 * When `claimed` is given, the message must have that shape.
 */
export function checkSignInput(message: Uint8Array, scheme: SignatureScheme, claimed?: SignPurpose): SignInputShape {
  const info = schemeInfo(scheme);
  if (!info) return { ok: false, reason: 'unknown signature scheme' };
  let purpose: SignPurpose | undefined;
  if (isTls13CertificateVerify(message, 'server')) purpose = 'tls13-server-certificate-verify';
  else if (isTls13CertificateVerify(message, 'client')) purpose = 'tls13-client-certificate-verify';
  else if (isTls12ServerKeyExchange(message)) purpose = 'tls12-server-key-exchange';
  if (!purpose) return { ok: false, reason: 'not a TLS handshake signature input' };
  if (claimed && claimed !== purpose) return { ok: false, reason: `input is ${purpose}, not ${claimed}` };
  if (purpose !== 'tls12-server-key-exchange' && !info.tls13) return { ok: false, reason: `${info.name} is not allowed in TLS 1.3` };
  return { ok: true, purpose };
}
