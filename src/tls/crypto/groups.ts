import { ecKeyPair, ecPublicKeyLength, type DhKeyPair, type EcCurve } from './ecdhe.js';
import { checkFfdhePublic, ffdheGroup, ffdheKeyPair, type FfdheBits, type FfdheGroup } from './ffdhe.js';
import { X25519_MLKEM768, acceptX25519MlKem768, offerX25519MlKem768 } from './hybrid.js';
import { nativeMlKem768, type MlKemBackend } from './mlkem.js';

/** Key-exchange groups (RFC 8446 4.2.7, RFC 8422 5.1.1, RFC 7919, draft-ietf-tls-ecdhe-mlkem). */
export enum NamedGroup {
  secp256r1 = 0x0017,
  secp384r1 = 0x0018,
  secp521r1 = 0x0019,
  x25519 = 0x001d,
  x448 = 0x001e,
  ffdhe2048 = 0x0100,
  ffdhe3072 = 0x0101,
  ffdhe4096 = 0x0102,
  X25519MLKEM768 = 0x11ec,
}

/** The TLS version whose rules a key exchange follows. */
export type KeyExchangeVersion = 'TLSv1.3' | 'TLSv1.2';

/** What the engine needs to know of a group, per version and role. */
export interface GroupSpec {
  readonly group: NamedGroup;
  /** IANA Supported Groups name. */
  readonly name: string;
  /** 'ecdhe': elliptic curve DH; 'ffdhe': RFC 7919 finite-field DH; 'hybrid': ML-KEM + X25519 (a KEM: the server's share depends on the client's). */
  readonly kind: 'ecdhe' | 'ffdhe' | 'hybrid';
  /** Bytes of the client's key share (TLS 1.3 KeyShareEntry; TLS 1.2 ClientKeyExchange public value, FFDHE: at most this). */
  readonly clientShareLength: number;
  /** Bytes of the server's key share (TLS 1.3 ServerHello; TLS 1.2 ServerKeyExchange public value). */
  readonly serverShareLength: number;
  /** Bytes of the TLS 1.3 shared secret (TLS 1.2 FFDHE strips its leading zeros: RFC 5246 8.1.2). */
  readonly sharedSecretLength: number;
  /** Usable in TLS 1.3 key_share. */
  readonly tls13: boolean;
  /**
   * How TLS 1.2 uses the group, if at all: 'ECDHE' (ServerECDHParams, named_curve, RFC 8422)
   * or 'DHE' (ServerDHParams with the group's p and g from {@link ffdheParameters}, for
   * the DHE_* suites, RFC 7919 4). The hybrid is TLS 1.3 only.
   */
  readonly tls12?: 'ECDHE' | 'DHE';
  /** Classical security strength in bits (NIST SP 800-57), for policy. */
  readonly securityBits: number;
  /** Whether the exchange resists a quantum attacker recording the traffic today. */
  readonly postQuantum: boolean;
}

interface GroupImpl extends GroupSpec {
  readonly curve?: EcCurve;
  readonly ffdhe?: FfdheBits;
}

function ec(group: NamedGroup, curve: EcCurve, securityBits: number): GroupImpl {
  const n = ecPublicKeyLength(curve);
  return { group, name: curve.name, kind: 'ecdhe', clientShareLength: n, serverShareLength: n, sharedSecretLength: curve.size, tls13: true, tls12: 'ECDHE', securityBits, postQuantum: false, curve };
}

function ff(group: NamedGroup, bits: FfdheBits, securityBits: number): GroupImpl {
  const n = bits / 8;
  return { group, name: `ffdhe${bits}`, kind: 'ffdhe', clientShareLength: n, serverShareLength: n, sharedSecretLength: n, tls13: true, tls12: 'DHE', securityBits, postQuantum: false, ffdhe: bits };
}

const table = new Map<number, GroupImpl>(
  [
    ec(NamedGroup.secp256r1, { name: 'secp256r1', kind: 'ecdh', curve: 'prime256v1', size: 32 }, 128),
    ec(NamedGroup.secp384r1, { name: 'secp384r1', kind: 'ecdh', curve: 'secp384r1', size: 48 }, 192),
    ec(NamedGroup.secp521r1, { name: 'secp521r1', kind: 'ecdh', curve: 'secp521r1', size: 66 }, 256),
    ec(NamedGroup.x25519, { name: 'x25519', kind: 'okp', curve: 'x25519', size: 32 }, 128),
    ec(NamedGroup.x448, { name: 'x448', kind: 'okp', curve: 'x448', size: 56 }, 224),
    ff(NamedGroup.ffdhe2048, 2048, 103),
    ff(NamedGroup.ffdhe3072, 3072, 125),
    ff(NamedGroup.ffdhe4096, 4096, 150),
    {
      group: NamedGroup.X25519MLKEM768,
      name: 'X25519MLKEM768',
      kind: 'hybrid',
      ...X25519_MLKEM768,
      tls13: true,
      securityBits: 128,
      postQuantum: true,
    } satisfies GroupImpl,
  ].map((g) => [g.group, g]),
);

/** Every group keyward implements, in code point order. */
export const GROUPS: readonly GroupSpec[] = [...table.values()];

