import { constants, privateDecrypt, randomBytes, type KeyObject } from 'node:crypto';

/** Length of a TLS 1.2 premaster secret (client_version + 46 random bytes). */
export const PREMASTER_LENGTH = 48;

/**
 * Decrypts an RSA-encrypted premaster secret (TLS 1.2 RSA key exchange) with the
 * RFC 5246 7.4.7.1 countermeasure: whatever is wrong with the ciphertext (bad PKCS#1
 * v1.5 type-2 padding, a message that is not 48 bytes, a client_version that differs
 * from `clientVersion`, a ciphertext longer than the modulus or not below it), the
 * result is 48 random bytes, so the handshake fails later at Finished and nothing
 * tells the caller which case it was (Bleichenbacher).
 *
 * Node 20 refuses RSA_PKCS1_PADDING for private decryption (CVE-2023-46809), so this
 * does the raw RSA operation and checks the padding itself. The checks read every byte
 * at fixed positions and combine them with bitwise operations into one mask; the output
 * is selected byte-wise with that mask. JavaScript gives no hard constant-time
 * guarantee, but there is no branch and no early exit on secret data here.
 *
 * Always returns 48 bytes; never throws on bad ciphertext content (it throws only if
 * `privateKey` is not an RSA private key).
 */
export function decryptPremasterImplicit(privateKey: KeyObject, ciphertext: Uint8Array, clientVersion: number): Uint8Array {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw new TypeError('decryptPremasterImplicit needs an RSA private key');
  }
  // Drawn before decrypting, so the time spent does not depend on the padding check.
  const fallback = randomBytes(PREMASTER_LENGTH);
  const k = Math.ceil((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);

  // Only public facts decide these branches: the ciphertext length, and whether the
  // ciphertext as a number is below the public modulus.
  let bad = 0;
  let em: Buffer;
  if (k < PREMASTER_LENGTH + 11 || ciphertext.length > k) {
    bad = 1;
    em = Buffer.alloc(Math.max(k, PREMASTER_LENGTH + 11));
  } else {
    // Some old clients drop leading zero bytes of the ciphertext: restore them.
    const padded = Buffer.alloc(k);
    padded.set(ciphertext, k - ciphertext.length);
    try {
      em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, padded);
    } catch {
      bad = 1;
      em = Buffer.alloc(k);
    }
    if (em.length !== k) {
      bad = 1;
      em = Buffer.alloc(k);
    }
  }

  // EM = 0x00 || 0x02 || PS (k-51 non-zero bytes) || 0x00 || M (48 bytes), where
  // M starts with the client_version. A message of any other length puts a zero in PS
  // or a non-zero byte at the separator, so fixed positions suffice.
  const n = em.length;
  const sep = n - PREMASTER_LENGTH - 1;
  bad |= em[0];
  bad |= em[1] ^ 0x02;
  for (let i = 2; i < sep; i++) bad |= isZero(em[i]);
  bad |= em[sep];
  bad |= em[sep + 1] ^ ((clientVersion >>> 8) & 0xff);
  bad |= em[sep + 2] ^ (clientVersion & 0xff);

  // mask = 0xff when bad, 0x00 when good.
  const mask = -((bad | -bad) >>> 31) & 0xff;
  const out = new Uint8Array(PREMASTER_LENGTH);
  for (let i = 0; i < PREMASTER_LENGTH; i++) {
    out[i] = (fallback[i] & mask) | (em[sep + 1 + i] & ~mask & 0xff);
  }
  em.fill(0);
  fallback.fill(0);
  return out;
}

/** 1 if b (a byte) is zero, else 0, without a comparison branch. */
function isZero(b: number): number {
  return ((b - 1) >>> 8) & 1;
}
