import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
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

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * X25519 / X448 through KeyObjects.
 *
 * The private key is made from random bytes imported as a JWK rather than with
 * generateKeyPairSync: as cheap (~55 µs), and it sidesteps a Node 20 deadlock — exporting
 * (as JWK) a key that came from generateKeyPairSync can hang the process for good when a
 * GC runs inside the export and finalizes that key's generation job, which takes the
 * same lock. The peer share is imported as a JWK too (~8 µs, vs ~80 µs as DER SPKI).
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
    const d = fixedPrivate ?? secureRandom(info.size);
    try {
      // Node (lib/internal/crypto/keys.js) builds a private OKP key from d alone and
      // derives the public half; x must be a string but is not read. The RFC 8448 test
      // (fixed private key -> known public key) catches a Node that starts to check it.
      this.privateKey = createPrivateKey({ key: { kty: 'OKP', crv: info.curve, d: b64url(d), x: '' }, format: 'jwk' });
    } catch {
      throw new Error(`cannot build a ${info.name} private key`);
    } finally {
      if (fixedPrivate === undefined) d.fill(0);
    }
    const x = createPublicKey(this.privateKey).export({ format: 'jwk' }).x;
    this.publicKey = Buffer.from(String(x), 'base64url');
  }

  computeSharedSecret(peerPublic: Uint8Array): Buffer {
    const { name, size, curve } = this.info;
    if (peerPublic.length !== size) throw illegalParameter(`${name} key share must be ${size} bytes, got ${peerPublic.length}`);
    let peer: KeyObject;
    try {
      peer = createPublicKey({ key: { kty: 'OKP', crv: curve, x: b64url(peerPublic) }, format: 'jwk' });
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