/** Name of a group code for logs; unknown codes print as hex. */
export function groupName(g: number): string {
  return table.get(g)?.name ?? `group_0x${g.toString(16).padStart(4, '0')}`;
}

/** True for the groups keyward implements. */
export function isKnownGroup(g: number): g is NamedGroup {
  return table.has(g);
}

/** The table entry of a group; RangeError for a group keyward does not implement. */
export function groupSpec(g: number): GroupSpec {
  return impl(g);
}

function impl(g: number): GroupImpl {
  const info = table.get(g);
  if (info === undefined) throw new RangeError(`unsupported key exchange group ${groupName(g)}`);
  return info;
}

/** Whether `version` may use group `g` (TLS 1.2: as ECDHE or DHE, see {@link GroupSpec.tls12}). */
export function groupAllowedIn(g: NamedGroup, version: KeyExchangeVersion): boolean {
  const info = table.get(g);
  return info !== undefined && (version === 'TLSv1.3' ? info.tls13 : info.tls12 !== undefined);
}

/** p and g of an FFDHE group, for the TLS 1.2 ServerDHParams of the DHE suites. */
export function ffdheParameters(g: NamedGroup): FfdheGroup {
  const bits = impl(g).ffdhe;
  if (bits === undefined) throw new RangeError(`${groupName(g)} is not a finite-field group`);
  return ffdheGroup(bits);
}

/** Length of a ClientHello key share of `g` (the same as the server's, except for the hybrid). */
export function groupPublicKeyLength(g: NamedGroup): number {
  return impl(g).clientShareLength;
}

/**
 * Deterministic inputs, for tests and byte-exact vectors (RFC 8448): never set in production.
 */
export interface FixedKeyShareInputs {
  /**
   * The raw private key: X25519/X448 scalar; big-endian NIST scalar of the field size;
   * big-endian FFDHE exponent (1 < x < p-1); for X25519MLKEM768 its X25519 scalar.
   */
  readonly privateKey?: Uint8Array;
  /** X25519MLKEM768 offer: the ML-KEM-768 key generation seed d || z (64 bytes). */
  readonly mlkemSeed?: Uint8Array;
  /** X25519MLKEM768 accept: the ML-KEM encapsulation randomness m (32 bytes); runs on @noble/post-quantum, as node:crypto takes none. */
  readonly mlkemRandomness?: Uint8Array;
  /** Which ML-KEM implementation to use (cross-checks); default node:crypto where this Node has it. */
  readonly mlkemBackend?: MlKemBackend;
}

/** The side that speaks first: its key share now, the shared secret when the peer's share comes. */
export interface KeyShareOffer {
  readonly group: NamedGroup;
  /** The key share to send: TLS 1.3 ClientHello key_share; TLS 1.2 ServerKeyExchange public value. */
  readonly publicKey: Buffer;
  /**
   * The shared secret with the peer's share (TLS 1.3 ServerHello key_share; TLS 1.2
   * ClientKeyExchange). Throws TlsAlertError(illegal_parameter) for a malformed or invalid
   * share; the offer stays usable after a refusal.
   */
  complete(peerShare: Uint8Array): Buffer;
}

/** The side that answers: its key share and the shared secret, both at once. */
export interface AcceptedKeyShare {
  /** The key share to send back (TLS 1.3 ServerHello key_share; TLS 1.2 ClientKeyExchange). */
  readonly publicKey: Buffer;
  readonly sharedSecret: Buffer;
}

function versionCheck(info: GroupImpl, version: KeyExchangeVersion): void {
  if (!groupAllowedIn(info.group, version)) throw new RangeError(`${info.name} cannot be used in ${version}`);
}

function dhKeyPair(info: GroupImpl, version: KeyExchangeVersion, fixedPrivate: Uint8Array | undefined): DhKeyPair {
  if (info.curve !== undefined) return ecKeyPair(info.curve, fixedPrivate);
  return ffdheKeyPair(info.ffdhe!, version, fixedPrivate);
}

/**
 * Starts a key exchange on the side that sends its share first: the TLS 1.3 client, and in
 * TLS 1.2 the server (ServerKeyExchange comes before ClientKeyExchange).
 * `version` sets the TLS 1.2 FFDHE rules (dh_Yc of 1..len(p) bytes, premaster without
 * leading zeros). RangeError for an unknown group or one the version cannot use.
 */
export function offerKeyShare(group: NamedGroup, fixed?: FixedKeyShareInputs, version: KeyExchangeVersion = 'TLSv1.3'): KeyShareOffer {
  const info = impl(group);
  versionCheck(info, version);
  if (info.kind === 'hybrid') {
    const o = offerX25519MlKem768({ x25519Private: fixed?.privateKey, mlkemSeed: fixed?.mlkemSeed }, fixed?.mlkemBackend);
    return { group, publicKey: o.publicKey, complete: o.complete };
  }
  const kp = dhKeyPair(info, version, fixed?.privateKey);
  return { group, publicKey: kp.publicKey, complete: (peer) => kp.agree(peer) };
}

