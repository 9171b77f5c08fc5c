import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hkdfSync, createHash } from 'node:crypto';
import { hkdfExtract, hkdfExpand, hkdfExpandLabel, hkdfLabel, deriveSecret } from '../../src/tls/crypto/hkdf.js';
import { digest, emptyHash, hashLength, type HashName } from '../../src/tls/crypto/hash.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('hashLength, digest and the cached empty hash', () => {
  assert.equal(hashLength('sha256'), 32);
  assert.equal(hashLength('sha384'), 48);
  assert.equal(hashLength('sha512'), 64);
  assert.throws(() => hashLength('md5' as HashName), TypeError);
  for (const h of ['sha256', 'sha384', 'sha512'] as const) {
    const data = Buffer.from('keyward');
    assert.deepEqual(digest(h, data), createHash(h).update(data).digest());
    assert.deepEqual(emptyHash(h), createHash(h).digest());
    assert.equal(emptyHash(h), emptyHash(h)); // cached
  }
  assert.deepEqual(emptyHash('sha256'), hex('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'));
});

test('RFC 5869 test case 1 (SHA-256)', () => {
  const ikm = Buffer.alloc(22, 0x0b);
  const salt = hex('000102030405060708090a0b0c');
  const info = hex('f0f1f2f3f4f5f6f7f8f9');
  const prk = hkdfExtract('sha256', salt, ikm);
  assert.deepEqual(prk, hex('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5'));
  const okm = hkdfExpand('sha256', prk, info, 42);
  assert.deepEqual(okm, hex('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865'));
});

test('RFC 5869 test case 3 (zero-length salt and info)', () => {
  const ikm = Buffer.alloc(22, 0x0b);
  const prk = hkdfExtract('sha256', Buffer.alloc(0), ikm);
  assert.deepEqual(prk, hex('19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04'));
  assert.deepEqual(
    hkdfExpand('sha256', prk, Buffer.alloc(0), 42),
    hex('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8'),
  );
});

test('HKDF agrees with node:crypto hkdfSync for every length and hash', () => {
  for (const h of ['sha256', 'sha384', 'sha512'] as const) {
    const ikm = Buffer.from('input keying material');
    const salt = Buffer.from('salt');
    const info = Buffer.from('info');
    const prk = hkdfExtract(h, salt, ikm);
    for (const len of [0, 1, 12, 16, hashLength(h) - 1, hashLength(h), hashLength(h) + 1, 100, 255 * hashLength(h)]) {
      const ours = hkdfExpand(h, prk, info, len);
      assert.equal(ours.length, len);
      if (len > 0) assert.deepEqual(ours, Buffer.from(hkdfSync(h, ikm, salt, info, len)), `${h} length ${len}`);
    }
    assert.throws(() => hkdfExpand(h, prk, info, 255 * hashLength(h) + 1), RangeError);
    assert.throws(() => hkdfExpand(h, prk, info, -1), RangeError);
  }
});

test('HkdfLabel encoding matches RFC 8448 info bytes', () => {
  // {server} derive write traffic keys for handshake data: key info / iv info
  assert.deepEqual(hkdfLabel('key', Buffer.alloc(0), 16), hex('00 10 09 74 6c 73 31 33 20 6b 65 79 00'));
  assert.deepEqual(hkdfLabel('iv', Buffer.alloc(0), 12), hex('00 0c 08 74 6c 73 31 33 20 69 76 00'));
  // derive secret for handshake "tls13 derived"
  assert.deepEqual(
    hkdfLabel('derived', emptyHash('sha256'), 32),
    hex(`00 20 0d 74 6c 73 31 33 20 64 65 72 69 76 65 64 20 e3 b0 c4 42 98 fc 1c 14 9a fb f4 c8 99 6f b9 24 27 ae 41 e4
      64 9b 93 4c a4 95 99 1b 78 52 b8 55`),
  );
  assert.deepEqual(hkdfLabel('finished', Buffer.alloc(0), 32, true), hex('00 20 0e 74 6c 73 31 33 20 66 69 6e 69 73 68 65 64 00 01'));
});

test('hkdfExpandLabel: RFC 8448 handshake key and IV, and the general path for long outputs', () => {
  const sHs = hex('b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38');
  assert.deepEqual(hkdfExpandLabel('sha256', sHs, 'key', Buffer.alloc(0), 16), hex('3fce516009c21727d0f2e4e86ee403bc'));
  assert.deepEqual(hkdfExpandLabel('sha256', sHs, 'iv', Buffer.alloc(0), 12), hex('5d313eb2671276ee13000b30'));
  // longer than one block goes through HKDF-Expand with the same HkdfLabel
  const long = hkdfExpandLabel('sha256', sHs, 'exporter', Buffer.from('c'), 80);
  assert.equal(long.length, 80);
  assert.deepEqual(long, hkdfExpand('sha256', sHs, hkdfLabel('exporter', Buffer.from('c'), 80), 80));
});

test('deriveSecret is HKDF-Expand-Label with Hash.length output', () => {
  const secret = Buffer.alloc(48, 3);
  const th = digest('sha384', Buffer.from('transcript'));
  assert.deepEqual(deriveSecret('sha384', secret, 'c hs traffic', th), hkdfExpandLabel('sha384', secret, 'c hs traffic', th, 48));
});

test('bad label, context and length are refused', () => {
  const s = Buffer.alloc(32);
  assert.throws(() => hkdfExpandLabel('sha256', s, 'x'.repeat(250), Buffer.alloc(0), 32), RangeError);
  assert.throws(() => hkdfExpandLabel('sha256', s, 'key', Buffer.alloc(256), 32), RangeError);
  assert.throws(() => hkdfExpandLabel('sha256', s, 'key', Buffer.alloc(0), 70_000), RangeError);
});
