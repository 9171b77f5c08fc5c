import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { illegalParameter } from '../wire/errors.js';
import { generateKeyPairSpki, type DhKeyPair } from './ecdhe.js';

/** Sizes of the RFC 7919 finite-field groups keyward implements. */
export type FfdheBits = 2048 | 3072 | 4096;

/** Which TLS version's rules apply to a finite-field exchange (RFC 8446 4.2.8.1 vs RFC 5246 8.1.2). */
export type DhVersion = 'TLSv1.3' | 'TLSv1.2';

/** The public parameters of one RFC 7919 group, as TLS 1.2's ServerDHParams carries them. */
export interface FfdheGroup {
  readonly name: `ffdhe${FfdheBits}`;
  readonly bits: FfdheBits;
  /** The safe prime p, big-endian, `length` bytes. */
  readonly p: Buffer;
  /** The generator: 2 for every RFC 7919 group. */
  readonly g: Buffer;
  /** Byte length of p: the length of every TLS 1.3 key share and shared secret of the group. */
  readonly length: number;
}

interface GroupState extends FfdheGroup {
  readonly pMinusOne: bigint;
  /** DER AlgorithmIdentifier { dhKeyAgreement, DHParameter { p, g } } for SPKI and PKCS#8. */
  readonly algorithm: Buffer;
}

/**
 * The constant X of each group in RFC 7919 Appendix A, where
 * p = 2^b - 2^(b-64) + (floor(2^(b-130) * e) + X) * 2^64 - 1.
 * The primes are computed from that formula rather than pasted as 1,000 hex digits; a test
 * checks each against OpenSSL's built-in ffdhe groups.
 */
const APPENDIX_A_X: Readonly<Record<FfdheBits, bigint>> = { 2048: 560316n, 3072: 2625351n, 4096: 5736041n };

/** floor(e * 2^bits), summing 1/k! with 64 guard bits (far more than the series' rounding loss). */
function eTimesPowerOfTwo(bits: number): bigint {
  const guard = 64n;
  let term = 1n << (BigInt(bits) + guard);
  let sum = 0n;
  for (let k = 1n; term > 0n; k++) {
    sum += term;
    term /= k;
  }
  return sum >> guard;
}

function bigintBytes(n: bigint, length: number): Buffer {
  return Buffer.from(n.toString(16).padStart(length * 2, '0'), 'hex');
}

function bytesBigint(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

// --- the little DER that SPKI and PKCS#8 DH keys need (RFC 5280, RFC 5208, PKCS #3) ---

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff);
  return Buffer.concat([Buffer.of(tag), len, content]);
}

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0x00 when the top bit is set. */
function derUnsigned(b: Uint8Array): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = Buffer.from(b.subarray(i));
  return der(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.of(0), v]) : v);
}

/** The content of the TLV at `off` in `b`, and where the TLV ends. Input is our own export. */
function derRead(b: Buffer, off: number, tag: number): { start: number; end: number } {
  if (b[off] !== tag) throw new Error(`DH key DER: expected tag ${tag} at ${off}`);
  let len = b[off + 1];
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[start + i];
    start += n;
  }
  return { start, end: start + len };
}

const DH_KEY_AGREEMENT_OID = Buffer.from('06092a864886f70d010301', 'hex'); // 1.2.840.113549.1.3.1 (PKCS #3)

const groups = new Map<FfdheBits, GroupState>();

/** The RFC 7919 group of `bits` (computed once). */
export function ffdheGroup(bits: FfdheBits): FfdheGroup {
  return groupState(bits);
}

function groupState(bits: FfdheBits): GroupState {
  let s = groups.get(bits);
  if (s === undefined) {
    const b = BigInt(bits);
    const x = APPENDIX_A_X[bits];
    if (x === undefined) throw new RangeError(`no RFC 7919 group of ${bits} bits`);
    const p = (1n << b) - (1n << (b - 64n)) + ((eTimesPowerOfTwo(bits - 130) + x) << 64n) - 1n;
    const length = bits / 8;
    const pBytes = bigintBytes(p, length);
    const g = Buffer.of(2);
    s = {
      name: `ffdhe${bits}`,
      bits,
      p: pBytes,
      g,
      length,
      pMinusOne: p - 1n,
      algorithm: der(0x30, Buffer.concat([DH_KEY_AGREEMENT_OID, der(0x30, Buffer.concat([derUnsigned(pBytes), derUnsigned(g)]))])),
    };
    groups.set(bits, s);
  }
  return s;
}

/**
 * The checks RFC 7919 5.1 and RFC 8446 4.2.8.1 ask of a peer's public value Y: in TLS 1.3
 * exactly the length of p (left-padded); in TLS 1.2 (dh_Yc, an integer) 1 to len(p) bytes;
 * in both, 1 < Y < p-1, which rules out the values of order 1 and 2 that would give away
 * the shared secret. Throws illegal_parameter.
 */