/**
 * Answers a peer's key share on the side that speaks second: the TLS 1.3 server (the
 * ClientHello's share), and in TLS 1.2 the client (the ServerKeyExchange's). A bad share
 * (RFC 8446 4.2.8.1/4.2.8.2, RFC 7919 5.1, FIPS 203 7.2) throws
 * TlsAlertError(illegal_parameter); FFDHE values and ML-KEM encapsulation keys are checked
 * before the costly part is done.
 */
export function acceptKeyShare(
  group: NamedGroup,
  peerShare: Uint8Array,
  fixed?: FixedKeyShareInputs,
  version: KeyExchangeVersion = 'TLSv1.3',
): AcceptedKeyShare {
  const info = impl(group);
  versionCheck(info, version);
  if (info.kind === 'hybrid') {
    return acceptX25519MlKem768(peerShare, { x25519Private: fixed?.privateKey, mlkemRandomness: fixed?.mlkemRandomness }, fixed?.mlkemBackend);
  }
  // An FFDHE key costs ~0.5-2 ms: refuse a bad share before making one.
  if (info.ffdhe !== undefined) checkFfdhePublic(ffdheGroup(info.ffdhe), peerShare, version);
  const kp = dhKeyPair(info, version, fixed?.privateKey);
  return { publicKey: kp.publicKey, sharedSecret: kp.agree(peerShare) };
}

/** A server group preference with the reason for its order. */
export interface GroupPreference {
  readonly groups: readonly NamedGroup[];
  readonly reason: string;
}

/**
 * Every group after the first two, cheapest first by server CPU per handshake
 * (bench/groups.ts; Node 20 / 24, µs): secp256r1 187/162, x448 456/671, secp384r1
 * 2670/3219, secp521r1 6111/3576, then the RFC 7919 groups, which cost milliseconds
 * (ffdhe2048 3318/1157, ffdhe3072 9261/2444, ffdhe4096 19979/4852) and serve only clients
 * that offer nothing else.
 */
const CLASSICAL_TAIL: readonly NamedGroup[] = [
  NamedGroup.secp256r1,
  NamedGroup.x448,
  NamedGroup.secp384r1,
  NamedGroup.secp521r1,
  NamedGroup.ffdhe2048,
  NamedGroup.ffdhe3072,
  NamedGroup.ffdhe4096,
];

/**
 * The server preference keyward recommends on a Node with (`native`) or without ML-KEM in
 * node:crypto, decided from bench/groups.ts (server CPU per handshake). The engine picks the
 * most preferred group the client sent a share for, so the second group still serves clients
 * that send only it, without a HelloRetryRequest.
 */
export function recommendedGroupPreference(native: boolean = nativeMlKem768): GroupPreference {
  if (native) {
    return {
      groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519, ...CLASSICAL_TAIL],
      reason:
        'node:crypto has ML-KEM (Node 24.7+): X25519MLKEM768 costs the server 157 µs per handshake against 108 µs for x25519 ' +
        '(bench/groups.ts, Node 24.22), and protects recorded traffic from a future quantum attacker; browsers send its share ' +
        'first, so choosing it needs no HelloRetryRequest.',
    };
  }
  return {
    groups: [NamedGroup.x25519, NamedGroup.X25519MLKEM768, ...CLASSICAL_TAIL],
    reason:
      'no ML-KEM in node:crypto (Node < 24.7): X25519MLKEM768 on the pure-JS ML-KEM costs the server 903 µs per handshake ' +
      'against 193 µs for x25519 (bench/groups.ts, Node 20.20), nearly five times as much, and the JS code makes no ' +
      'constant-time claim; x25519 stays first and X25519MLKEM768 serves clients that send only a hybrid share. ' +
      'Node 24 makes the hybrid the default.',
  };
}

/** One ephemeral key pair of one DH-style group: the interface of today's engine, until it moves to offerKeyShare/acceptKeyShare. */
export interface KeyExchange {
  readonly group: NamedGroup;
  /** Wire encoding: 32/56 raw bytes for X25519/X448, uncompressed SEC1 point (0x04||X||Y) for NIST curves, Y padded to len(p) for FFDHE. */
  readonly publicKey: Uint8Array;
  /**
   * The (EC)DHE shared secret with the peer's key share, in the TLS 1.3 form. Throws
   * TlsAlertError(illegal_parameter) if the share is malformed or invalid.
   */
  computeSharedSecret(peerPublic: Uint8Array): Buffer;
}

/**
 * A fresh ephemeral key pair for a DH-style `group` (not the hybrid, which is a KEM: use
 * offerKeyShare/acceptKeyShare). `fixedPrivate` (tests only, e.g. RFC 8448): see
 * {@link FixedKeyShareInputs.privateKey}.
 */
export function generateKeyExchange(group: NamedGroup, fixedPrivate?: Uint8Array): KeyExchange {
  const info = impl(group);
  if (info.kind === 'hybrid') throw new RangeError(`${info.name} is a KEM: use offerKeyShare/acceptKeyShare`);
  const kp = dhKeyPair(info, 'TLSv1.3', fixedPrivate);
  return { group, publicKey: kp.publicKey, computeSharedSecret: (peer) => kp.agree(peer) };
}
