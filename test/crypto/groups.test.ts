import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH } from 'node:crypto';
import {
  NamedGroup,
  generateKeyExchange,
  groupName,
  groupPublicKeyLength,
  isKnownGroup,
} from '../../src/tls/crypto/groups.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const ALL = [NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.secp521r1, NamedGroup.x25519, NamedGroup.x448];
const SECRET_LENGTH: Record<NamedGroup, number> = { 23: 32, 24: 48, 25: 66, 29: 32, 30: 56 };

function assertIllegalParameter(fn: () => unknown, what: string): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof TlsAlertError && e.alert === AlertDescription.illegal_parameter,
    `${what} must throw illegal_parameter`,
  );
}

test('names and lookups', () => {
  assert.equal(groupName(29), 'x25519');
  assert.equal(groupName(23), 'secp256r1');
  assert.equal(groupName(0x0100), 'group_0x0100');
  assert.ok(isKnownGroup(30));
  assert.ok(!isKnownGroup(0x0100));
  assert.deepEqual(ALL.map(groupPublicKeyLength), [65, 97, 133, 32, 56]);
  assert.throws(() => generateKeyExchange(0x0100 as NamedGroup), RangeError);
});

for (const g of ALL) {
  test(`${groupName(g)}: both sides agree, with fresh keys each time`, () => {
    const a = generateKeyExchange(g);
    const b = generateKeyExchange(g);
    assert.equal(a.group, g);
    assert.equal(a.publicKey.length, groupPublicKeyLength(g));
    if (g <= NamedGroup.secp521r1) assert.equal(a.publicKey[0], 0x04);
    assert.notDeepEqual(a.publicKey, b.publicKey);
    const s1 = a.computeSharedSecret(b.publicKey);
    const s2 = b.computeSharedSecret(a.publicKey);
    assert.deepEqual(s1, s2);
    assert.equal(s1.length, SECRET_LENGTH[g]);
    assert.notDeepEqual(s1, generateKeyExchange(g).computeSharedSecret(b.publicKey));
  });

  test(`${groupName(g)}: malformed peer shares throw illegal_parameter`, () => {
    const kx = generateKeyExchange(g);
    const good = Buffer.from(generateKeyExchange(g).publicKey);
    assertIllegalParameter(() => kx.computeSharedSecret(Buffer.alloc(0)), 'empty share');
    assertIllegalParameter(() => kx.computeSharedSecret(good.subarray(0, good.length - 1)), 'short share');
    assertIllegalParameter(() => kx.computeSharedSecret(Buffer.concat([good, Buffer.of(0)])), 'long share');
    if (g === NamedGroup.x25519 || g === NamedGroup.x448) {
      assertIllegalParameter(() => kx.computeSharedSecret(Buffer.alloc(good.length)), 'all-zero share');
      const one = Buffer.alloc(good.length);
      one[0] = 1; // u = 1 has small order: the result is all zeros
      assertIllegalParameter(() => kx.computeSharedSecret(one), 'low-order share');
    } else {
      const size = (good.length - 1) / 2;
      const compressed = Buffer.concat([Buffer.of(0x02 | (good[good.length - 1] & 1)), good.subarray(1, 1 + size)]);
      assertIllegalParameter(() => kx.computeSharedSecret(compressed), 'compressed point');
      // the same compressed point is a valid key to OpenSSL: the check must be ours
      const raw = createECDH(g === NamedGroup.secp256r1 ? 'prime256v1' : groupName(g));
      raw.generateKeys();
      assert.equal(raw.computeSecret(compressed).length, SECRET_LENGTH[g]);
      const hybrid = Buffer.from(good);
      hybrid[0] = 0x06 | (good[good.length - 1] & 1);
      assertIllegalParameter(() => kx.computeSharedSecret(hybrid), 'hybrid point');
      const offCurve = Buffer.from(good);
      offCurve[offCurve.length - 1] ^= 0x01;
      assertIllegalParameter(() => kx.computeSharedSecret(offCurve), 'point not on the curve');
      assertIllegalParameter(() => kx.computeSharedSecret(Buffer.concat([Buffer.of(4), Buffer.alloc(2 * size, 0xff)])), 'coordinates >= p');
      assertIllegalParameter(() => kx.computeSharedSecret(Buffer.concat([Buffer.of(4), Buffer.alloc(2 * size)])), '(0, 0)');
    }
    // still usable after rejecting bad shares
    assert.equal(kx.computeSharedSecret(good).length, SECRET_LENGTH[g]);
  });
}

test('RFC 8448 section 3: fixed X25519 private keys give the RFC public keys', () => {
  const client = generateKeyExchange(NamedGroup.x25519, hex('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005'));
  const server = generateKeyExchange(NamedGroup.x25519, hex('b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e'));
  assert.deepEqual(Buffer.from(client.publicKey), hex('99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c'));
  assert.deepEqual(Buffer.from(server.publicKey), hex('c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f'));
  assert.deepEqual(
    client.computeSharedSecret(server.publicKey),
    hex('8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d'),
  );
});

test('RFC 8448 section 5: fixed P-256 private key gives the RFC public key', () => {
  const server = generateKeyExchange(NamedGroup.secp256r1, hex('8c510601f9765bfb8ed693449a48989859b5cfa879cb9f5443c41c5ff10634ed'));
  assert.deepEqual(
    Buffer.from(server.publicKey),
    hex(`04583e054b7a66672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad7d`),
  );
});

test('fixed private keys of the wrong size are refused', () => {
  assert.throws(() => generateKeyExchange(NamedGroup.x25519, Buffer.alloc(31, 1)), RangeError);
  assert.throws(() => generateKeyExchange(NamedGroup.x448, Buffer.alloc(32, 1)), RangeError);
  assert.throws(() => generateKeyExchange(NamedGroup.secp384r1, Buffer.alloc(32, 1)), RangeError);
  assert.throws(() => generateKeyExchange(NamedGroup.secp256r1, Buffer.alloc(32, 0)), RangeError); // zero scalar
  const x448 = generateKeyExchange(NamedGroup.x448, Buffer.alloc(56, 7));
  assert.deepEqual(x448.publicKey, generateKeyExchange(NamedGroup.x448, Buffer.alloc(56, 7)).publicKey);
});

test('error messages carry no key material', () => {
  const priv = hex('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005');
  const kx = generateKeyExchange(NamedGroup.x25519, priv);
  try {
    kx.computeSharedSecret(Buffer.alloc(32));
    assert.fail('expected an error');
  } catch (e) {
    const msg = String((e as Error).message);
    assert.ok(!msg.includes(priv.toString('hex')) && !msg.includes(priv.toString('base64url')));
  }
});
