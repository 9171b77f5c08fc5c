import { X509Certificate } from 'node:crypto';
import { checkServerIdentity as nodeCheckServerIdentity, rootCertificates, type PeerCertificate } from 'node:tls';
import { parsePemChain } from '../tls/engine/certificates.js';
import type { PeerVerdict } from '../tls/engine/events.js';
import { AlertDescription } from '../tls/wire/alerts.js';
import { peerCertificateObject } from './engineSocket.js';

/** node:tls's `checkServerIdentity` signature: an Error when `cert` does not fit `hostname`. */
export type CheckServerIdentity = (hostname: string, cert: PeerCertificate) => Error | undefined;

/** Why a chain was not accepted: node:tls's (OpenSSL's) code, a readable message and the TLS alert it ends the handshake with. */
export class CertificateVerificationError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly alert: AlertDescription,
  ) {
    super(message);
    this.name = 'CertificateVerificationError';
  }
}

/** What a chain is checked against. */
export interface ChainPolicy {
  /** Trust anchors; Node's bundled root store (`tls.rootCertificates`) when absent. */
  ca?: readonly X509Certificate[];
  /** The extended key usage the leaf must allow. */
  purpose: 'serverAuth' | 'clientAuth';
  /** Server authentication: the name the leaf must be valid for (DNS or IP address). */
  hostname?: string;
  checkServerIdentity?: CheckServerIdentity;
  /** Time of the check; now by default. */
  now?: Date;
}

const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const ANY_EKU = '2.5.29.37.0';
const MAX_CHAIN_LENGTH = 10;

let nodeRoots: X509Certificate[] | undefined;
/** Node's bundled root certificates, parsed once. */
function rootStore(): readonly X509Certificate[] {
  nodeRoots ??= rootCertificates.flatMap((pem) => {
    try {
      return [new X509Certificate(pem)];
    } catch {
      return [];
    }
  });
  return nodeRoots;
}

/** Parsed `ca` strings: a program usually passes the same PEM to every connection. */
const parsedAnchors = new Map<string, X509Certificate[]>();
const MAX_PARSED_ANCHORS = 32;

/** Trust anchors from PEM text, DER or X509Certificate values (node:tls's `ca` option). */
export function trustAnchors(ca: string | Buffer | X509Certificate | readonly (string | Buffer | X509Certificate)[]): X509Certificate[] {
  if (typeof ca === 'string') {
    let parsed = parsedAnchors.get(ca);
    if (!parsed) {
      parsed = parsePemChain(ca);
      if (parsedAnchors.size >= MAX_PARSED_ANCHORS) parsedAnchors.delete(parsedAnchors.keys().next().value!);
      parsedAnchors.set(ca, parsed);
    }
    return parsed;
  }
  const list = Array.isArray(ca) ? ca : [ca];
  return list.flatMap((c: string | Buffer | X509Certificate) => {
    if (c instanceof X509Certificate) return [c];
    const text = typeof c === 'string' ? c : c.toString('latin1');
    return text.includes('-----BEGIN CERTIFICATE-----') ? parsePemChain(text) : [new X509Certificate(c)];
  });
}

function validity(c: X509Certificate, now: Date): 'expired' | 'notYetValid' | null {
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  if (now.getTime() < from) return 'notYetValid';
  if (now.getTime() > to) return 'expired';
  return null;
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer);
}

/**
 * Verifies a peer's chain as node:tls does: a path from the leaf through the presented
 * intermediates to a trust anchor, every signature checked with node:crypto, every
 * certificate within its validity, issuers marked CA, the leaf's extended key usage
 * allowing `purpose`, and, for a server, the host name by `checkServerIdentity`. Throws
 * a {@link CertificateVerificationError}.
 */
