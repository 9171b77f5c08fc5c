import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHash, generateKeyPairSync, privateEncrypt, randomBytes, sign, verify } from 'node:crypto';
import { PREMASTER_LENGTH, selectPremaster } from '../../src/keys/pkcs11Premaster.js';
import { digestInfo, ecPublicKeyFromAttributes, ecdsaRawToDer, rsaPublicKeyFromAttributes } from '../../src/keys/pkcs11PublicKey.js';

test('selectPremaster keeps a good plaintext and replaces every kind of bad one with the random value', () => {
  const random = randomBytes(48);
  const good = Buffer.concat([Buffer.from([0x03, 0x03]), randomBytes(46)]);
  assert.deepEqual(Buffer.from(selectPremaster(good, 0x0303, random)), good);

  const cases: [string, Uint8Array | null][] = [
    ['decryption failed', null],
    ['47 bytes', good.subarray(0, 47)],
    ['49 bytes', Buffer.concat([good, Buffer.from([0])])],
    ['empty', new Uint8Array(0)],
    ['256 bytes', randomBytes(256)],
    ['wrong major version', Buffer.concat([Buffer.from([0x02, 0x03]), good.subarray(2)])],
    ['wrong minor version', Buffer.concat([Buffer.from([0x03, 0x01]), good.subarray(2)])],
  ];
  for (const [name, plain] of cases) {
    const out = selectPremaster(plain, 0x0303, random);
    assert.equal(out.length, PREMASTER_LENGTH, name);
    assert.deepEqual(Buffer.from(out), random, name);
    assert.notEqual(out.buffer, random.buffer, `${name}: a copy, not the caller's buffer`);
  }
  // The version compared is the one the caller passes (ClientHello.client_version).
  const v12 = Buffer.concat([Buffer.from([0x03, 0x02]), randomBytes(46)]);
  assert.deepEqual(Buffer.from(selectPremaster(v12, 0x0302, random)), v12);
  assert.throws(() => selectPremaster(good, 0x0303, randomBytes(47)), /48 random bytes/);
});

test('ecdsaRawToDer turns r||s into DER that verifies (P-256, P-384, P-521, many signatures)', () => {
  for (const [curve, coord] of [
    ['P-256', 32],
    ['P-384', 48],
    ['P-521', 66],
  ] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    // Enough signatures to meet r or s with a high bit set and with leading zero bytes.
    for (let i = 0; i < 64; i++) {
      const msg = randomBytes(40);
      const raw = sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = ecdsaRawToDer(raw, coord);
      assert.ok(verify('sha256', msg, { key: publicKey, dsaEncoding: 'der' }, der), `${curve} #${i}`);
    }
    assert.throws(() => ecdsaRawToDer(randomBytes(2 * coord - 1), coord), /expected/);
  }
  // Leading zeros are stripped and a high bit gets a zero prefix.
  const r = Buffer.alloc(32);
  r[31] = 1;
  const s = Buffer.alloc(32, 0xff);
  const der = Buffer.from(ecdsaRawToDer(Buffer.concat([r, s]), 32));
  assert.equal(der.toString('hex'), '3026' + '020101' + '022100' + 'ff'.repeat(32));
});

test('public keys from token attributes match the real keys (wrapped and raw points)', () => {
  const ecCases = [
    ['P-256', '06082a8648ce3d030107'],
    ['P-384', '06052b81040022'],
    ['P-521', '06052b81040023'],
  ] as const;
  for (const [curve, params] of ecCases) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const jwk = publicKey.export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    const wrapped = Buffer.concat([point.length < 128 ? Buffer.from([4, point.length]) : Buffer.from([4, 0x81, point.length]), point]);
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    assert.deepEqual(ecPublicKeyFromAttributes(Buffer.from(params, 'hex'), wrapped).export({ type: 'spki', format: 'der' }), spki, curve);
    assert.deepEqual(ecPublicKeyFromAttributes(Buffer.from(params, 'hex'), point).export({ type: 'spki', format: 'der' }), spki, curve);
    const compressed = Buffer.from(point);
    compressed[0] = 2;
    assert.throws(() => ecPublicKeyFromAttributes(Buffer.from(params, 'hex'), compressed), /not an uncompressed point/);
    assert.throws(() => ecPublicKeyFromAttributes(Buffer.from(params, 'hex'), point.subarray(1)), /not a P-/);
  }
  const ed = generateKeyPairSync('ed25519').publicKey;
  const edRaw = Buffer.from(ed.export({ format: 'jwk' }).x!, 'base64url');
  for (const params of ['06032b6570', '130c656477617264733235353139']) {
    const k = ecPublicKeyFromAttributes(Buffer.from(params, 'hex'), Buffer.concat([Buffer.from([4, 32]), edRaw]));
    assert.deepEqual(k.export({ type: 'spki', format: 'der' }), ed.export({ type: 'spki', format: 'der' }));
  }
  assert.throws(() => ecPublicKeyFromAttributes(Buffer.from('06052b8104000a', 'hex'), Buffer.alloc(65, 4)), /curve keyward does not support/);

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  const j = rsa.export({ format: 'jwk' });
  const n = Buffer.concat([Buffer.from([0]), Buffer.from(j.n!, 'base64url')]);
  assert.deepEqual(rsaPublicKeyFromAttributes(n, Buffer.from(j.e!, 'base64url')).export({ type: 'spki', format: 'der' }), rsa.export({ type: 'spki', format: 'der' }));
  assert.throws(() => rsaPublicKeyFromAttributes(Buffer.alloc(8, 1), Buffer.from([1, 0, 1])), /CKA_MODULUS/);
});

test('digestInfo + raw PKCS#1 v1.5 equals a hash-and-sign PKCS#1 v1.5 signature', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const msg = randomBytes(100);
  for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
    const raw = privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo(hash, createHash(hash).update(msg).digest()));
    assert.deepEqual(raw, sign(hash, msg, { key: privateKey, padding: constants.RSA_PKCS1_PADDING }), hash);
  }
});
