import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { RecordAead } from '../../src/tls/crypto/aead.js';
import { aeadKeyLength, type AeadName } from '../../src/tls/crypto/cipherSuites.js';

const AEADS: AeadName[] = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'];
const STYLES = ['tls13', 'tls12'] as const;

function make(aead: AeadName, style: 'tls13' | 'tls12'): { a: RecordAead; key: Buffer; iv: Buffer } {
  const key = randomBytes(aeadKeyLength(aead));
  const iv = randomBytes(style === 'tls12' && aead !== 'chacha20-poly1305' ? 4 : 12);
  return { a: new RecordAead(aead, key, iv, style), key, iv };
}

/** The per-record nonce computed the slow, obvious way (BigInt), independently of aead.ts. */
function expectedNonce(aead: AeadName, style: 'tls13' | 'tls12', iv: Buffer, seq: number): Buffer {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  if (style === 'tls12' && aead !== 'chacha20-poly1305') return Buffer.concat([iv, seqBytes]);
  const padded = Buffer.concat([Buffer.alloc(4), seqBytes]);
  return Buffer.from(iv.map((b, i) => b ^ padded[i]));
}

const aad = Buffer.from('1703030000', 'hex');

for (const aead of AEADS) {
  for (const style of STYLES) {
    test(`${aead} ${style}: round trips, sizes, explicit nonce`, () => {
      const { a, key, iv } = make(aead, style);
      const b = new RecordAead(aead, key, iv, style);
      const en = style === 'tls12' && aead !== 'chacha20-poly1305' ? 8 : 0;
      assert.equal(a.explicitNonceLength, en);
      assert.equal(a.tagLength, 16);
      for (const parts of [[], [Buffer.alloc(0)], [Buffer.from('x')], [randomBytes(100), Buffer.of(23)], [randomBytes(16384), Buffer.alloc(0), Buffer.of(22)]]) {
        const seq = parts.length * 7;
        const sealed = a.seal(seq, aad, parts);
        const pt = Buffer.concat(parts);
        assert.equal(sealed.length, en + pt.length + 16);
        assert.deepEqual(b.open(seq, aad, sealed), pt);
        // a Uint8Array view at an offset works too
        const copy = new Uint8Array(sealed.length + 3);
        copy.set(sealed, 3);
        assert.deepEqual(b.open(seq, aad, copy.subarray(3)), pt);
      }
    });

    test(`${aead} ${style}: the nonce is built as the RFC says, for small and huge sequence numbers`, () => {
      const { a, key, iv } = make(aead, style);
      const pt = Buffer.from('nonce check');
      for (const seq of [0, 1, 255, 0xffff_ffff, 0x1_0000_0000, 0x1234_5678_9abc, Number.MAX_SAFE_INTEGER]) {
        const sealed = a.seal(seq, aad, [pt]);
        const nonce = expectedNonce(aead, style, iv, seq);
        const en = a.explicitNonceLength;
        if (en) assert.deepEqual(sealed.subarray(0, 8), nonce.subarray(4), 'explicit nonce = sequence number');
        const d = createDecipheriv(aead as CipherGCMTypes, key, nonce, { authTagLength: 16 });
        d.setAAD(aad);
        d.setAuthTag(sealed.subarray(sealed.length - 16));
        const out = Buffer.concat([d.update(sealed.subarray(en, sealed.length - 16)), d.final()]);
        assert.deepEqual(out, pt, `seq ${seq}`);
      }
    });

    test(`${aead} ${style}: tampering, wrong AAD, wrong sequence number and truncation give null`, () => {
      const { a, key, iv } = make(aead, style);
      const b = new RecordAead(aead, key, iv, style);
      const sealed = a.seal(5, aad, [Buffer.from('attack at dawn'), Buffer.of(23)]);
      for (let i = 0; i < sealed.length; i++) {
        const bad = Buffer.from(sealed);
        bad[i] ^= 0x01;
        assert.equal(b.open(5, aad, bad), null, `bit flip at byte ${i}`);
      }
      assert.equal(b.open(5, Buffer.from('1703030001', 'hex'), sealed), null);
      if (a.explicitNonceLength === 0) assert.equal(b.open(6, aad, sealed), null);
      for (let len = 0; len < sealed.length; len++) {
        assert.equal(b.open(5, aad, sealed.subarray(0, len)), null, `truncated to ${len}`);
      }
      assert.equal(b.open(5, aad, Buffer.concat([sealed, Buffer.of(0)])), null);
      // a different key never opens it
      assert.equal(make(aead, style).a.open(5, aad, sealed), null);
      assert.deepEqual(b.open(5, aad, sealed), Buffer.from('attack at dawn\x17', 'latin1'));
    });

    test(`${aead} ${style}: random garbage never throws`, () => {
      const { a } = make(aead, style);
      for (let i = 0; i < 200; i++) {
        assert.equal(a.open(i, aad, randomBytes(i % 60)), null);
      }
    });
  }
}

