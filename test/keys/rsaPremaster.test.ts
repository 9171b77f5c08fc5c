import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, privateEncrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { PREMASTER_LENGTH, decryptPremasterImplicit } from '../../src/keys/rsaPremaster.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const K = 256;
const TLS12 = 0x0303;

function premaster(version = TLS12): Buffer {
  const pm = randomBytes(PREMASTER_LENGTH);
  pm.writeUInt16BE(version, 0);
  return pm;
}

/** Raw RSA public operation on a hand-built encoded message (for malformed paddings). */
function rawEncrypt(pub: KeyObject, em: Buffer): Buffer {
  return publicEncrypt({ key: pub, padding: constants.RSA_NO_PADDING }, em);
}

/** EM = 00 02 PS 00 M, with PS of non-zero random bytes. */
function encodeType2(message: Buffer, k = K): Buffer {
  const em = Buffer.alloc(k);
  em[1] = 0x02;
  const psLen = k - 3 - message.length;
  for (let i = 0; i < psLen; i++) {
    let b = 0;
    while (b === 0) b = randomBytes(1)[0];
    em[2 + i] = b;
  }
  message.copy(em, k - message.length);
  return em;
}

/** Asserts the result is a fallback: 48 bytes, not the real premaster, fresh each call. */
function assertImplicitRejection(ct: Uint8Array, realPremaster?: Buffer, version = TLS12): void {
  const a = decryptPremasterImplicit(privateKey, ct, version);
  const b = decryptPremasterImplicit(privateKey, ct, version);
  assert.equal(a.length, PREMASTER_LENGTH);
  assert.equal(b.length, PREMASTER_LENGTH);
  assert.notDeepEqual(Buffer.from(a), Buffer.from(b), 'fallback must be random each time');
  if (realPremaster) assert.notDeepEqual(Buffer.from(a), realPremaster);
}

describe('decryptPremasterImplicit (RFC 5246 7.4.7.1)', () => {
  test('a correct PKCS#1 v1.5 ciphertext yields the premaster', () => {
    for (let i = 0; i < 5; i++) {
      const pm = premaster();
      const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, pm);
      assert.deepEqual(Buffer.from(decryptPremasterImplicit(privateKey, ct, TLS12)), pm);
    }
  });

  test('a hand-built type-2 block is accepted too (the checker, not OpenSSL, decides)', () => {
    const pm = premaster();
    assert.deepEqual(Buffer.from(decryptPremasterImplicit(privateKey, rawEncrypt(publicKey, encodeType2(pm)), TLS12)), pm);
  });

  test('a ciphertext missing its leading zero byte is restored', () => {
    let ct: Buffer;
    let pm: Buffer;
    do {
      pm = premaster();
      ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, pm);
    } while (ct[0] !== 0);
    assert.deepEqual(Buffer.from(decryptPremasterImplicit(privateKey, ct.subarray(1), TLS12)), pm);
  });

  test('wrong client version → random', () => {
    const pm = premaster(0x0302);
    assertImplicitRejection(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, pm), pm);
  });

  test('message of 47 or 49 bytes → random', () => {
    for (const len of [47, 49]) {
      const m = randomBytes(len);
      m.writeUInt16BE(TLS12, 0);
      assertImplicitRejection(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, m));
    }
  });

  test('wrong block type, zero in PS, non-zero first byte, missing separator → random', () => {
    const pm = premaster();
    const bt1 = encodeType2(pm);
    bt1[1] = 0x01;
    const zeroInPs = encodeType2(pm);
    zeroInPs[50] = 0;
    const leadingNonZero = encodeType2(pm);
    leadingNonZero[0] = 0x01;
    const noSep = encodeType2(pm);
    noSep[K - PREMASTER_LENGTH - 1] = 0x55;
    // (A leading 0x01 byte keeps the block below n, which has its top bit set.)
    for (const em of [bt1, zeroInPs, leadingNonZero, noSep]) assertImplicitRejection(rawEncrypt(publicKey, em), pm);
    // PKCS#1 v1.5 signature padding (type 1) made with the private key.
    assertImplicitRejection(privateEncrypt(privateKey, pm), pm);
  });

  test('ciphertext longer than the modulus, ≥ n, all zero, empty, or truncated → random', () => {
    const pm = premaster();
    const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, pm);
    assertImplicitRejection(Buffer.concat([Buffer.of(0), ct]), pm);
    assertImplicitRejection(Buffer.alloc(K, 0xff), pm);
    assertImplicitRejection(Buffer.alloc(K), pm);
    assertImplicitRejection(new Uint8Array(0), pm);
    assertImplicitRejection(ct.subarray(0, K - 1), pm);
    assertImplicitRejection(randomBytes(K >> 1), pm);
  });

  test('refuses a non-RSA key (a programming error, not bad input)', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    assert.throws(() => decryptPremasterImplicit(ec, Buffer.alloc(K), TLS12), TypeError);
    assert.throws(() => decryptPremasterImplicit(publicKey, Buffer.alloc(K), TLS12), TypeError);
  });
});
