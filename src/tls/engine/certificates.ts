import { X509Certificate, type KeyObject } from 'node:crypto';
import type { CurrentDelegatedCredential } from '../../keys/delegatedCredentials.js';
import { premasterDecryptionOf, signaturesVouchedFor, type CertificateKey, type KeyOperations, type PremasterDecryption } from '../../keys/keyOperations.js';
import { keyKindOf, schemeFitsPeerKey, schemeInfo, schemeName, schemesForKey, schemesForVersion, verifySignature, verifySignature12, type SignatureScheme, type TlsVersion } from '../crypto/signatureSchemes.js';
import { AlertDescription } from '../wire/alerts.js';
import { TlsAlertError, illegalParameter } from '../wire/errors.js';

/** A certificate chain and the key operations for its leaf's private key (rustls' CertifiedKey). */
export interface CertifiedKey {
  /** DER certificates, leaf first. */
  readonly chain: readonly Uint8Array[];
  readonly leaf: X509Certificate;
  /** The leaf's public key: every signature the key holder returns is checked against it. */
  readonly publicKey: KeyObject;
  readonly key: KeyOperations;
  /** TLS 1.2 RSA key exchange: the holder's premaster decryption, when the key offers one. */
  readonly decrypter?: PremasterDecryption;
  /** DNS names the chain serves, lower case (SAN dNSName, else the subject CN). */
  readonly names: readonly string[];
  /** Schemes both the certificate's key type and the key holder support, in preference order. */
  readonly schemes: readonly SignatureScheme[];
  /**
   * Delegated credentials for this certificate (RFC 9345), TLS 1.3 only: a client that
   * offers them gets the current one and a CertificateVerify signed with its key, without
   * a key-holder call; every other client, and every handshake while there is none, gets
   * the key holder's signature.
   */
  readonly delegatedCredentials?: DelegatedCredentialSource;
}

/**
 * Where a server finds the delegated credential to serve now (a DelegatedCredentialManager):
 * undefined when there is none, and never one past its expiry.
 */
export interface DelegatedCredentialSource {
  current(now?: number): CurrentDelegatedCredential | undefined;
}

/** Splits a PEM bundle into DER certificates, in file order. */
export function parsePemChain(pem: string | Buffer): X509Certificate[] {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

function dnsNamesOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san) {
    const names = san
      .split(/,\s*/)
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase());
    if (names.length > 0) return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject);
  return cn ? [cn[1].toLowerCase()] : [];
}

function sameKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

/**
 * Pairs a certificate chain with its key holder, checking that the key holder's public
 * key is the certificate's (so a wrong key fails at start, not at the first handshake).
 */
export function certifiedKey(
  chain: string | Buffer | readonly X509Certificate[],
  key: CertificateKey,
  opts: { names?: readonly string[]; delegatedCredentials?: DelegatedCredentialSource } = {},
): CertifiedKey {
  const certs = typeof chain === 'string' || Buffer.isBuffer(chain) ? parsePemChain(chain) : [...chain];
  if (certs.length === 0) throw new Error('no certificate found in the chain');
  const leaf = certs[0];
  const publicKey = leaf.publicKey;
  if (!sameKey(publicKey, key.publicKey)) throw new Error('the certificate and the key do not match');
  const certSchemes = schemesForKey(publicKey);
  const schemes = certSchemes.filter((s) => key.schemes.includes(s));
  if (schemes.length === 0) throw new Error(`no signature scheme fits the certificate key (${publicKey.asymmetricKeyType})`);
  return {
    chain: certs.map((c) => new Uint8Array(c.raw)),
    leaf,
    publicKey,
    key,
    // RFC 4055: an RSASSA-PSS key is for signatures only, whatever its holder could do.
    ...(keyKindOf(publicKey) === 'rsa' ? { decrypter: premasterDecryptionOf(key) } : {}),
    names: opts.names?.map((n) => n.toLowerCase()) ?? dnsNamesOf(leaf),
    schemes,
    ...(opts.delegatedCredentials ? { delegatedCredentials: opts.delegatedCredentials } : {}),
  };
}

/** RFC 6125 6.4.3 matching: exact, or a left-most `*` label that stands for exactly one label. */
export function nameMatches(pattern: string, name: string): 'exact' | 'wildcard' | null {
  if (pattern === name) return 'exact';
  if (pattern.startsWith('*.')) {
    const dot = name.indexOf('.');
    if (dot > 0 && name.slice(dot + 1) === pattern.slice(2)) return 'wildcard';
  }
  return null;
}

export type CertificateChoice =
  | { ok: true; cert: CertifiedKey; scheme: SignatureScheme; byName: boolean }
  | { ok: false; reason: 'unrecognized_name' | 'no_common_scheme' };

/**
 * Chooses the chain for a handshake: by SNI (exact names before wildcards), then by
 * what the client can verify (its signature_algorithms against the chain's key type),
 * in configuration order. Without SNI, or with an unknown name when allowed, every
 * chain is a candidate and the first usable one wins.
 */
