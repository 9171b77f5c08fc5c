import { createCipheriv, createDecipheriv, createSecretKey, type CipherCCMTypes, type CipherGCMTypes, type KeyObject } from 'node:crypto';
import { type AeadName, aeadCipherName, aeadKeyLength, aeadTagLength, AEAD_NONCE_LENGTH, tls12FixedIvLength } from './cipherSuites.js';

const TWO_32 = 0x1_0000_0000;

/**
 * Record protection with one AEAD key and IV (one direction of one epoch).
 *
 * Nonces (no BigInt, no per-record nonce allocation: node:crypto copies the IV when a
 * cipher is created, so one scratch buffer serves every record):
 * - 'tls13' (RFC 8446 5.3), and ChaCha20-Poly1305 in TLS 1.2 (RFC 7905 2): the 12-byte
 *   IV XORed with the 64-bit sequence number, left-padded with zeros; nothing is sent.
 * - 'tls12' with AES-GCM (RFC 5288 3) or AES-CCM (RFC 6655 3): 4-byte implicit salt ||
 *   8-byte explicit nonce. The explicit nonce is the sequence number and travels in front
 *   of the ciphertext.
 *
 * AES-CCM goes through node:crypto in one piece (one `update`, the plaintext length given
 * with the AAD), as CCM cannot stream; the other AEADs take the record in parts.
 */
export class RecordAead {
  readonly aead: AeadName;
  /** Bytes of explicit nonce in front of each sealed record: 8 for TLS 1.2 AES-GCM and AES-CCM, else 0. */
  readonly explicitNonceLength: number;
  /** Authentication tag length: 8 for AES-CCM_8, else 16. */
  readonly tagLength: number;
  private readonly key: KeyObject;
  private readonly nonce: Buffer;
  private readonly ivMid: number;
  private readonly ivLow: number;
  private readonly cipher: ReturnType<typeof aeadCipherName>;
  private readonly ccm: boolean;
  /** One options object per key: no per-record allocation for it. */
  private readonly options: { readonly authTagLength: number };

  constructor(aead: AeadName, key: Uint8Array, iv: Uint8Array, nonceStyle: 'tls13' | 'tls12') {
    const kl = aeadKeyLength(aead);
    if (key.length !== kl) throw new RangeError(`${aead} key must be ${kl} bytes, got ${key.length}`);
    if (nonceStyle !== 'tls13' && nonceStyle !== 'tls12') throw new TypeError(`unknown nonce style ${String(nonceStyle)}`);
    const ivLen = nonceStyle === 'tls12' ? tls12FixedIvLength(aead) : AEAD_NONCE_LENGTH;
    const explicit = nonceStyle === 'tls12' && ivLen !== AEAD_NONCE_LENGTH;
    if (iv.length !== ivLen) throw new RangeError(`${aead} ${nonceStyle} IV must be ${ivLen} bytes, got ${iv.length}`);
    this.aead = aead;
    this.cipher = aeadCipherName(aead);
    this.ccm = this.cipher === 'aes-128-ccm' || this.cipher === 'aes-256-ccm';
    this.tagLength = aeadTagLength(aead);
    this.options = Object.freeze({ authTagLength: this.tagLength });
    this.explicitNonceLength = explicit ? 8 : 0;
    // A KeyObject keeps the key in native memory; the caller may wipe its copy.
    this.key = createSecretKey(key);
    this.nonce = Buffer.alloc(AEAD_NONCE_LENGTH);
    this.nonce.set(iv, 0);
    this.ivMid = explicit ? 0 : this.nonce.readUInt32BE(4);
    this.ivLow = explicit ? 0 : this.nonce.readUInt32BE(8);
  }

