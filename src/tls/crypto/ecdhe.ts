import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { illegalParameter } from '../wire/errors.js';

/**
 * One ephemeral Diffie-Hellman key pair of a key-exchange group: the public value as it
 * goes on the wire, and agreement with the peer's public value.
 */
export interface DhKeyPair {
  readonly publicKey: Buffer;
  /**
   * The shared secret with `peer`. Throws TlsAlertError(illegal_parameter) for a malformed
   * or invalid peer value (RFC 8446 4.2.8.1/4.2.8.2); the key pair stays usable after that.
   */
  agree(peer: Uint8Array): Buffer;
}

/** An elliptic curve as keyward uses it for (EC)DHE. */
export interface EcCurve {
  /** TLS name for messages (secp256r1, x25519, ...). */
  readonly name: string;
  /** 'ecdh': NIST curve through createECDH; 'okp': X25519/X448 through KeyObjects. */
  readonly kind: 'ecdh' | 'okp';
  /** OpenSSL curve name (ecdh) or key type (okp). */
  readonly curve: 'prime256v1' | 'secp384r1' | 'secp521r1' | 'x25519' | 'x448';
  /** Field element and scalar size in bytes. */
  readonly size: number;
}

/** Wire length of a public value: raw u-coordinate (okp) or uncompressed SEC1 point 0x04||X||Y. */
export function ecPublicKeyLength(c: EcCurve): number {
  return c.kind === 'okp' ? c.size : 1 + 2 * c.size;
}

/**
 * A fresh ephemeral key pair on `curve`. `fixedPrivate` (tests, RFC 8448 vectors): the raw
 * private key, a size-byte X25519/X448 scalar or big-endian NIST scalar.
 */
export function ecKeyPair(curve: EcCurve, fixedPrivate?: Uint8Array): DhKeyPair {
  if (fixedPrivate !== undefined && fixedPrivate.length !== curve.size) {
    throw new RangeError(`${curve.name} private key must be ${curve.size} bytes`);
  }
  return curve.kind === 'okp' ? new OkpKeyPair(curve, fixedPrivate) : new EcdhKeyPair(curve, fixedPrivate);
}

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

