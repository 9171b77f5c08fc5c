import { KeyObject, constants, verify as cryptoVerify } from 'node:crypto';

/** TLS SignatureScheme code points (RFC 8446 4.2.3). */
export enum SignatureScheme {
  rsa_pkcs1_sha256 = 0x0401,
  rsa_pkcs1_sha384 = 0x0501,
  rsa_pkcs1_sha512 = 0x0601,
  ecdsa_secp256r1_sha256 = 0x0403,
  ecdsa_secp384r1_sha384 = 0x0503,
  ecdsa_secp521r1_sha512 = 0x0603,
  rsa_pss_rsae_sha256 = 0x0804,
  rsa_pss_rsae_sha384 = 0x0805,
  rsa_pss_rsae_sha512 = 0x0806,
  ed25519 = 0x0807,
  ed448 = 0x0808,
  rsa_pss_pss_sha256 = 0x0809,
  rsa_pss_pss_sha384 = 0x080a,
  rsa_pss_pss_sha512 = 0x080b,
}

/**
 * The kinds of key TLS signs with. 'rsa' is an rsaEncryption key (rsa_pkcs1_*,
 * rsa_pss_rsae_*); 'rsa-pss' an RSASSA-PSS key (SPKI OID id-RSASSA-PSS, RFC 4055), which
 * signs only with rsa_pss_pss_* (RFC 8446 4.2.3) and never decrypts.
 */
export type KeyKind = 'rsa' | 'rsa-pss' | 'ec-p256' | 'ec-p384' | 'ec-p521' | 'ed25519' | 'ed448';

export interface SchemeInfo {
  readonly scheme: SignatureScheme;
  readonly name: string;
  /** The key kind the scheme needs. */
  readonly key: KeyKind;
  /** Digest for node:crypto, or null for EdDSA (which signs the message itself). */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  readonly padding: 'pss' | 'pkcs1' | null;
  /** Usable in TLS 1.3 CertificateVerify (PKCS#1 v1.5 is 1.2-only). */
  readonly tls13: boolean;
}

const table: SchemeInfo[] = [
  { scheme: SignatureScheme.ecdsa_secp256r1_sha256, name: 'ecdsa_secp256r1_sha256', key: 'ec-p256', hash: 'sha256', padding: null, tls13: true },
  { scheme: SignatureScheme.ecdsa_secp384r1_sha384, name: 'ecdsa_secp384r1_sha384', key: 'ec-p384', hash: 'sha384', padding: null, tls13: true },
  { scheme: SignatureScheme.ecdsa_secp521r1_sha512, name: 'ecdsa_secp521r1_sha512', key: 'ec-p521', hash: 'sha512', padding: null, tls13: true },
  { scheme: SignatureScheme.ed25519, name: 'ed25519', key: 'ed25519', hash: null, padding: null, tls13: true },
  { scheme: SignatureScheme.ed448, name: 'ed448', key: 'ed448', hash: null, padding: null, tls13: true },
  { scheme: SignatureScheme.rsa_pss_rsae_sha256, name: 'rsa_pss_rsae_sha256', key: 'rsa', hash: 'sha256', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pss_rsae_sha384, name: 'rsa_pss_rsae_sha384', key: 'rsa', hash: 'sha384', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pss_rsae_sha512, name: 'rsa_pss_rsae_sha512', key: 'rsa', hash: 'sha512', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pss_pss_sha256, name: 'rsa_pss_pss_sha256', key: 'rsa-pss', hash: 'sha256', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pss_pss_sha384, name: 'rsa_pss_pss_sha384', key: 'rsa-pss', hash: 'sha384', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pss_pss_sha512, name: 'rsa_pss_pss_sha512', key: 'rsa-pss', hash: 'sha512', padding: 'pss', tls13: true },
  { scheme: SignatureScheme.rsa_pkcs1_sha256, name: 'rsa_pkcs1_sha256', key: 'rsa', hash: 'sha256', padding: 'pkcs1', tls13: false },
  { scheme: SignatureScheme.rsa_pkcs1_sha384, name: 'rsa_pkcs1_sha384', key: 'rsa', hash: 'sha384', padding: 'pkcs1', tls13: false },
  { scheme: SignatureScheme.rsa_pkcs1_sha512, name: 'rsa_pkcs1_sha512', key: 'rsa', hash: 'sha512', padding: 'pkcs1', tls13: false },
];

