import { createHash, hash as oneShotHash } from 'node:crypto';

/** Hash functions the TLS 1.2 PRF and the TLS 1.3 key schedule use. */
export type HashName = 'sha256' | 'sha384' | 'sha512';

const lengths: Readonly<Record<HashName, number>> = { sha256: 32, sha384: 48, sha512: 64 };

/** Output length of `h` in bytes (RFC 8446 calls it Hash.length). */
export function hashLength(h: HashName): number {
  const n = lengths[h];
  if (n === undefined) throw new TypeError(`unsupported hash ${String(h)}`);
  return n;
}

// crypto.hash (Node >= 20.12) skips the Hash object and is ~30% cheaper for one-shot digests.
const hasOneShot = typeof oneShotHash === 'function';

/** One-shot digest of `data`. */
export function digest(h: HashName, data: Uint8Array): Buffer {
  if (hasOneShot) return oneShotHash(h, data, 'buffer');
  return createHash(h).update(data).digest();
}

/** One-shot hex digest of `data` (a string is hashed as its UTF-8 bytes). */
export function hexDigest(h: HashName, data: Uint8Array | string): string {
  if (hasOneShot) return oneShotHash(h, data, 'hex');
  return createHash(h).update(data).digest('hex');
}

const empty = new Map<HashName, Buffer>();

/**
 * Hash of the empty string (Derive-Secret(., "derived", "") and friends need it).
 * Cached; returns the shared Buffer, so callers must not modify it.
 */
export function emptyHash(h: HashName): Buffer {
  let v = empty.get(h);
  if (v === undefined) {
    v = digest(h, new Uint8Array(0));
    empty.set(h, v);
  }
  return v;
}