export function chooseCertificate(
  certs: readonly CertifiedKey[],
  serverName: string | undefined,
  clientSchemes: readonly number[],
  version: TlsVersion,
  unknownServerName: 'default' | 'reject',
): CertificateChoice {
  let candidates: readonly CertifiedKey[] = certs;
  let byName = false;
  if (serverName !== undefined) {
    const exact = certs.filter((c) => c.names.some((n) => nameMatches(n, serverName) === 'exact'));
    const wild = certs.filter((c) => !exact.includes(c) && c.names.some((n) => nameMatches(n, serverName) === 'wildcard'));
    const named = [...exact, ...wild];
    if (named.length > 0) {
      candidates = named;
      byName = true;
    } else if (unknownServerName === 'reject') return { ok: false, reason: 'unrecognized_name' };
  }
  const usable = (s: SignatureScheme) => clientSchemes.includes(s) && (version === 'TLSv1.2' || schemeInfo(s)!.tls13);
  for (const cert of candidates) {
    const scheme = cert.schemes.find(usable);
    if (scheme !== undefined) return { ok: true, cert, scheme, byName };
  }
  // TLS 1.2 only: an EC key may also sign with another curve's ECDSA scheme, when no
  // chain can sign with one of its own curve.
  for (const cert of version === 'TLSv1.2' ? candidates : []) {
    const scheme = schemesForVersion(cert.schemes, version).find(usable);
    if (scheme !== undefined) return { ok: true, cert, scheme, byName };
  }
  return { ok: false, reason: 'no_common_scheme' };
}

/**
 * Never send a signature that does not verify against the certificate: a faulty key
 * holder (HSM, RSA-CRT fault) could leak the key through it, a wrong key would only fail
 * at the peer. Throws internal_error. Skipped for holders that vouch for their
 * signatures (see vouchForSignatures: an in-process LocalKey, the key process, keyd,
 * which verifies its token keys' results itself): each signs with node:crypto under a key
 * matched to the certificate at start, and a P-256 verify costs ~95 µs of CPU on Node 20,
 * more than the signature. A PKCS#11 token in the front is checked here.
 */
export function checkHolderSignature(cert: CertifiedKey, scheme: SignatureScheme, input: Uint8Array, signature: Uint8Array, version: TlsVersion): void {
  if (signaturesVouchedFor(cert.key)) return;
  const verify = version === 'TLSv1.2' ? verifySignature12 : verifySignature;
  if (!verify(cert.publicKey, scheme, input, signature)) {
    throw new TlsAlertError(AlertDescription.internal_error, `key holder returned a signature (${schemeName(scheme)}) that does not verify against the certificate`);
  }
}

/**
 * A peer's CertificateVerify or ServerKeyExchange in a scheme its key cannot make
 * ({@link schemeFitsPeerKey}) is illegal_parameter, before any signature check.
 */
export function checkPeerScheme(peerKey: KeyObject, scheme: number, version: TlsVersion, peer: 'server' | 'client'): void {
  if (!schemeFitsPeerKey(peerKey, scheme, version)) throw illegalParameter(`${peer} signed with ${schemeName(scheme)}, which its certificate's key cannot use`);
}

/** The peer's leaf as node:crypto reads it; an unreadable one is bad_certificate. */
export function readCertificate(der: Uint8Array, whose: 'server' | 'client'): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new TlsAlertError(AlertDescription.bad_certificate, `${whose} certificate is not a readable X.509 certificate`);
  }
}

/** One DER TLV: its tag, where its contents start, and where it ends. */
function derTlv(der: Uint8Array, at: number): { tag: number; start: number; end: number } {
  if (at + 2 > der.length) throw new Error('DER truncated');
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > der.length) throw new Error('DER length not supported');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i];
    start += n;
  }
  if (start + len > der.length) throw new Error('DER truncated');
  return { tag, start, end: start + len };
}

/**
 * The DER subject Name of a certificate (RFC 5280 4.1: Certificate → tbsCertificate →
 * [version], serialNumber, signature, issuer, validity, subject), as TLS's
 * certificate_authorities lists it.
 */
export function subjectNameDer(certificateDer: Uint8Array): Uint8Array {
  const cert = derTlv(certificateDer, 0);
  const tbs = derTlv(certificateDer, cert.start);
  let at = tbs.start;
  const next = () => {
    const t = derTlv(certificateDer, at);
    at = t.end;
    return t;
  };
  if (certificateDer[at] === 0xa0) next(); // [0] version
  next(); // serialNumber
  next(); // signature
  next(); // issuer
  next(); // validity
  const subject = derTlv(certificateDer, at);
  if (subject.tag !== 0x30) throw new Error('certificate subject is not a SEQUENCE');
  return certificateDer.subarray(at, subject.end);
}
