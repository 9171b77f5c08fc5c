/**
 * The small amount of DER that a PKCS#11 backend needs: public keys from token
 * attributes (CKA_EC_PARAMS + CKA_EC_POINT, CKA_MODULUS + CKA_PUBLIC_EXPONENT), ECDSA
 * signatures from the token's raw r||s to the DER form TLS sends, and PKCS#1 v1.5
 * DigestInfo prefixes. Every parser is bounds-checked and throws a plain Error naming
 * the attribute at fault.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

/** Curves a token may name in CKA_EC_PARAMS, by their DER encoding. */
const curves: { der: string; name: string; jwkCrv: string; kty: 'EC' | 'OKP'; coordBytes: number }[] = [
  { der: '06082a8648ce3d030107', name: 'P-256', jwkCrv: 'P-256', kty: 'EC', coordBytes: 32 },
  { der: '06052b81040022', name: 'P-384', jwkCrv: 'P-384', kty: 'EC', coordBytes: 48 },
  { der: '06052b81040023', name: 'P-521', jwkCrv: 'P-521', kty: 'EC', coordBytes: 66 },
  // RFC 8410 OIDs, and the PrintableString names PKCS#11 3.0 also allows.
  { der: '06032b6570', name: 'Ed25519', jwkCrv: 'Ed25519', kty: 'OKP', coordBytes: 32 },
  { der: '130c656477617264733235353139', name: 'Ed25519', jwkCrv: 'Ed25519', kty: 'OKP', coordBytes: 32 },
  { der: '06032b6571', name: 'Ed448', jwkCrv: 'Ed448', kty: 'OKP', coordBytes: 57 },
  { der: '130a65647761726473343438', name: 'Ed448', jwkCrv: 'Ed448', kty: 'OKP', coordBytes: 57 },
];

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');

/**
 * Reads a DER OCTET STRING that fills `der` exactly; returns its contents, or undefined
 * when `der` is not one.
 */
function unwrapOctetString(der: Uint8Array): Uint8Array | undefined {
  if (der.length < 2 || der[0] !== 0x04) return undefined;
  let len = der[1]!;
  let off = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 2 || der.length < 2 + n) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[2 + i]!;
    off = 2 + n;
  }
  return off + len === der.length ? der.subarray(off) : undefined;
}

/**
 * Public key from an EC or EdDSA token key's CKA_EC_PARAMS and CKA_EC_POINT. The point
 * may be DER-wrapped (as PKCS#11 specifies) or raw (as some tokens return it).
 */
export function ecPublicKeyFromAttributes(ecParams: Uint8Array, ecPoint: Uint8Array): KeyObject {
  const hex = Buffer.from(ecParams).toString('hex');
  const curve = curves.find((c) => c.der === hex);
  if (!curve) throw new Error('CKA_EC_PARAMS names a curve keyward does not support (P-256, P-384, P-521, Ed25519, Ed448)');
  const rawLen = curve.kty === 'EC' ? 1 + 2 * curve.coordBytes : curve.coordBytes;
  const point = ecPoint.length === rawLen ? ecPoint : unwrapOctetString(ecPoint);
  if (!point || point.length !== rawLen) throw new Error(`CKA_EC_POINT is not a ${curve.name} public point`);
  if (curve.kty === 'EC') {
    if (point[0] !== 0x04) throw new Error('CKA_EC_POINT is not an uncompressed point');
    const x = point.subarray(1, 1 + curve.coordBytes);
    const y = point.subarray(1 + curve.coordBytes);
    return createPublicKey({ key: { kty: 'EC', crv: curve.jwkCrv, x: b64u(x), y: b64u(y) }, format: 'jwk' });
  }
  return createPublicKey({ key: { kty: 'OKP', crv: curve.jwkCrv, x: b64u(point) }, format: 'jwk' });
}

/** Public key from an RSA token key's CKA_MODULUS and CKA_PUBLIC_EXPONENT (big-endian). */
export function rsaPublicKeyFromAttributes(modulus: Uint8Array, publicExponent: Uint8Array): KeyObject {
  const strip = (b: Uint8Array): Uint8Array => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b.subarray(i);
  };
  const n = strip(modulus);
  const e = strip(publicExponent);
  if (n.length < 64 || n.length > 2048) throw new Error('CKA_MODULUS has an unsupported size');
  if (e.length === 0 || e.length > 8) throw new Error('CKA_PUBLIC_EXPONENT has an unsupported size');
  return createPublicKey({ key: { kty: 'RSA', n: b64u(n), e: b64u(e) }, format: 'jwk' });
}

/**
 * Whether two RSA public keys have the same modulus and exponent, whatever their
 * AlgorithmIdentifier: an rsaEncryption and an RSASSA-PSS SPKI of one key carry the same
 * RSAPublicKey (RFC 4055 1.2), so a token's CKK_RSA key and an RSASSA-PSS certificate for
 * it match.
 */
export function sameRsaPublicKey(a: KeyObject, b: KeyObject): boolean {
  const spkiA = a.export({ type: 'spki', format: 'der' });
  const spkiB = b.export({ type: 'spki', format: 'der' });
  if (spkiA.equals(spkiB)) return true;
  const [rsa, other, otherSpki] = a.asymmetricKeyType === 'rsa' ? [a, b, spkiB] : [b, a, spkiA];
  if (rsa.asymmetricKeyType !== 'rsa' || other.asymmetricKeyType !== 'rsa-pss') return false;
  const d = rsa.asymmetricKeyDetails;
  const e = other.asymmetricKeyDetails;
  if (d?.modulusLength !== e?.modulusLength || d?.publicExponent !== e?.publicExponent) return false;
  // Same size and exponent: the RSAPublicKeys are as long, and the other SPKI ends with its own.
  const rsaPublicKey = rsa.export({ type: 'pkcs1', format: 'der' });
  return otherSpki.subarray(otherSpki.length - rsaPublicKey.length).equals(rsaPublicKey);
}

function derInteger(v: Uint8Array): Buffer {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = v.subarray(i);
  // A leading 1 bit would read as negative: prefix a zero byte.
  const pad = body[0]! & 0x80 ? 1 : 0;
  return Buffer.concat([Buffer.from([0x02, body.length + pad]), pad ? Buffer.from([0]) : Buffer.alloc(0), body]);
}

/**
 * Converts a PKCS#11 ECDSA signature (r || s, each `size` bytes) to the DER
 * `ECDSA-Sig-Value` TLS carries.
 */
export function ecdsaRawToDer(raw: Uint8Array, coordBytes: number): Uint8Array {
  if (raw.length !== 2 * coordBytes) throw new Error(`ECDSA signature from the token is ${raw.length} bytes, expected ${2 * coordBytes}`);
  const body = Buffer.concat([derInteger(raw.subarray(0, coordBytes)), derInteger(raw.subarray(coordBytes))]);
  const head = body.length < 0x80 ? Buffer.from([0x30, body.length]) : Buffer.from([0x30, 0x81, body.length]);
  return new Uint8Array(Buffer.concat([head, body]));
}

/** DER DigestInfo prefixes (RFC 8017 9.2 note 1), for tokens without hash-and-sign RSA mechanisms. */
const digestInfoPrefix: Record<'sha256' | 'sha384' | 'sha512', string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/** DigestInfo(hash, digest): the input of a raw CKM_RSA_PKCS signature. */
export function digestInfo(hash: 'sha256' | 'sha384' | 'sha512', digest: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(digestInfoPrefix[hash], 'hex'), digest]);
}