const byCode = new Map<number, SchemeInfo>(table.map((s) => [s.scheme, s]));

export function schemeInfo(scheme: number): SchemeInfo | undefined {
  return byCode.get(scheme);
}

export function schemeName(scheme: number): string {
  return byCode.get(scheme)?.name ?? `0x${scheme.toString(16).padStart(4, '0')}`;
}

/** What kind of key a public (or private) KeyObject is, or undefined if TLS cannot use it. */
export function keyKindOf(key: KeyObject): KeyKind | undefined {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'rsa';
    case 'rsa-pss':
      return 'rsa-pss';
    case 'ed25519':
      return 'ed25519';
    case 'ed448':
      return 'ed448';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ec-p256';
      if (curve === 'secp384r1') return 'ec-p384';
      if (curve === 'secp521r1') return 'ec-p521';
      return undefined;
    }
    default:
      return undefined;
  }
}

const DIGEST_BYTES = { sha256: 32, sha384: 48, sha512: 64 } as const;

/**
 * Whether an RSASSA-PSS key's parameters allow a TLS rsa_pss_pss_* signature with `hash`.
 * RFC 8446 4.2.3 fixes MGF1 with the signed digest and a salt as long as the digest; RFC
 * 4055 3.1: a key with parameters signs only with its hash and MGF1 hash, and a salt at
 * least its saltLength. A key without parameters (node reports none) signs with any.
 */
function pssParamsAllow(key: KeyObject, hash: 'sha256' | 'sha384' | 'sha512'): boolean {
  const d = key.asymmetricKeyDetails;
  if (d?.hashAlgorithm === undefined) return true;
  return d.hashAlgorithm === hash && (d.mgf1HashAlgorithm ?? d.hashAlgorithm) === hash && (d.saltLength ?? 0) <= DIGEST_BYTES[hash];
}

/** Signature schemes a key can produce, strongest-preferred order within each kind. */
export function schemesForKey(key: KeyObject): SignatureScheme[] {
  const kind = keyKindOf(key);
  if (!kind) return [];
  if (kind === 'rsa' || kind === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    // PSS with SHA-512 needs a modulus of at least 2*64+2 bytes plus the salt; 1024-bit keys cannot.
    const fits = (s: SchemeInfo) => s.key === kind && (s.hash !== 'sha512' || bits >= 1024 + 8 * 2) && (kind === 'rsa' || pssParamsAllow(key, s.hash!));
    return table.filter(fits).map((s) => s.scheme);
  }
  return table.filter((s) => s.key === kind).map((s) => s.scheme);
}

/**
 * Why a key has no TLS signature scheme (for errors naming the file or token): its
 * type, or for an RSASSA-PSS key the parameters that rule out every rsa_pss_pss_* scheme.
 */
export function describeUnusableKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa-pss' && d?.hashAlgorithm !== undefined) {
    return `an RSASSA-PSS key restricted to hash ${d.hashAlgorithm}, MGF1 ${String(d.mgf1HashAlgorithm)}, salt length ${String(d.saltLength)}, which fits no TLS scheme (rsa_pss_pss_* needs SHA-256/384/512, MGF1 with the same hash and a salt no longer than the digest)`;
  }
  const curve = d?.namedCurve;
  return `a key of a type TLS cannot use (${key.asymmetricKeyType ?? 'unknown'}${curve ? ` ${curve}` : ''}): keyward signs with RSA, RSASSA-PSS, ECDSA P-256/P-384/P-521, Ed25519, Ed448`;
}

/** Whether a key is RSA of either kind (an RSA cipher suite's certificate; RSA signing cost). */
export function isRsaKey(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss';
}

export type TlsVersion = 'TLSv1.3' | 'TLSv1.2';

