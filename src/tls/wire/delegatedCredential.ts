/**
 * A DelegatedCredential (RFC 9345 4) as carried in the delegated_credential extension of
 * a TLS 1.3 CertificateEntry: a short-lived key that the certificate's key signs, so the
 * certificate key can stay in the key holder while a front signs handshakes with the
 * credential. (The request form, a list of schemes, is delegatedCredentialSchemesExt.)
 */
import { ExtensionType } from './constants.js';
import { extensionCodec } from './extensionCodecs.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** Credential: uint32 valid_time; SignatureScheme dc_cert_verify_algorithm; opaque ASN1_subjectPublicKeyInfo<1..2^24-1>. */
export interface Credential {
  /** Seconds after the certificate's notBefore at which the credential expires. */
  readonly validTime: number;
  /** The scheme the credential's key signs CertificateVerify with. */
  readonly certVerifyAlgorithm: number;
  /** DER SubjectPublicKeyInfo of the credential's key. */
  readonly spki: Uint8Array;
}

/** DelegatedCredential: Credential cred; SignatureScheme algorithm; opaque signature<1..2^16-1>. */
export interface DelegatedCredential {
  readonly cred: Credential;
  /** The scheme the certificate's key signed the credential with. */
  readonly algorithm: number;
  readonly signature: Uint8Array;
}

function writeCredential(w: Writer, c: Credential): void {
  w.u32(c.validTime).u16(c.certVerifyAlgorithm).vec24(c.spki);
}

function readCredential(r: Reader): Credential {
  return { validTime: r.u32(), certVerifyAlgorithm: r.u16(), spki: r.vec24(1) };
}

/** The encoded Credential: what a key holder is asked to sign for (with the certificate). */
export function encodeCredential(c: Credential): Uint8Array {
  const w = new Writer(8 + c.spki.length);
  writeCredential(w, c);
  return w.finish();
}

/** Parses an encoded Credential; throws TlsAlertError (decode_error) on a malformed or trailing byte. */
export function parseCredential(data: Uint8Array): Credential {
  const r = new Reader(data, 'Credential');
  const c = readCredential(r);
  r.end();
  return c;
}

/** delegated_credential in a CertificateEntry: the DelegatedCredential structure. */
export const delegatedCredentialExt = extensionCodec<DelegatedCredential>(
  ExtensionType.delegated_credential,
  (w, dc) => {
    writeCredential(w, dc.cred);
    w.u16(dc.algorithm).vec16(dc.signature);
  },
  (r) => ({ cred: readCredential(r), algorithm: r.u16(), signature: r.vec16(1) }),
);

/**
 * When a credential expires, in ms since the epoch: `valid_time` seconds after the
 * certificate's notBefore (RFC 9345 4), not after the moment it was made.
 */
export function credentialExpiry(certificateNotBeforeMs: number, validTime: number): number {
  return certificateNotBeforeMs + validTime * 1000;
}

/** RFC 9345 4.1.3: a peer rejects a credential whose remaining validity exceeds 7 days. */
export const MAX_DELEGATED_CREDENTIAL_VALIDITY_MS = 7 * 24 * 3600 * 1000;

const DC_CONTEXT = {
  server: 'TLS, server delegated credentials',
  client: 'TLS, client delegated credentials',
} as const;

/**
 * What the certificate's key signs for a credential (RFC 9345 4.1): 64 spaces, the
 * context string, 0, the DER end-entity certificate, the encoded Credential, and the
 * signature algorithm.
 */
export function delegatedCredentialSignedContent(certificate: Uint8Array, cred: Credential, algorithm: number, side: 'server' | 'client'): Uint8Array {
  const ctx = DC_CONTEXT[side];
  const w = new Writer(128 + certificate.length + cred.spki.length);
  w.bytes(new Uint8Array(64).fill(0x20)).bytes(Buffer.from(ctx, 'latin1')).u8(0).bytes(certificate);
  writeCredential(w, cred);
  return w.u16(algorithm).finish();
}
