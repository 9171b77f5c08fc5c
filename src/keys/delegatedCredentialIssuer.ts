/**
 * Issuing delegated credentials (RFC 9345): the certificate's key, in its holder, signs a
 * short-lived credential whose key the front made in memory. A holder signs one only
 * when the request is, structurally, a credential for the certificate of the key it
 * holds ({@link checkDelegatedCredentialRequest}): a signing operation of its own, never
 * the general `sign`, so a holder that is "not a signing oracle" stays one.
 */
import { createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { cryptoParams, keyKindOf, schemeInfo, schemeName, verifySignature, type KeyKind } from '../tls/crypto/signatureSchemes.js';
import {
  MAX_DELEGATED_CREDENTIAL_VALIDITY_MS,
  credentialExpiry,
  delegatedCredentialSignedContent,
  type Credential,
} from '../tls/wire/delegatedCredential.js';
import { readDelegationCertificate } from './delegationCertificate.js';
import { keyIdOf } from './keyId.js';
import { KeyOperationError, type OperationContext } from './keyOperations.js';

/** Which peer the credential authenticates: its context string differs (RFC 9345 4). */
export type DelegationSide = 'server' | 'client';

/** What a front asks its key holder to sign. Public data only. */
export interface DelegatedCredentialRequest {
  /** DER end-entity certificate of the holder's key, with DelegationUsage. */
  certificate: Uint8Array;
  /** valid_time (seconds after the certificate's notBefore), dc_cert_verify_algorithm, and the credential key's SPKI. */
  credential: Credential;
  /** The SignatureScheme the certificate's key signs the credential with (DelegatedCredential.algorithm). */
  algorithm: number;
  side: DelegationSide;
}

/**
 * A key holder that signs delegated credentials for its certificate key. keyd
 * (RemoteKey), the key process (KeyProcessKey) and an in-process key
 * (LocalDelegatedCredentialIssuer) implement it.
 */
export interface DelegatedCredentialIssuer {
  /** Hex SHA-256 of the holder key's SPKI. */
  readonly keyId: string;
  /** The certificate key's public half. */
  readonly publicKey: KeyObject;
  /**
   * Signs `request.credential` for `request.certificate` and returns the signature
   * (DelegatedCredential.signature). Rejects with KeyOperationError: 'refused' when the
   * request is not a credential the holder may sign (the message says why), plus the
   * usual 'unavailable', 'timeout', 'aborted'.
   */
  issueDelegatedCredential(request: DelegatedCredentialRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
}

/** Default longest validity a holder signs: credentials die within hours. */
export const DEFAULT_DC_MAX_VALIDITY_MS = 6 * 3600 * 1000;
/** Shortest maximum worth configuring (a front renews well before expiry). */
export const MIN_DC_MAX_VALIDITY_MS = 60 * 1000;

/** Credential key types a holder accepts: fast to make, sign and verify, and offered by browsers. */
export const DC_KEY_KINDS: readonly KeyKind[] = ['ec-p256', 'ec-p384', 'ec-p521', 'ed25519'];

/** Why a request was refused, for metrics (keyd_delegated_credentials_refused_total{reason}). */
export type DelegationRefusal = 'malformed' | 'wrong-certificate' | 'no-delegation-usage' | 'certificate-validity' | 'validity' | 'scheme' | 'dc-key' | 'not-permitted';

/** A refused delegated-credential request: code 'refused', with a reason category. */
export class DelegationRefusedError extends KeyOperationError {
  constructor(
    readonly refusal: DelegationRefusal,
    reason: string,
  ) {
    super('refused', `delegated credential refused: ${reason}`);
    this.name = 'DelegationRefusedError';
  }
}

/** What a holder knows about a credential it accepted: for audit and logs. */
export interface AcceptedDelegation {
  /** When the credential expires, ms since the epoch. */
  expiresAt: number;
  /** Hex SHA-256 of the credential key's SPKI. */
  dcKeyId: string;
  dcKeyKind: KeyKind;
}

/** What the holder holds: its key's SPKI and the schemes it can sign with. */
export interface DelegationHolder {
  spki: Uint8Array;
  schemes: readonly number[];
}

/** Checks a configured maximum validity: at least a minute, at most RFC 9345's 7 days. */
export function checkDcMaxValidity(ms: number): string | undefined {
  if (!Number.isFinite(ms) || ms < MIN_DC_MAX_VALIDITY_MS || ms > MAX_DELEGATED_CREDENTIAL_VALIDITY_MS) {
    return `the maximum delegated credential validity must be between ${MIN_DC_MAX_VALIDITY_MS / 1000} s and 7 days (${MAX_DELEGATED_CREDENTIAL_VALIDITY_MS / 1000} s)`;
  }
  return undefined;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/**
 * The structural check every holder runs before signing a credential (RFC 9345 4, 4.2):
 * the certificate is the holder key's and permits delegation, is in its validity period;
 * the credential expires after `now`, within `maxValidityMs` (never more than 7 days) and
 * not after the certificate; both schemes are TLS 1.3 schemes, the holder's fits its key;
 * the credential key is a canonical SPKI of a supported type matching its scheme, and not
 * the certificate's own key. Throws {@link DelegationRefusedError}.
 */
export function checkDelegatedCredentialRequest(req: DelegatedCredentialRequest, holder: DelegationHolder, maxValidityMs: number, now: number): AcceptedDelegation {
  const refuse = (r: DelegationRefusal, why: string): never => {
    throw new DelegationRefusedError(r, why);
  };
  if (req.side !== 'server' && req.side !== 'client') refuse('malformed', 'side must be server or client');
  let cert: ReturnType<typeof readDelegationCertificate>;
  try {
    cert = readDelegationCertificate(req.certificate);
  } catch (e) {
    return refuse('malformed', (e as Error).message);
  }
  if (!bytesEqual(cert.spki, holder.spki)) refuse('wrong-certificate', "the certificate's public key is not this key");
  if (cert.problem) refuse('no-delegation-usage', cert.problem);
  if (now < cert.notBefore) refuse('certificate-validity', `the certificate is not valid before ${new Date(cert.notBefore).toISOString()}`);
  if (now > cert.notAfter) refuse('certificate-validity', `the certificate expired at ${new Date(cert.notAfter).toISOString()}`);

  const alg = schemeInfo(req.algorithm);
  if (!alg?.tls13 || !holder.schemes.includes(req.algorithm)) refuse('scheme', `${schemeName(req.algorithm)} is not a TLS 1.3 scheme of this key`);
  const dcScheme = schemeInfo(req.credential.certVerifyAlgorithm);
  if (!dcScheme?.tls13 || !DC_KEY_KINDS.includes(dcScheme.key)) {
    refuse('scheme', `dc_cert_verify_algorithm ${schemeName(req.credential.certVerifyAlgorithm)} is not one of ${DC_KEY_KINDS.join(', ')}`);
  }
  let dcKey: KeyObject;
  try {
    dcKey = createPublicKey({ key: Buffer.from(req.credential.spki), format: 'der', type: 'spki' });
  } catch {
    return refuse('dc-key', "the credential's public key is not a SubjectPublicKeyInfo");
  }
  const canonical = dcKey.export({ type: 'spki', format: 'der' });
  if (!bytesEqual(req.credential.spki, canonical)) refuse('dc-key', "the credential's public key is not in canonical DER");
  const kind = keyKindOf(dcKey);
  if (kind !== dcScheme!.key) refuse('dc-key', `the credential's key (${kind ?? dcKey.asymmetricKeyType}) does not fit ${schemeName(req.credential.certVerifyAlgorithm)}`);
  if (bytesEqual(canonical, cert.spki)) refuse('dc-key', "the credential's key is the certificate's own key");

  const expiresAt = credentialExpiry(cert.notBefore, req.credential.validTime);
  const max = Math.min(maxValidityMs, MAX_DELEGATED_CREDENTIAL_VALIDITY_MS);
  if (expiresAt <= now) refuse('validity', `the credential expired at ${new Date(expiresAt).toISOString()}`);
  if (expiresAt > cert.notAfter) refuse('validity', `the credential would outlive the certificate (expires ${new Date(expiresAt).toISOString()}, certificate ${new Date(cert.notAfter).toISOString()})`);
  if (expiresAt - now > max) refuse('validity', `the credential is valid for ${Math.ceil((expiresAt - now) / 1000)} s, more than the maximum ${Math.floor(max / 1000)} s`);
  return { expiresAt, dcKeyId: keyIdOf(dcKey), dcKeyKind: kind! };
}

/** The bytes the certificate key signs for `req` (RFC 9345 4). */
export function delegatedCredentialInput(req: DelegatedCredentialRequest): Uint8Array {
  return delegatedCredentialSignedContent(req.certificate, req.credential, req.algorithm, req.side);
}

/** Whether `signature` is the certificate key's signature over `req`. */
export function verifyDelegatedCredential(certificateKey: KeyObject, req: DelegatedCredentialRequest, signature: Uint8Array): boolean {
  return verifySignature(certificateKey, req.algorithm, delegatedCredentialInput(req), signature);
}

/**
 * Checks and signs `req` with a private key held in this process (the local issuer and
 * the key process). Synchronous: EC and EdDSA take tens of microseconds, RSA about a
 * millisecond, and a front asks about once an hour.
 */
export function issueWithPrivateKey(privateKey: KeyObject, holder: DelegationHolder, req: DelegatedCredentialRequest, maxValidityMs: number, now: number): { signature: Uint8Array; accepted: AcceptedDelegation } {
  const accepted = checkDelegatedCredentialRequest(req, holder, maxValidityMs, now);
  const p = cryptoParams(schemeInfo(req.algorithm)!, privateKey);
  let sig: Buffer;
  try {
    sig = cryptoSign(p.algorithm, delegatedCredentialInput(req), p.key);
  } catch {
    throw new KeyOperationError('internal', 'signing the delegated credential failed');
  }
  return { signature: new Uint8Array(sig.buffer, sig.byteOffset, sig.length), accepted };
}