/** The ECDSA code points, in the order TLS 1.2 offers the ones of other curves. */
const ECDSA_SCHEMES: readonly SignatureScheme[] = table.filter((s) => s.key.startsWith('ec-')).map((s) => s.scheme);

/**
 * The schemes a key whose holder offers `schemes` (curve-bound, as {@link schemesForKey}
 * lists them) may sign with in `version`. In TLS 1.3 an ECDSA scheme binds the curve; in
 * TLS 1.2 it names only the hash (RFC 5246 7.4.1.4.1, RFC 8422 5.4), so an ECDSA key also
 * signs with the other ECDSA schemes, after its own.
 */
export function schemesForVersion(schemes: readonly SignatureScheme[], version: TlsVersion): readonly SignatureScheme[] {
  if (version !== 'TLSv1.2' || !schemes.some((s) => ECDSA_SCHEMES.includes(s))) return schemes;
  return [...schemes, ...ECDSA_SCHEMES.filter((s) => !schemes.includes(s))];
}

/** Whether a key whose holder offers `schemes` may sign with `scheme` in `version` (see {@link schemesForVersion}). */
export function schemeFitsVersion(schemes: readonly number[], scheme: number, version: TlsVersion): boolean {
  return schemesForVersion(schemes as readonly SignatureScheme[], version).includes(scheme);
}

/**
 * Whether `scheme` is one a peer's key may sign with in `version` at all (its kind, its
 * curve in TLS 1.3, an RSASSA-PSS key's parameters): a CertificateVerify or
 * ServerKeyExchange in another is illegal_parameter (RFC 8446 4.4.3: rsa_pss_rsae_* under
 * an RSASSA-PSS certificate, say), before any signature check.
 */
export function schemeFitsPeerKey(publicKey: KeyObject, scheme: number, version: TlsVersion): boolean {
  return schemeFitsVersion(schemesForKey(publicKey), scheme, version);
}

/** node:crypto sign/verify options for a scheme. */
export function cryptoParams(info: SchemeInfo, key: KeyObject): { algorithm: string | null; key: { key: KeyObject; padding?: number; saltLength?: number; dsaEncoding?: 'der' } } {
  const k: { key: KeyObject; padding?: number; saltLength?: number; dsaEncoding?: 'der' } = { key };
  if (info.padding === 'pss') {
    k.padding = constants.RSA_PKCS1_PSS_PADDING;
    // RFC 8446 4.2.3: the salt length equals the digest length.
    k.saltLength = constants.RSA_PSS_SALTLEN_DIGEST;
  } else if (info.padding === 'pkcs1') {
    k.padding = constants.RSA_PKCS1_PADDING;
  } else if (info.key.startsWith('ec-')) {
    k.dsaEncoding = 'der';
  }
  return { algorithm: info.hash, key: k };
}

/**
 * TLS 1.2 form of {@link verifySignature}: there an ECDSA scheme names only the hash
 * (RFC 5246 7.4.1.4.1), so an ECDSA key on any curve may sign with any of them.
 */
export function verifySignature12(publicKey: KeyObject, scheme: number, message: Uint8Array, signature: Uint8Array): boolean {
  const info = byCode.get(scheme);
  const kind = keyKindOf(publicKey);
  if (info && info.key.startsWith('ec-') && kind?.startsWith('ec-')) {
    try {
      return cryptoVerify(info.hash, message, { key: publicKey, dsaEncoding: 'der' }, signature);
    } catch {
      return false;
    }
  }
  return verifySignature(publicKey, scheme, message, signature);
}

/**
 * Verifies a signature made with `scheme` over `message`. Never throws: a malformed
 * signature or a scheme that does not fit the key is simply `false`.
 */
export function verifySignature(publicKey: KeyObject, scheme: number, message: Uint8Array, signature: Uint8Array): boolean {
  const info = byCode.get(scheme);
  if (!info || keyKindOf(publicKey) !== info.key) return false;
  if (info.key === 'rsa-pss' && !pssParamsAllow(publicKey, info.hash!)) return false;
  const p = cryptoParams(info, publicKey);
  try {
    return cryptoVerify(p.algorithm, message, p.key, signature);
  } catch {
    return false;
  }
}
