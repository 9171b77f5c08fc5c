import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NamedGroup, acceptKeyShare, offerKeyShare, type FixedKeyShareInputs } from '../../src/tls/crypto/groups.js';
import {
  ML_KEM_768,
  checkEncapsulationKey768,
  defaultMlKemBackend,
  mlKem768Encapsulate,
  mlKem768KeyPair,
  nativeMlKem768,
  type MlKemBackend,
} from '../../src/tls/crypto/mlkem.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const G = NamedGroup.X25519MLKEM768;
const BACKENDS: MlKemBackend[] = nativeMlKem768 ? ['node:crypto', '@noble/post-quantum'] : ['@noble/post-quantum'];

// RFC 8448 section 3's X25519 keys, to pin where the X25519 half sits in shares and secret.
const CLIENT_X = hex('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005');
const SERVER_X = hex('b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e');
const CLIENT_X_PUB = hex('99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c');
const SERVER_X_PUB = hex('c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f');
const X_SECRET = hex('8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d');
const SEED = Buffer.alloc(64, 0x42);
const M = Buffer.alloc(32, 0x24);

function assertIllegalParameter(fn: () => unknown, what: string, message?: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof TlsAlertError && e.alert === AlertDescription.illegal_parameter && (message === undefined || message.test(e.message)),
    `${what} must throw illegal_parameter${message ? ` matching ${message}` : ''}`,
  );
}

/** `b` cut or zero-extended to `n` bytes. */
const resized = (b: Buffer, n: number): Buffer => (n <= b.length ? b.subarray(0, n) : Buffer.concat([b, Buffer.alloc(n - b.length)]));

/** Sets 12-bit coefficient `index` of t-hat in an encapsulation key. */
function setCoefficient(ek: Buffer, index: number, value: number): Buffer {
  const out = Buffer.from(ek);
  const i = Math.floor(index / 2) * 3;
  if (index % 2 === 0) {
    out[i] = value & 0xff;
    out[i + 1] = (out[i + 1] & 0xf0) | (value >> 8);
  } else {
    out[i + 1] = (out[i + 1] & 0x0f) | ((value & 0x0f) << 4);
    out[i + 2] = value >> 4;
  }
  return out;
}

test(`the default ML-KEM backend is ${defaultMlKemBackend} on Node ${process.version}`, () => {
  const [major, minor] = process.versions.node.split('.').map(Number);
  assert.equal(nativeMlKem768, major > 24 || (major === 24 && minor >= 7), 'node:crypto ML-KEM from Node 24.7 on');
  assert.equal(defaultMlKemBackend, nativeMlKem768 ? 'node:crypto' : '@noble/post-quantum');
  if (!nativeMlKem768) assert.throws(() => mlKem768KeyPair(undefined, 'node:crypto'), /no ML-KEM-768 on this Node/);
});

for (const backend of BACKENDS) {
  test(`${backend}: the hybrid's layout: ML-KEM first, X25519 second, in both shares and the secret`, () => {
    const fixed: FixedKeyShareInputs = { mlkemSeed: SEED, privateKey: CLIENT_X, mlkemBackend: backend };
    const offer = offerKeyShare(G, fixed);
    assert.equal(offer.publicKey.length, 1216);
    const kem = mlKem768KeyPair(SEED, backend);
    assert.deepEqual(offer.publicKey.subarray(0, 1184), kem.encapsulationKey);
    assert.deepEqual(offer.publicKey.subarray(1184), CLIENT_X_PUB);
    const accepted = acceptKeyShare(G, offer.publicKey, { privateKey: SERVER_X, mlkemBackend: backend });
    assert.equal(accepted.publicKey.length, 1120);
    assert.deepEqual(accepted.publicKey.subarray(1088), SERVER_X_PUB);
    assert.deepEqual(accepted.sharedSecret.subarray(0, 32), kem.decapsulate(accepted.publicKey.subarray(0, 1088)));
    assert.deepEqual(accepted.sharedSecret.subarray(32), X_SECRET);
    assert.deepEqual(offer.complete(accepted.publicKey), accepted.sharedSecret);
  });

  test(`${backend}: bad hybrid shares get illegal_parameter (lengths, the FIPS 203 7.2 modulus check, a low-order X25519 half)`, () => {
    const offer = offerKeyShare(G, { mlkemBackend: backend });
    const ek = offer.publicKey.subarray(0, 1184);
    const x = offer.publicKey.subarray(1184);
    for (const n of [0, 1184, 1215, 1217]) {
      assertIllegalParameter(() => acceptKeyShare(G, resized(offer.publicKey, n), { mlkemBackend: backend }), `client share of ${n} bytes`, /client share must be 1216 bytes/);
    }
    for (const [index, value] of [
      [0, 3329],
      [1, 3329],
      [767, 4095],
      [384, 3500],
    ]) {
      const bad = Buffer.concat([setCoefficient(ek, index, value), x]);
      assertIllegalParameter(() => acceptKeyShare(G, bad, { mlkemBackend: backend }), `coefficient ${index} = ${value}`, new RegExp(`coefficient ${index} is >= 3329`));
      assertIllegalParameter(() => mlKem768Encapsulate(bad.subarray(0, 1184), undefined, backend), `encapsulate with coefficient ${index} = ${value}`);
    }
    // q - 1 is in range, and rho (the last 32 bytes) is any seed: both well-formed keys.
    const edge = Buffer.from(setCoefficient(ek, 767, 3328));
    edge.fill(0xff, 1152);
    assert.equal(acceptKeyShare(G, Buffer.concat([edge, x]), { mlkemBackend: backend }).sharedSecret.length, 64);
    assertIllegalParameter(() => acceptKeyShare(G, Buffer.concat([ek, Buffer.alloc(32)]), { mlkemBackend: backend }), 'an all-zero X25519 half', /x25519/);
    const reply = acceptKeyShare(G, offer.publicKey, { mlkemBackend: backend }).publicKey;
    for (const n of [0, 1088, 1119, 1121]) {
      assertIllegalParameter(() => offer.complete(resized(reply, n)), `server share of ${n} bytes`, /server share must be 1120 bytes/);
    }
    assertIllegalParameter(() => offer.complete(Buffer.concat([reply.subarray(0, 1088), Buffer.alloc(32)])), 'a server all-zero X25519 half', /x25519/);
    assert.equal(offer.complete(reply).length, 64, 'the offer still completes after refusals');
  });
}