function bufferView(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** PKCS#8 prefixes for a raw X25519 / X448 private key (RFC 8410: version 0, the OID, an OCTET STRING in an OCTET STRING). */
const pkcs8Prefix: Readonly<Record<string, Buffer>> = {
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  x448: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
};

/**
 * Whether this Node imports raw keys (`format: 'raw-private'`/`'raw-public'`, Node 24.x and
 * later). It is the cheapest documented way to make an OKP key from chosen bytes (~43 µs with
 * the public half); without it the documented way is PKCS#8 DER (~430 µs on Node 20's
 * OpenSSL 3.0, so fixed test keys only).
 */
const rawKeyImport: boolean = (() => {
  try {
    createPrivateKey({ key: Buffer.alloc(32, 1), format: 'raw-private', asymmetricKeyType: 'x25519' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * generateKeyPairSync with only the public half encoded (SPKI DER) and the private half a
 * KeyObject: a documented combination that @types/node's overloads leave out.
 */
export const generateKeyPairSpki = generateKeyPairSync as unknown as (
  type: 'x25519' | 'x448' | 'dh',
  options: { publicKeyEncoding: { type: 'spki'; format: 'der' }; prime?: Buffer; generator?: number },
) => { privateKey: KeyObject; publicKey: Buffer };

/** generateKeyPairSync with only the public half encoded, as a JWK (documented; absent from @types/node's overloads). */
const generateKeyPairJwk = generateKeyPairSync as unknown as (
  type: 'x25519' | 'x448',
  options: { publicKeyEncoding: { format: 'jwk' } },
) => { privateKey: KeyObject; publicKey: { x?: unknown } };

/**
 * An OKP key pair: the private KeyObject and the raw public key.
 * A fresh key comes from generateKeyPairSync, whose job encodes the public half itself, as a
 * JWK: ~41 µs for X25519 on Node 20 and 24, where an SPKI DER encoding costs ~80 µs more on
 * Node 20 (OpenSSL 3.0's encoder lookup) and importing random bytes as PKCS#8 ~430 µs.
 * Exporting the public half from a generated KeyObject afterwards instead can deadlock Node
 * 20 when a garbage collection during the export finalizes the generation job (seen under
 * load in bench/groups.ts, and again with `node --gc-interval`; the job's own encoding was not).
 */
function okpKeyPair(curve: EcCurve, fixedPrivate: Uint8Array | undefined): { privateKey: KeyObject; publicKey: Buffer } {
  const type = curve.curve === 'x25519' ? 'x25519' : 'x448';
  if (fixedPrivate === undefined) {
    const kp = generateKeyPairJwk(type, { publicKeyEncoding: { format: 'jwk' } });
    const publicKey = Buffer.from(String(kp.publicKey.x), 'base64url');
    if (publicKey.length !== curve.size) throw new Error(`${curve.name} key generation gave a ${publicKey.length}-byte public key`);
    return { privateKey: kp.privateKey, publicKey };
  }
  const d = bufferView(fixedPrivate);
  let privateKey: KeyObject;
  try {
    privateKey = rawKeyImport
      ? createPrivateKey({ key: d, format: 'raw-private', asymmetricKeyType: type })
      : createPrivateKey({ key: Buffer.concat([pkcs8Prefix[type], d]), format: 'der', type: 'pkcs8' });
  } catch {
    throw new Error(`cannot build a ${curve.name} private key`);
  }
  // Imported keys have no generation job: reading the public half is safe, and a JWK is cheaper than DER SPKI on Node 20.
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x;
  return { privateKey, publicKey: Buffer.from(String(x), 'base64url') };
}

/**
 * X25519 / X448 through KeyObjects, built only through node:crypto's documented inputs (an
 * earlier JWK import with an empty `x` worked on Node 20 only: Node 24 checks `x`). The peer
 * share is imported as raw bytes where Node can, else as a JWK (~8 µs, vs ~80 µs as DER SPKI).
 */
class OkpKeyPair implements DhKeyPair {
  readonly publicKey: Buffer;
  private readonly privateKey: KeyObject;

  constructor(
    private readonly curve: EcCurve,
    fixedPrivate?: Uint8Array,
  ) {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = okpKeyPair(curve, fixedPrivate));
  }

  agree(peerPublic: Uint8Array): Buffer {
    const { name, size } = this.curve;
    const type = this.curve.curve === 'x25519' ? 'x25519' : 'x448';
    if (peerPublic.length !== size) throw illegalParameter(`${name} key share must be ${size} bytes, got ${peerPublic.length}`);
    let peer: KeyObject;
    try {
      peer = rawKeyImport
        ? createPublicKey({ key: bufferView(peerPublic), format: 'raw-public', asymmetricKeyType: type })
        : createPublicKey({ key: { kty: 'OKP', crv: type === 'x25519' ? 'X25519' : 'X448', x: bufferView(peerPublic).toString('base64url') }, format: 'jwk' });
    } catch {
      throw illegalParameter(`invalid ${name} key share`);
    }
    let secret: Buffer;
    try {
      secret = diffieHellman({ privateKey: this.privateKey, publicKey: peer });
    } catch {
      throw illegalParameter(`${name} key share gives no shared secret (low-order point)`);
    }
    // RFC 8446 7.4.2 / RFC 7748 6: an all-zero result means a low-order peer point.
    if (allZero(secret)) throw illegalParameter(`${name} shared secret is all zeros`);
    return secret;
  }
}

/**
 * NIST curves through createECDH: the cheapest node:crypto path (~30 µs keygen +
 * ~110 µs derive on P-256), with no KeyObject round trips. computeSecret checks that the
 * point is on the curve (and so not the point at infinity, which has no uncompressed
 * encoding); the uncompressed form RFC 8446 4.2.8.2 requires is checked here, because
 * OpenSSL would also take compressed and hybrid encodings.
 */
class EcdhKeyPair implements DhKeyPair {
  readonly publicKey: Buffer;
  private readonly ecdh: ECDH;

  constructor(
    private readonly curve: EcCurve,
    fixedPrivate?: Uint8Array,
  ) {
    this.ecdh = createECDH(curve.curve);
    if (fixedPrivate !== undefined) {
      try {
        this.ecdh.setPrivateKey(fixedPrivate);
      } catch {
        throw new RangeError(`fixed ${curve.name} private key is not a valid scalar`);
      }
    } else {
      this.ecdh.generateKeys();
    }
    this.publicKey = this.ecdh.getPublicKey();
  }

  agree(peerPublic: Uint8Array): Buffer {
    const { name, size } = this.curve;
    if (peerPublic.length !== 1 + 2 * size) {
      throw illegalParameter(`${name} key share must be ${1 + 2 * size} bytes (uncompressed point), got ${peerPublic.length}`);
    }
    if (peerPublic[0] !== 0x04) throw illegalParameter(`${name} key share is not an uncompressed point`);
    try {
      return this.ecdh.computeSecret(peerPublic);
    } catch {
      throw illegalParameter(`${name} key share is not a point on the curve`);
    }
  }
}
