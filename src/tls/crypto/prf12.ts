import { createHmac } from 'node:crypto';
import type { PskMasterSecretRequest } from '../../keys/keyOperations.js';
import { hashLength } from './hash.js';
import { type AeadName, aeadKeyLength, tls12FixedIvLength } from './cipherSuites.js';

/** Hashes the TLS 1.2 PRF is defined with for the suites keyward implements. */
export type Prf12Hash = 'sha256' | 'sha384';

/**
 * P_hash (RFC 5246 5): A(0) = seed, A(i) = HMAC(secret, A(i-1)),
 * output = HMAC(secret, A(1) || seed) || HMAC(secret, A(2) || seed) || ...
 */
function pHash(h: Prf12Hash, secret: Uint8Array, labelAndSeed: Buffer, length: number): Buffer {
  const hl = hashLength(h);
  const n = Math.ceil(length / hl);
  const out = Buffer.allocUnsafe(n * hl);
  let a: Buffer = labelAndSeed;
  for (let i = 0; i < n; i++) {
    a = createHmac(h, secret).update(a).digest();
    createHmac(h, secret).update(a).update(labelAndSeed).digest().copy(out, i * hl);
  }
  return length === out.length ? out : out.subarray(0, length);
}

/** The TLS 1.2 PRF (RFC 5246 5): P_<hash>(secret, label || seed), `length` bytes. */
export function prf12(h: Prf12Hash, secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  if (h !== 'sha256' && h !== 'sha384') throw new TypeError(`TLS 1.2 PRF hash must be sha256 or sha384, not ${String(h)}`);
  if (!Number.isInteger(length) || length < 0 || length > 1 << 16) throw new RangeError(`PRF length ${length} out of range`);
  const lb = Buffer.from(label, 'latin1');
  const ls = Buffer.allocUnsafe(lb.length + seed.length);
  lb.copy(ls, 0);
  ls.set(seed, lb.length);
  return pHash(h, secret, ls, length);
}

function concat2(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** master_secret = PRF(pre_master_secret, "master secret", ClientHello.random || ServerHello.random)[0..47]. */
export function tls12MasterSecret(h: Prf12Hash, premaster: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): Buffer {
  return prf12(h, premaster, 'master secret', concat2(clientRandom, serverRandom), 48);
}

/**
 * RFC 7627 4: master_secret = PRF(pre_master_secret, "extended master secret", session_hash)[0..47],
 * session_hash being the transcript hash through ClientKeyExchange.
 */
export function tls12ExtendedMasterSecret(h: Prf12Hash, premaster: Uint8Array, sessionHash: Uint8Array): Buffer {
  return prf12(h, premaster, 'extended master secret', sessionHash, 48);
}

/**
 * The AEAD key block (RFC 5246 6.3; no MAC keys for AEAD suites):
 * PRF(master_secret, "key expansion", server_random || client_random) split into
 * client_write_key, server_write_key, client_write_IV, server_write_IV.
 * The IVs are 4 bytes (GCM implicit salt, RFC 5288) or 12 bytes (ChaCha20-Poly1305, RFC 7905).
 */
export function tls12KeyBlock(
  h: Prf12Hash,
  masterSecret: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  aead: AeadName,
): { clientKey: Buffer; serverKey: Buffer; clientIv: Buffer; serverIv: Buffer } {
  const kl = aeadKeyLength(aead);
  const il = tls12FixedIvLength(aead);
  const block = prf12(h, masterSecret, 'key expansion', concat2(serverRandom, clientRandom), 2 * kl + 2 * il);
  return {
    clientKey: block.subarray(0, kl),
    serverKey: block.subarray(kl, 2 * kl),
    clientIv: block.subarray(2 * kl, 2 * kl + il),
    serverIv: block.subarray(2 * kl + il, 2 * kl + 2 * il),
  };
}

/** Finished verify_data (RFC 5246 7.4.9): PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]. */
export function tls12VerifyData(
  h: Prf12Hash,
  masterSecret: Uint8Array,
  label: 'client finished' | 'server finished',
  handshakeHash: Uint8Array,
): Buffer {
  return prf12(h, masterSecret, label, handshakeHash, 12);
}

/**
 * The premaster secret of the PSK key exchanges (RFC 4279 2, RFC 5489 2):
 * uint16 len(other) || other || uint16 len(psk) || psk, where other is the ECDHE shared
 * secret for ECDHE_PSK, or len(psk) zero bytes for plain PSK (`otherSecret` null).
 */
export function pskPremaster(psk: Uint8Array, otherSecret: Uint8Array | null): Buffer {
  if (psk.length > 0xffff) throw new RangeError('PSK longer than 65535 bytes');
  const otherLen = otherSecret === null ? psk.length : otherSecret.length;
  if (otherLen > 0xffff) throw new RangeError('other secret longer than 65535 bytes');
  const out = Buffer.alloc(4 + otherLen + psk.length); // zero-filled: plain PSK's "other" stays zeros
  out.writeUInt16BE(otherLen, 0);
  if (otherSecret !== null) out.set(otherSecret, 2);
  out.writeUInt16BE(psk.length, 2 + otherLen);
  out.set(psk, 4 + otherLen);
  return out;
}

/**
 * The 48-byte master secret of a TLS 1.2 PSK handshake (RFC 4279, RFC 5489; RFC 7627 when
 * `extended`, with `seed` the session hash, else the two randoms), computed by whoever
 * holds the PSK. The premaster is wiped after use.
 */
export function pskMasterSecret(psk: Uint8Array, req: PskMasterSecretRequest): Buffer {
  const premaster = pskPremaster(psk, req.otherSecret);
  try {
    return prf12(req.hash, premaster, req.extended ? 'extended master secret' : 'master secret', req.seed, 48);
  } finally {
    premaster.fill(0);
  }
}
