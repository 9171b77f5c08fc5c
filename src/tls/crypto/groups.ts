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
import { secureRandom } from './random.js';

/** Key-exchange groups (RFC 8446 4.2.7, RFC 8422 5.1.1). */
export enum NamedGroup {
  secp256r1 = 23,
  secp384r1 = 24,
  secp521r1 = 25,
  x25519 = 29,
  x448 = 30,
}

interface GroupInfo {
  readonly name: string;
  /** 'ecdh': NIST curve via createECDH; 'okp': X25519/X448 via KeyObjects. */
  readonly kind: 'ecdh' | 'okp';
  /** OpenSSL curve name (ecdh) or JWK crv (okp). */
  readonly curve: string;
  /** Field element / scalar size in bytes. */
  readonly size: number;
}

const groups = new Map<number, GroupInfo>([
  [NamedGroup.secp256r1, { name: 'secp256r1', kind: 'ecdh', curve: 'prime256v1', size: 32 }],
  [NamedGroup.secp384r1, { name: 'secp384r1', kind: 'ecdh', curve: 'secp384r1', size: 48 }],
  [NamedGroup.secp521r1, { name: 'secp521r1', kind: 'ecdh', curve: 'secp521r1', size: 66 }],
  [NamedGroup.x25519, { name: 'x25519', kind: 'okp', curve: 'X25519', size: 32 }],
  [NamedGroup.x448, { name: 'x448', kind: 'okp', curve: 'X448', size: 56 }],
]);

/** Name of a group code for logs; unknown codes print as hex. */
export function groupName(g: number): string {
  return groups.get(g)?.name ?? `group_0x${g.toString(16).padStart(4, '0')}`;
}

/** True for the groups keyward implements. */
export function isKnownGroup(g: number): g is NamedGroup {
  return groups.has(g);
}

/** Length of a key share on the wire: 32 / 56 raw bytes, or 1 + 2 * field size for uncompressed NIST points. */
export function groupPublicKeyLength(g: NamedGroup): number {
  const info = groupInfo(g);
  return info.kind === 'okp' ? info.size : 1 + 2 * info.size;
}

function groupInfo(g: number): GroupInfo {
  const info = groups.get(g);
  if (info === undefined) throw new RangeError(`unsupported key exchange group ${groupName(g)}`);
  return info;
}

/** One ephemeral key pair of one group. */
export interface KeyExchange {
  readonly group: NamedGroup;
  /** Wire encoding: 32/56 raw bytes for X25519/X448, uncompressed SEC1 point (0x04||X||Y) for NIST curves. */
  readonly publicKey: Uint8Array;
  /**
   * The (EC)DHE shared secret with the peer's key share: the x-coordinate (field-size bytes)
   * for NIST curves, the raw output for X25519/X448.
   * Throws TlsAlertError(illegal_parameter) if the share is malformed (wrong length, not
   * uncompressed, not on the curve) or the X25519/X448 result is all zeros.
   */
  computeSharedSecret(peerPublic: Uint8Array): Buffer;
}

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