  /** Writes the nonce for `seq` into the scratch buffer (XOR style, or the explicit part for TLS 1.2 GCM). */
  private setNonce(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`record sequence number ${seq} out of range`);
    const hi = Math.floor(seq / TWO_32);
    const lo = seq >>> 0;
    this.nonce.writeUInt32BE((this.ivMid ^ hi) >>> 0, 4);
    this.nonce.writeUInt32BE((this.ivLow ^ lo) >>> 0, 8);
  }

  /** Length of seal()'s output (without prefix) for `plaintextLength` bytes of plaintext. */
  sealedLength(plaintextLength: number): number {
    return this.explicitNonceLength + plaintextLength + this.tagLength;
  }

  /**
   * Encrypts the concatenation of `parts` (e.g. [content, innerContentType] in TLS 1.3)
   * under record number `seq` and additional data `aad`.
   * Returns explicit_nonce (TLS 1.2 AES-GCM and AES-CCM only) || ciphertext || tag, preceded
   * by `prefix` when one is given: pass the 5-byte record header there (its length field is
   * sealedLength(plaintext)) to get the whole record in one buffer.
   */
  seal(seq: number, aad: Uint8Array, parts: readonly Uint8Array[], prefix?: Uint8Array): Buffer {
    const out: Uint8Array[] = [];
    this.sealParts(seq, aad, parts, prefix ?? EMPTY, out);
    return Buffer.concat(out);
  }

  /**
   * Like seal, but returns the pieces (prefix, explicit nonce, ciphertext chunks, tag)
   * without joining them, for a caller that joins many records into one socket write
   * anyway: every payload byte is then copied once instead of twice.
   */
  sealParts(seq: number, aad: Uint8Array, parts: readonly Uint8Array[], prefix: Uint8Array, out: Uint8Array[]): void {
    this.setNonce(seq);
    const en = this.explicitNonceLength;
    if (en === 0) out.push(prefix);
    else out.push(Buffer.concat([prefix, this.nonce.subarray(4, 12)]));
    if (this.ccm) {
      const plaintext = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      const c = createCipheriv(this.cipher as CipherCCMTypes, this.key, this.nonce, this.options);
      c.setAAD(aad, { plaintextLength: plaintext.length });
      out.push(c.update(plaintext));
      c.final();
      out.push(c.getAuthTag());
      return;
    }
    const c = createCipheriv(this.cipher as CipherGCMTypes, this.key, this.nonce, this.options);
    c.setAAD(aad);
    for (const p of parts) if (p.length !== 0) out.push(c.update(p));
    const fin = c.final();
    if (fin.length !== 0) out.push(fin);
    out.push(c.getAuthTag());
  }

  /**
   * Decrypts and authenticates `sealed` (as produced by seal, explicit nonce included).
   * Returns the plaintext, or null when the record is too short or fails authentication;
   * never throws on bad input.
   */
  open(seq: number, aad: Uint8Array, sealed: Uint8Array): Buffer | null {
    const en = this.explicitNonceLength;
    const tl = this.tagLength;
    if (sealed.length < en + tl) return null;
    if (en !== 0) {
      // RFC 5288 3, RFC 6655 3: the receiver uses the explicit nonce from the record.
      if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`record sequence number ${seq} out of range`);
      this.nonce.set(sealed.subarray(0, en), 4);
    } else {
      this.setNonce(seq);
    }
    const body = sealed.subarray(en, sealed.length - tl);
    const tag = sealed.subarray(sealed.length - tl);
    try {
      if (this.ccm) {
        const d = createDecipheriv(this.cipher as CipherCCMTypes, this.key, this.nonce, this.options);
        d.setAuthTag(tag);
        d.setAAD(aad, { plaintextLength: body.length });
        const pt = d.update(body);
        d.final(); // throws when the tag does not verify
        return pt;
      }
      const d = createDecipheriv(this.cipher as CipherGCMTypes, this.key, this.nonce, this.options);
      d.setAAD(aad);
      d.setAuthTag(tag);
      const pt = d.update(body);
      d.final(); // throws when the tag does not verify
      return pt;
    } catch {
      return null;
    }
  }
}

const EMPTY = new Uint8Array(0);