export function verifyChain(chain: readonly X509Certificate[], policy: ChainPolicy): void {
  if (chain.length === 0) throw new CertificateVerificationError('ERR_TLS_NO_CERTIFICATE', 'the peer sent no certificate', AlertDescription.certificate_required);
  const anchors = policy.ca ?? rootStore();
  const now = policy.now ?? new Date();
  const intermediates = chain.slice(1);
  let current = chain[0];
  for (let depth = 0; ; depth++) {
    const v = validity(current, now);
    if (v === 'expired') throw new CertificateVerificationError('CERT_HAS_EXPIRED', `certificate has expired: ${current.subject.replace(/\n/g, ', ')}`, AlertDescription.certificate_expired);
    if (v === 'notYetValid') throw new CertificateVerificationError('CERT_NOT_YET_VALID', `certificate is not yet valid: ${current.subject.replace(/\n/g, ', ')}`, AlertDescription.bad_certificate);
    if (depth > 0 && !current.ca) throw new CertificateVerificationError('INVALID_CA', `issuer is not a CA certificate: ${current.subject.replace(/\n/g, ', ')}`, AlertDescription.bad_certificate);
    if (anchors.some((a) => a.raw.equals(current.raw))) break;
    // Anchors may share a name (a re-issued root): the one whose key made the signature counts.
    const named = anchors.filter((a) => issuedBy(current, a));
    if (named.length > 0) {
      const anchor = named.find((a) => current.verify(a.publicKey));
      if (!anchor) throw new CertificateVerificationError('CERT_SIGNATURE_FAILURE', 'certificate signature failure', AlertDescription.bad_certificate);
      if (validity(anchor, now) === 'expired') throw new CertificateVerificationError('CERT_HAS_EXPIRED', 'the trust anchor has expired', AlertDescription.certificate_expired);
      break;
    }
    const issuer = intermediates.find((c) => c !== current && issuedBy(current, c));
    if (!issuer || depth >= MAX_CHAIN_LENGTH) {
      if (issuedBy(current, current)) {
        throw depth === 0
          ? new CertificateVerificationError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', AlertDescription.unknown_ca)
          : new CertificateVerificationError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain', AlertDescription.unknown_ca);
      }
      throw depth === 0
        ? new CertificateVerificationError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate', AlertDescription.unknown_ca)
        : new CertificateVerificationError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate', AlertDescription.unknown_ca);
    }
    if (!current.verify(issuer.publicKey)) throw new CertificateVerificationError('CERT_SIGNATURE_FAILURE', 'certificate signature failure', AlertDescription.bad_certificate);
    current = issuer;
  }
  const eku = chain[0].keyUsage;
  if (eku && eku.length > 0 && !eku.includes(EKU[policy.purpose]) && !eku.includes(ANY_EKU)) {
    throw new CertificateVerificationError('INVALID_PURPOSE', `the certificate is not for ${policy.purpose}`, AlertDescription.unsupported_certificate);
  }
  if (policy.hostname !== undefined) {
    const check = policy.checkServerIdentity ?? nodeCheckServerIdentity;
    const err = check(policy.hostname, peerCertificateObject(chain, true) as PeerCertificate);
    if (err) {
      const e = new CertificateVerificationError((err as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID', err.message, AlertDescription.bad_certificate);
      throw e;
    }
  }
}

/** The verdict for the engine and what the socket reports (node:tls: authorized, authorizationError). */
export function judgeChain(
  chain: readonly X509Certificate[],
  policy: ChainPolicy,
  rejectUnauthorized: boolean,
): { verdict: PeerVerdict; authorized: boolean; authorizationError: CertificateVerificationError | null } {
  try {
    verifyChain(chain, policy);
    return { verdict: { ok: true }, authorized: true, authorizationError: null };
  } catch (err) {
    if (!(err instanceof CertificateVerificationError)) throw err;
    const verdict: PeerVerdict = rejectUnauthorized ? { ok: false, alert: err.alert, reason: `${err.code}: ${err.message}` } : { ok: true };
    return { verdict, authorized: false, authorizationError: err };
  }
}