function bufferView(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function b64url(b: Uint8Array): string {
  return bufferView(b).toString('base64url');
}

/** PKCS#8 prefixes for a raw X25519 / X448 private key (RFC 8410: version 0, the OID, an OCTET STRING in an OCTET STRING). */
const pkcs8Prefix: Readonly<Record<string, Buffer>> = {
  X25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  X448: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
};

/**
 * Whether this Node imports raw private keys (`format: 'raw-private'`, Node 24.x and later).
 * It is the cheapest documented way to make an OKP key from chosen bytes (~43 µs with the
 * public half); without it the documented ways are generateKeyPairSync (random keys) and
 * PKCS#8 DER (fixed keys; ~500 µs on Node 20's OpenSSL, so tests only).
 */
const rawPrivateImport: boolean = (() => {
  try {
    createPrivateKey({ key: Buffer.alloc(32, 1), format: 'raw-private', asymmetricKeyType: 'x25519' });
    return true;
  } catch {
    return false;
  }
})();

function okpPrivateKey(info: GroupInfo, fixedPrivate: Uint8Array | undefined): KeyObject {
  const type = info.curve === 'X25519' ? 'x25519' : 'x448';
  if (fixedPrivate === undefined && !rawPrivateImport) {
    return type === 'x25519' ? generateKeyPairSync('x25519').privateKey : generateKeyPairSync('x448').privateKey;
  }
  const d = fixedPrivate === undefined ? secureRandom(info.size) : bufferView(fixedPrivate);
  try {
    if (rawPrivateImport) return createPrivateKey({ key: d, format: 'raw-private', asymmetricKeyType: type });
    return createPrivateKey({ key: Buffer.concat([pkcs8Prefix[info.curve], d]), format: 'der', type: 'pkcs8' });
  } catch {
    throw new Error(`cannot build a ${info.name} private key`);
  } finally {
    if (fixedPrivate === undefined) d.fill(0);
  }
}

/**
 * X25519 / X448 through KeyObjects, built only through node:crypto's documented inputs (an
 * earlier JWK import with an empty `x` worked on Node 20 only: Node 24 checks `x`). The
 * public half is read as a JWK (cheaper than DER SPKI on Node 20); the peer share is imported
 * as raw bytes where Node can, else as a JWK (~8 µs, vs ~80 µs as DER SPKI).
 */
class OkpExchange implements KeyExchange {
  readonly group: NamedGroup;
  readonly publicKey: Uint8Array;
  private readonly privateKey: KeyObject;
  private readonly info: GroupInfo;

  constructor(group: NamedGroup, info: GroupInfo, fixedPrivate?: Uint8Array) {
    this.group = group;
    this.info = info;
    if (fixedPrivate !== undefined && fixedPrivate.length !== info.size) {
      throw new RangeError(`${info.name} private key must be ${info.size} bytes`);
    }
    this.privateKey = okpPrivateKey(info, fixedPrivate);
    const x = createPublicKey(this.privateKey).export({ format: 'jwk' }).x;
    this.publicKey = Buffer.from(String(x), 'base64url');
  }

  computeSharedSecret(peerPublic: Uint8Array): Buffer {
    const { name, size, curve } = this.info;
    if (peerPublic.length !== size) throw illegalParameter(`${name} key share must be ${size} bytes, got ${peerPublic.length}`);
    let peer: KeyObject;
    try {
      peer = rawPrivateImport
        ? createPublicKey({ key: bufferView(peerPublic), format: 'raw-public', asymmetricKeyType: curve === 'X25519' ? 'x25519' : 'x448' })
        : createPublicKey({ key: { kty: 'OKP', crv: curve, x: b64url(peerPublic) }, format: 'jwk' });
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
 * point is on the curve; the uncompressed form (RFC 8446 4.2.8.2) is checked here.
 */
class EcdhExchange implements KeyExchange {
  readonly group: NamedGroup;
  readonly publicKey: Uint8Array;
  private readonly ecdh: ECDH;
  private readonly info: GroupInfo;

  constructor(group: NamedGroup, info: GroupInfo, fixedPrivate?: Uint8Array) {
    this.group = group;
    this.info = info;
    this.ecdh = createECDH(info.curve);
    if (fixedPrivate !== undefined) {
      if (fixedPrivate.length !== info.size) throw new RangeError(`${info.name} private key must be ${info.size} bytes`);
      try {
        this.ecdh.setPrivateKey(fixedPrivate);
      } catch {
        throw new RangeError(`fixed ${info.name} private key is not a valid scalar`);
      }
    } else {
      this.ecdh.generateKeys();
    }
    this.publicKey = this.ecdh.getPublicKey();
  }

  computeSharedSecret(peerPublic: Uint8Array): Buffer {
    const { name, size } = this.info;
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

/**
 * A fresh ephemeral key pair for `group`.
 * `fixedPrivate` (tests only, e.g. RFC 8448): raw private key — 32-byte X25519 scalar,
 * 56-byte X448 scalar, or big-endian scalar of the field size for NIST curves.
 */
export function generateKeyExchange(group: NamedGroup, fixedPrivate?: Uint8Array): KeyExchange {
  const info = groupInfo(group);
  return info.kind === 'okp' ? new OkpExchange(group, info, fixedPrivate) : new EcdhExchange(group, info, fixedPrivate);
}
