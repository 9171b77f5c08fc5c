import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH } from 'node:crypto';
import {
  GROUPS,
  NamedGroup,
  acceptKeyShare,
  ffdheParameters,
  generateKeyExchange,
  groupAllowedIn,
  groupName,
  groupPublicKeyLength,
  groupSpec,
  isKnownGroup,
  offerKeyShare,
  recommendedGroupPreference,
  type KeyExchangeVersion,
} from '../../src/tls/crypto/groups.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const EC = [NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.secp521r1] as const;
const OKP = [NamedGroup.x25519, NamedGroup.x448] as const;
const FFDHE = [NamedGroup.ffdhe2048, NamedGroup.ffdhe3072, NamedGroup.ffdhe4096] as const;
const ALL = [...EC, ...OKP, ...FFDHE, NamedGroup.X25519MLKEM768];

function assertIllegalParameter(fn: () => unknown, what: string): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof TlsAlertError && e.alert === AlertDescription.illegal_parameter,
    `${what} must throw illegal_parameter`,
  );
}

test('the table: names, IANA code points, share and secret lengths, versions', () => {
  const rows = GROUPS.map((s) => [s.group, s.name, s.clientShareLength, s.serverShareLength, s.sharedSecretLength, s.tls13, s.tls12 ?? '-']);
  assert.deepEqual(rows, [
    [0x0017, 'secp256r1', 65, 65, 32, true, 'ECDHE'],
    [0x0018, 'secp384r1', 97, 97, 48, true, 'ECDHE'],
    [0x0019, 'secp521r1', 133, 133, 66, true, 'ECDHE'],
    [0x001d, 'x25519', 32, 32, 32, true, 'ECDHE'],
    [0x001e, 'x448', 56, 56, 56, true, 'ECDHE'],
    [0x0100, 'ffdhe2048', 256, 256, 256, true, 'DHE'],
    [0x0101, 'ffdhe3072', 384, 384, 384, true, 'DHE'],
    [0x0102, 'ffdhe4096', 512, 512, 512, true, 'DHE'],
    [0x11ec, 'X25519MLKEM768', 1216, 1120, 64, true, '-'],
  ]);
  assert.equal(groupName(0x11ec), 'X25519MLKEM768');
  assert.equal(groupName(0x0103), 'group_0x0103');
  assert.ok(isKnownGroup(0x0100) && isKnownGroup(0x11ec) && !isKnownGroup(0x11eb));
  assert.deepEqual(ALL.map(groupPublicKeyLength), [65, 97, 133, 32, 56, 256, 384, 512, 1216]);
  assert.ok(groupAllowedIn(NamedGroup.ffdhe2048, 'TLSv1.2') && !groupAllowedIn(NamedGroup.X25519MLKEM768, 'TLSv1.2'));
  assert.ok(groupSpec(NamedGroup.X25519MLKEM768).postQuantum && !groupSpec(NamedGroup.x25519).postQuantum);
  assert.throws(() => groupSpec(0x0103), RangeError);
  assert.throws(() => offerKeyShare(0x0103 as NamedGroup), RangeError);
  assert.throws(() => offerKeyShare(NamedGroup.X25519MLKEM768, undefined, 'TLSv1.2'), /cannot be used in TLSv1\.2/);
  assert.throws(() => generateKeyExchange(NamedGroup.X25519MLKEM768), /is a KEM/);
  const p = ffdheParameters(NamedGroup.ffdhe3072);
  assert.equal(p.p.length, 384);
  assert.deepEqual(p.g, Buffer.of(2));
  assert.throws(() => ffdheParameters(NamedGroup.x25519), RangeError);
});