test('constructor refuses wrong key and IV sizes; bad sequence numbers are refused', () => {
  assert.throws(() => new RecordAead('aes-128-gcm', Buffer.alloc(32), Buffer.alloc(12), 'tls13'), RangeError);
  assert.throws(() => new RecordAead('aes-256-gcm', Buffer.alloc(16), Buffer.alloc(12), 'tls13'), RangeError);
  assert.throws(() => new RecordAead('aes-128-gcm', Buffer.alloc(16), Buffer.alloc(12), 'tls12'), RangeError);
  assert.throws(() => new RecordAead('aes-128-gcm', Buffer.alloc(16), Buffer.alloc(4), 'tls13'), RangeError);
  assert.throws(() => new RecordAead('chacha20-poly1305', Buffer.alloc(32), Buffer.alloc(4), 'tls12'), RangeError);
  assert.throws(() => new RecordAead('aes-128-gcm', Buffer.alloc(16), Buffer.alloc(12), 'tls11' as 'tls13'), TypeError);
  const a = new RecordAead('aes-128-gcm', Buffer.alloc(16), Buffer.alloc(12), 'tls13');
  for (const seq of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN]) {
    assert.throws(() => a.seal(seq, aad, [Buffer.from('x')]), RangeError);
  }
});

test('the key is copied: wiping the caller buffer does not change the cipher', () => {
  const key = randomBytes(16);
  const iv = randomBytes(12);
  const a = new RecordAead('aes-128-gcm', key, iv, 'tls13');
  const sealed = a.seal(0, aad, [Buffer.from('data')]);
  const b = new RecordAead('aes-128-gcm', Buffer.from(key), Buffer.from(iv), 'tls13');
  key.fill(0);
  iv.fill(0);
  assert.deepEqual(b.open(0, aad, a.seal(1, aad, [Buffer.from('more')])), null); // seq differs
  assert.deepEqual(b.open(1, aad, a.seal(1, aad, [Buffer.from('more')])), Buffer.from('more'));
  assert.deepEqual(b.open(0, aad, sealed), Buffer.from('data'));
});

test('seal with a prefix returns prefix || sealed in one buffer; sealedLength predicts the size', () => {
  for (const aead of AEADS) {
    for (const style of STYLES) {
      const { a } = make(aead, style);
      const data = randomBytes(1000);
      const len = a.sealedLength(data.length + 1);
      const header = Buffer.from([23, 3, 3, len >> 8, len & 0xff]);
      const whole = a.seal(9, header, [data, Buffer.of(23)], header);
      assert.equal(whole.length, 5 + len);
      assert.deepEqual(whole.subarray(0, 5), header);
      assert.deepEqual(whole.subarray(5), a.seal(9, header, [data, Buffer.of(23)]));
      assert.deepEqual(a.open(9, header, whole.subarray(5)), Buffer.concat([data, Buffer.of(23)]));
    }
  }
});
