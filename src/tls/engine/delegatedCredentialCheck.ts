import { createPublicKey, type KeyObject } from 'node:crypto';
import { readDelegationCertificate } from '../../keys/delegationCertificate.js';
import { schemeInfo, verifySignature, type SignatureScheme } from '../crypto/signatureSchemes.js';
import { AlertDescription } from '../wire/alerts.js';
import {
  credentialExpiry,
  delegatedCredentialExt,
  delegatedCredentialSignedContent,
  MAX_DELEGATED_CREDENTIAL_VALIDITY_MS,
  type DelegatedCredential,
} from '../wire/delegatedCredential.js';
import { TlsAlertError } from '../wire/errors.js';

/** A peer's delegated credential that passed RFC 9345 4.1.3: its key signs CertificateVerify. */
export interface VerifiedDelegatedCredential {
  readonly credential: DelegatedCredential;
  /** The credential's key: CertificateVerify must verify under it, not the certificate's. */
  readonly publicKey: KeyObject;
  /** dc_cert_verify_algorithm: the only scheme CertificateVerify may use. */
  readonly scheme: SignatureScheme;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/** What the verifying side offered: the checks are against its own lists. */
export interface DelegatedCredentialOffer {
  /** The schemes it listed in its delegated_credential extension. */
  readonly credentialSchemes: readonly number[];
  /** The schemes it listed in signature_algorithms (the certificate key's signature over the credential must be one). */
  readonly signatureAlgorithms: readonly number[];
}

function illegal(reason: string): TlsAlertError {
  return new TlsAlertError(AlertDescription.illegal_parameter, `delegated credential: ${reason}`);
}

/**
 * Checks the delegated_credential extension of a peer's end-entity CertificateEntry as RFC
 * 9345 4.1.3 asks: not expired, remaining validity at most seven days, the certificate
 * carries DelegationUsage and digitalSignature, the credential's schemes are ones we
 * offered, and the certificate's key signed it. Every failure is illegal_parameter (the
 * alert RFC 9345 names), with the reason in the message.
 *
 * `side` is the peer's role: 'server' when we are the client.
 */
export function verifyPeerDelegatedCredential(
  extensionBody: Uint8Array,
  leafDer: Uint8Array,
  leafPublicKey: KeyObject,
  offer: DelegatedCredentialOffer,
  now: number,
  side: 'server' | 'client' = 'server',
): VerifiedDelegatedCredential {
  if (offer.credentialSchemes.length === 0) {
    // RFC 9345 4.1.1: a credential the client did not ask for.
    throw illegal('sent although not offered');
  }
  const dc = delegatedCredentialExt.parse(extensionBody);
  let cert: ReturnType<typeof readDelegationCertificate>;
  try {
    cert = readDelegationCertificate(leafDer);
  } catch (e) {
    throw illegal((e as Error).message);
  }
  if (cert.problem !== undefined) throw illegal(cert.problem);
  const expiresAt = credentialExpiry(cert.notBefore, dc.cred.validTime);
  if (expiresAt <= now) throw illegal('expired');
  if (expiresAt - now > MAX_DELEGATED_CREDENTIAL_VALIDITY_MS) throw illegal('valid for more than seven days');
  const scheme = dc.cred.certVerifyAlgorithm;
  if (!offer.credentialSchemes.includes(scheme) || schemeInfo(scheme)?.tls13 !== true) throw illegal(`dc_cert_verify_algorithm 0x${scheme.toString(16)} was not offered`);
  if (!offer.signatureAlgorithms.includes(dc.algorithm)) throw illegal(`signed with 0x${dc.algorithm.toString(16)}, not offered in signature_algorithms`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(dc.cred.spki), format: 'der', type: 'spki' });
  } catch {
    throw illegal('its public key is not a valid SubjectPublicKeyInfo');
  }
  const content = delegatedCredentialSignedContent(leafDer, dc.cred, dc.algorithm, side);
  if (!verifySignature(leafPublicKey, dc.algorithm, content, dc.signature)) throw illegal("the certificate key's signature does not verify");
  return { credential: dc, publicKey, scheme: scheme as SignatureScheme, expiresAt };
}