test('recommended preference: every group once, the hybrid first where node:crypto has ML-KEM, FFDHE last', () => {
  for (const native of [true, false]) {
    const pref = recommendedGroupPreference(native);
    assert.deepEqual([...pref.groups].sort((a, b) => a - b), [...ALL].sort((a, b) => a - b));
    const first = native ? [NamedGroup.X25519MLKEM768, NamedGroup.x25519] : [NamedGroup.x25519, NamedGroup.X25519MLKEM768];
    assert.deepEqual(pref.groups.slice(0, 2), first);
    assert.deepEqual(pref.groups.slice(-3), FFDHE);
    assert.ok(pref.reason.length > 40, 'the preference carries its reason');
  }
});

const VERSIONS: KeyExchangeVersion[] = ['TLSv1.3', 'TLSv1.2'];
for (const g of ALL) {
  for (const version of VERSIONS.filter((v) => groupAllowedIn(g, v))) {
    test(`${groupName(g)} ${version}: offer, accept and complete agree`, () => {
      const spec = groupSpec(g);
      const offer = offerKeyShare(g, undefined, version);
      assert.equal(offer.group, g);
      assert.equal(offer.publicKey.length, spec.clientShareLength);
      const accepted = acceptKeyShare(g, offer.publicKey, undefined, version);
      assert.equal(accepted.publicKey.length, spec.serverShareLength);
      const secret = offer.complete(accepted.publicKey);
      assert.deepEqual(secret, accepted.sharedSecret);
      if (version === 'TLSv1.3' || spec.kind !== 'ffdhe') assert.equal(secret.length, spec.sharedSecretLength);
      else assert.ok(secret.length <= spec.sharedSecretLength && secret[0] !== 0, 'TLS 1.2 premaster has no leading zero');
      // fresh keys each time
      const again = offerKeyShare(g, undefined, version);
      assert.notDeepEqual(again.publicKey, offer.publicKey);
      assert.notDeepEqual(acceptKeyShare(g, again.publicKey, undefined, version).sharedSecret, secret);
    });
  }
}

for (const g of [...EC, ...OKP, ...FFDHE]) {
  test(`${groupName(g)}: the legacy KeyExchange still agrees with the new API`, () => {
    const a = generateKeyExchange(g);
    const b = offerKeyShare(g);
    assert.equal(a.group, g);
    assert.deepEqual(a.computeSharedSecret(b.publicKey), b.complete(a.publicKey));
  });
}

for (const g of EC) {
  test(`${groupName(g)}: bad shares (infinity, off the curve, truncated, padded, compressed, hybrid) get illegal_parameter`, () => {
    const size = groupSpec(g).sharedSecretLength;
    const offer = offerKeyShare(g);
    const good = Buffer.from(offerKeyShare(g).publicKey);
    const compressed = Buffer.concat([Buffer.of(0x02 | (good[good.length - 1] & 1)), good.subarray(1, 1 + size)]);
    const hybrid = Buffer.from(good);
    hybrid[0] = 0x06 | (good[good.length - 1] & 1);
    const offCurve = Buffer.from(good);
    offCurve[offCurve.length - 1] ^= 0x01;
    const bad: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['the point at infinity (0x00)', Buffer.of(0)],
      ['the point at infinity as zero coordinates', Buffer.concat([Buffer.of(4), Buffer.alloc(2 * size)])],
      ['truncated', good.subarray(0, good.length - 1)],
      ['padded', Buffer.concat([good, Buffer.of(0)])],
      ['compressed', compressed],
      ['hybrid encoding', hybrid],
      ['off the curve', offCurve],
      ['coordinates >= p', Buffer.concat([Buffer.of(4), Buffer.alloc(2 * size, 0xff)])],
    ];
    for (const [what, share] of bad) {
      assertIllegalParameter(() => offer.complete(share), `${groupName(g)} ${what} (client)`);
      assertIllegalParameter(() => acceptKeyShare(g, share), `${groupName(g)} ${what} (server)`);
    }
    // the compressed point is a valid key to OpenSSL: refusing it is keyward's own check (RFC 8446 4.2.8.2)
    const raw = createECDH(g === NamedGroup.secp256r1 ? 'prime256v1' : groupName(g));
    raw.generateKeys();
    assert.equal(raw.computeSecret(compressed).length, size);
    // still usable after refusing bad shares
    assert.equal(offer.complete(good).length, size);
  });
}