export function checkFfdhePublic(group: FfdheGroup, y: Uint8Array, version: DhVersion): void {
  const s = groupState(group.bits);
  if (version === 'TLSv1.3' ? y.length !== s.length : y.length < 1 || y.length > s.length) {
    const want = version === 'TLSv1.3' ? `${s.length}` : `1 to ${s.length}`;
    throw illegalParameter(`${s.name} public value must be ${want} bytes, got ${y.length}`);
  }
  // The optional subgroup check (Y^q = 1 mod p) costs a full exponentiation and guards only
  // against the order-2 elements, which the range check excludes; Node 20's OpenSSL does it
  // anyway inside diffieHellman(), Node 24's does not.
  const v = bytesBigint(y);
  if (v <= 1n || v >= s.pMinusOne) throw illegalParameter(`${s.name} public value out of range (must be 1 < Y < p-1)`);
}

/**
 * Finite-field DH through KeyObjects (SPKI/PKCS#8 DER built here), not createDiffieHellman,
 * because `createDiffieHellman(prime)` runs a primality test of p on Node 24 (0.6 s for
 * ffdhe2048, 8 s for ffdhe4096, on every construction), while generateKeyPairSync('dh') and
 * diffieHellman() take the group as a known one.
 */
class FfdheKeyPair implements DhKeyPair {
  readonly publicKey: Buffer;
  private readonly privateKey: KeyObject;

  constructor(
    private readonly s: GroupState,
    private readonly version: DhVersion,
    fixedPrivate?: Uint8Array,
  ) {
    let spki: Buffer;
    if (fixedPrivate !== undefined) {
      const x = bytesBigint(fixedPrivate);
      if (x <= 1n || x >= s.pMinusOne) throw new RangeError(`fixed ${s.name} private exponent out of range`);
      const pkcs8 = der(0x30, Buffer.concat([der(0x02, Buffer.of(0)), s.algorithm, der(0x04, derUnsigned(fixedPrivate))]));
      this.privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
      pkcs8.fill(0);
      spki = createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' });
    } else {
      // OpenSSL knows the RFC 7919 primes and draws a short exponent (RFC 7919 5.2), ~0.4 ms
      // for ffdhe2048. The job encodes the public half itself: see okpKeyPair in ecdhe.ts for
      // why a generated key's public half is not exported afterwards.
      const kp = generateKeyPairSpki('dh', { prime: s.p, generator: 2, publicKeyEncoding: { type: 'spki', format: 'der' } });
      this.privateKey = kp.privateKey;
      spki = kp.publicKey;
    }
    // SPKI: SEQUENCE { AlgorithmIdentifier, BIT STRING { 0x00, INTEGER Y } }
    const outer = derRead(spki, 0, 0x30);
    const alg = derRead(spki, outer.start, 0x30);
    const bits = derRead(spki, alg.end, 0x03);
    const y = derRead(spki, bits.start + 1, 0x02);
    this.publicKey = leftPad(spki.subarray(y.start, y.end), s.length);
  }

  agree(peer: Uint8Array): Buffer {
    const s = this.s;
    checkFfdhePublic(s, peer, this.version);
    let peerKey: KeyObject;
    try {
      const spki = der(0x30, Buffer.concat([s.algorithm, der(0x03, Buffer.concat([Buffer.of(0), derUnsigned(peer)]))]));
      peerKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    } catch {
      throw illegalParameter(`invalid ${s.name} public value`);
    }
    let z: Buffer;
    try {
      z = diffieHellman({ privateKey: this.privateKey, publicKey: peerKey });
    } catch {
      throw illegalParameter(`${s.name} public value gives no shared secret`);
    }
    // RFC 8446 7.4.1: TLS 1.3 keeps Z left-padded to len(p); RFC 5246 8.1.2: TLS 1.2 strips
    // its leading zero bytes before it is the premaster secret. node:crypto may do either.
    return this.version === 'TLSv1.3' ? leftPad(z, s.length) : stripLeadingZeros(z);
  }
}

function leftPad(b: Buffer, length: number): Buffer {
  const stripped = stripLeadingZeros(b);
  if (stripped.length === length) return stripped;
  const out = Buffer.alloc(length);
  stripped.copy(out, length - stripped.length);
  return out;
}

function stripLeadingZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return i === 0 ? b : b.subarray(i);
}

/**
 * A fresh ephemeral key pair of the RFC 7919 group of `bits`. Its publicKey is Y left-padded
 * to len(p) (what TLS 1.3 requires; a valid dh_Ys/dh_Yc in TLS 1.2 too). `version` sets the
 * peer-value length rule and the shared secret's form: padded (TLS 1.3) or stripped of
 * leading zeros (the TLS 1.2 premaster). `fixedPrivate` (tests): the big-endian exponent.
 */
export function ffdheKeyPair(bits: FfdheBits, version: DhVersion, fixedPrivate?: Uint8Array): DhKeyPair {
  return new FfdheKeyPair(groupState(bits), version, fixedPrivate);
}