test('checkEncapsulationKey768 takes every freshly generated key and names the first bad coefficient', () => {
  for (let i = 0; i < 8; i++) checkEncapsulationKey768(mlKem768KeyPair().encapsulationKey);
  const ek = mlKem768KeyPair().encapsulationKey;
  assertIllegalParameter(() => checkEncapsulationKey768(ek.subarray(1)), 'a short key', /must be 1184 bytes, got 1183/);
  assertIllegalParameter(() => checkEncapsulationKey768(setCoefficient(setCoefficient(ek, 9, 4000), 700, 4000)), 'two bad coefficients', /coefficient 9 is/);
});

test(
  nativeMlKem768
    ? 'node:crypto and @noble/post-quantum interoperate: same key from a seed, each decapsulates the other\'s ciphertext'
    : 'fixed inputs give byte-identical hybrid shares and secret (node:crypto has no ML-KEM on this Node)',
  () => {
    const js = mlKem768KeyPair(SEED, '@noble/post-quantum');
    const fixedRun = () => {
      const o = offerKeyShare(G, { mlkemSeed: SEED, privateKey: CLIENT_X });
      const a = acceptKeyShare(G, o.publicKey, { privateKey: SERVER_X, mlkemRandomness: M });
      return [o.publicKey, a.publicKey, a.sharedSecret];
    };
    assert.deepEqual(fixedRun(), fixedRun());
    if (!nativeMlKem768) return;
    const native = mlKem768KeyPair(SEED, 'node:crypto');
    assert.deepEqual(native.encapsulationKey, js.encapsulationKey);
    const toJs = mlKem768Encapsulate(js.encapsulationKey, undefined, 'node:crypto');
    assert.deepEqual(js.decapsulate(toJs.ciphertext), toJs.sharedSecret);
    const toNative = mlKem768Encapsulate(native.encapsulationKey, undefined, '@noble/post-quantum');
    assert.deepEqual(native.decapsulate(toNative.ciphertext), toNative.sharedSecret);
    // implicit rejection agrees too: a corrupted ciphertext gives the same (unrelated) secret on both
    const corrupt = Buffer.from(toNative.ciphertext);
    corrupt[5] ^= 1;
    assert.deepEqual(native.decapsulate(corrupt), js.decapsulate(corrupt));
    assert.notDeepEqual(native.decapsulate(corrupt), toNative.sharedSecret);
    // and the hybrid across backends, both directions
    for (const [client, server] of [
      ['node:crypto', '@noble/post-quantum'],
      ['@noble/post-quantum', 'node:crypto'],
    ] as const) {
      const o = offerKeyShare(G, { mlkemBackend: client });
      const a = acceptKeyShare(G, o.publicKey, { mlkemBackend: server });
      assert.deepEqual(o.complete(a.publicKey), a.sharedSecret, `${client} client, ${server} server`);
    }
    assert.equal(ML_KEM_768.ciphertextLength, toJs.ciphertext.length);
  },
);