for (const g of OKP) {
  test(`${groupName(g)}: wrong-length and low-order shares get illegal_parameter`, () => {
    const n = groupSpec(g).clientShareLength;
    const offer = offerKeyShare(g);
    const good = Buffer.from(offerKeyShare(g).publicKey);
    const one = Buffer.alloc(n);
    one[0] = 1; // u = 1 has small order: the result is all zeros
    for (const [what, share] of [
      ['empty', Buffer.alloc(0)],
      ['truncated', good.subarray(1)],
      ['padded', Buffer.concat([good, Buffer.of(0)])],
      ['all zeros', Buffer.alloc(n)],
      ['low order', one],
    ] as const) {
      assertIllegalParameter(() => offer.complete(share), `${groupName(g)} ${what} (client)`);
      assertIllegalParameter(() => acceptKeyShare(g, share), `${groupName(g)} ${what} (server)`);
    }
    assert.equal(offer.complete(good).length, n);
  });
}

test('RFC 8448 section 3: fixed X25519 keys give the RFC key shares and shared secret, both roles', () => {
  const clientPriv = hex('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005');
  const serverPriv = hex('b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e');
  const client = offerKeyShare(NamedGroup.x25519, { privateKey: clientPriv });
  assert.deepEqual(client.publicKey, hex('99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c'));
  const server = acceptKeyShare(NamedGroup.x25519, client.publicKey, { privateKey: serverPriv });
  assert.deepEqual(server.publicKey, hex('c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f'));
  const secret = hex('8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d');
  assert.deepEqual(server.sharedSecret, secret);
  assert.deepEqual(client.complete(server.publicKey), secret);
  assert.deepEqual(generateKeyExchange(NamedGroup.x25519, clientPriv).computeSharedSecret(server.publicKey), secret);
});

test('RFC 8448 section 5: fixed P-256 private key gives the RFC public key', () => {
  const server = offerKeyShare(NamedGroup.secp256r1, { privateKey: hex('8c510601f9765bfb8ed693449a48989859b5cfa879cb9f5443c41c5ff10634ed') });
  assert.deepEqual(
    server.publicKey,
    hex(`04583e054b7a66672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad7d`),
  );
});

test('fixed private keys of the wrong size or value are refused', () => {
  assert.throws(() => offerKeyShare(NamedGroup.x25519, { privateKey: Buffer.alloc(31, 1) }), RangeError);
  assert.throws(() => offerKeyShare(NamedGroup.x448, { privateKey: Buffer.alloc(32, 1) }), RangeError);
  assert.throws(() => offerKeyShare(NamedGroup.secp384r1, { privateKey: Buffer.alloc(32, 1) }), RangeError);
  assert.throws(() => offerKeyShare(NamedGroup.secp256r1, { privateKey: Buffer.alloc(32, 0) }), RangeError); // zero scalar
  assert.throws(() => offerKeyShare(NamedGroup.ffdhe2048, { privateKey: Buffer.of(1) }), RangeError);
  assert.throws(() => offerKeyShare(NamedGroup.X25519MLKEM768, { mlkemSeed: Buffer.alloc(32) }), RangeError);
  const x448 = offerKeyShare(NamedGroup.x448, { privateKey: Buffer.alloc(56, 7) });
  assert.deepEqual(x448.publicKey, generateKeyExchange(NamedGroup.x448, Buffer.alloc(56, 7)).publicKey);
});

test('error messages carry no key material', () => {
  const priv = hex('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005');
  const offer = offerKeyShare(NamedGroup.x25519, { privateKey: priv });
  try {
    offer.complete(Buffer.alloc(32));
    assert.fail('expected an error');
  } catch (e) {
    const msg = String((e as Error).message);
    assert.match(msg, /x25519/);
    assert.ok(!msg.includes(priv.toString('hex')) && !msg.includes(priv.toString('base64url')));
  }
});
