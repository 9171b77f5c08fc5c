/**
 * RFC 5246 7.4.7.1 premaster selection for TLS 1.2 RSA key exchange.
 *
 * The key holder decrypts the client's EncryptedPreMasterSecret and must answer with a
 * 48-byte premaster whatever happened: when the decryption failed (bad PKCS#1 v1.5
 * padding, a ciphertext of the wrong size, any token error), when the plaintext is not
 * 48 bytes, or when its first two bytes are not the version the client offered in its
 * ClientHello, the answer is a random value generated before the decryption. The
 * handshake then fails at Finished exactly like any other key mismatch, so the peer
 * learns nothing about which check failed (Bleichenbacher, Klima-Pokorny-Rosa).
 *
 * On a bad version this uses the random value rather than the RFC's
 * `client_version || M[2..47]`: both make Finished fail identically, and one rule for
 * every failure is simpler to check.
 *
 * The selection below runs the same operations whatever the outcome (a mask, no branch
 * on the result), as far as JavaScript allows. The token's own timing, and the fact that
 * PKCS#11 reports a padding failure as an error return, are outside our control; that
 * residual is why a token that offers implicit rejection itself is preferable.
 */

import { PREMASTER_LENGTH } from './rsaPremaster.js';

export { PREMASTER_LENGTH };

/**
 * Chooses between the decrypted plaintext and `random` without branching on which.
 *
 * @param decrypted the token's plaintext, or `null` when the decryption failed.
 * @param clientVersion ClientHello.client_version (e.g. 0x0303).
 * @param random 48 random bytes, generated before the decryption was attempted.
 * @returns a new 48-byte buffer: the plaintext when it is 48 bytes starting with
 *   `clientVersion`, else a copy of `random`.
 */
export function selectPremaster(decrypted: Uint8Array | null, clientVersion: number, random: Uint8Array): Uint8Array {
  if (random.length !== PREMASTER_LENGTH) throw new Error('selectPremaster needs 48 random bytes');
  const failed = decrypted === null ? 1 : 0;
  const m = decrypted ?? random;
  const len = m.length;
  // Every term is 0 exactly when that check passes; `| 0` turns a missing byte into 0.
  let bad = (len ^ PREMASTER_LENGTH) | failed;
  bad |= ((m[0]! | 0) ^ ((clientVersion >>> 8) & 0xff)) | ((m[1]! | 0) ^ (clientVersion & 0xff));
  // 0xff when bad == 0, 0x00 otherwise: (bad | -bad) has its sign bit set iff bad != 0.
  const keep = (((bad | -bad) >>> 31) - 1) & 0xff;
  const drop = ~keep & 0xff;
  const out = new Uint8Array(PREMASTER_LENGTH);
  for (let i = 0; i < PREMASTER_LENGTH; i++) {
    out[i] = ((m[i]! | 0) & keep) | (random[i]! & drop);
  }
  return out;
}
