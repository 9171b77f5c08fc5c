import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { NamedGroup, acceptKeyShare, ffdheParameters, groupName, offerKeyShare, type KeyExchangeVersion } from '../../src/tls/crypto/groups.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';

const FFDHE = [NamedGroup.ffdhe2048, NamedGroup.ffdhe3072, NamedGroup.ffdhe4096] as const;

const big = (b: Uint8Array): bigint => BigInt('0x' + Buffer.from(b).toString('hex'));
const bytes = (n: bigint, len: number): Buffer => Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex');

/** Square-and-multiply, an independent check of what node:crypto computes. */
function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  let b = base % m;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
  }
  return r;
}

function assertIllegalParameter(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => e instanceof TlsAlertError && e.alert === AlertDescription.illegal_parameter, `${what} must throw illegal_parameter`);
}

test('the RFC 7919 primes (computed from e) are the ffdhe groups OpenSSL has built in', () => {
  for (const g of FFDHE) {
    const { p, g: gen, length } = ffdheParameters(g);
    const pem = execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', `group:${groupName(g)}`], { encoding: 'latin1' });
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    assert.ok(der.includes(p), `${groupName(g)}: p is OpenSSL's`);
    assert.equal(length, p.length);
    assert.deepEqual(gen, Buffer.of(2));
    // RFC 7919 Appendix A: every p starts FFFFFFFF FFFFFFFF ADF85458 A2BB4A9A and ends with 64 one bits.
    assert.equal(p.subarray(0, 16).toString('hex'), 'ffffffffffffffffadf85458a2bb4a9a');
    assert.equal(p.subarray(-8).toString('hex'), 'ffffffffffffffff');
  }
});

test('ffdhe2048 with a fixed exponent: Y = g^x mod p and Z = Y_peer^x mod p, both roles', () => {
  const { p, length } = ffdheParameters(NamedGroup.ffdhe2048);
  const P = big(p);
  const x = Buffer.alloc(32, 0x5a);
  const y = Buffer.alloc(32, 0x3c);
  const offer = offerKeyShare(NamedGroup.ffdhe2048, { privateKey: x });
  assert.deepEqual(offer.publicKey, bytes(modPow(2n, big(x), P), length));
  const accepted = acceptKeyShare(NamedGroup.ffdhe2048, offer.publicKey, { privateKey: y });
  assert.deepEqual(accepted.publicKey, bytes(modPow(2n, big(y), P), length));
  const z = bytes(modPow(2n, big(x) * big(y), P), length);
  assert.deepEqual(accepted.sharedSecret, z);
  assert.deepEqual(offer.complete(accepted.publicKey), z);
});

test('a shared secret with a leading zero byte: left-padded in TLS 1.3, stripped for the TLS 1.2 premaster', () => {
  const { p, length } = ffdheParameters(NamedGroup.ffdhe2048);
  const P = big(p);
  const x = Buffer.alloc(32, 0x11);
  // Find a peer value Y = 2^j (in the order-q subgroup, as honest values are: Node 20's OpenSSL
  // refuses others, Node 24's does not) whose Z = Y^x mod p starts with a zero byte (1 in 256).
  let k = 2n;
  while (modPow(k, big(x), P) >> BigInt(8 * (length - 1)) !== 0n) k *= 2n;
  const z = bytes(modPow(k, big(x), P), length);
  assert.equal(z[0], 0);
  const padded = bytes(k, length);
  assert.deepEqual(offerKeyShare(NamedGroup.ffdhe2048, { privateKey: x }, 'TLSv1.3').complete(padded), z);
  const minimal = Buffer.from(k.toString(16).padStart(2 * Math.ceil(k.toString(16).length / 2), '0'), 'hex');
  let i = 0;
  while (z[i] === 0) i++;
  const tls12 = offerKeyShare(NamedGroup.ffdhe2048, { privateKey: x }, 'TLSv1.2');
  assert.deepEqual(tls12.complete(minimal), z.subarray(i), 'TLS 1.2 takes a minimal dh_Yc and strips the premaster');
  assert.deepEqual(tls12.complete(padded), z.subarray(i), 'and a padded one');
  assert.deepEqual(acceptKeyShare(NamedGroup.ffdhe2048, minimal, { privateKey: x }, 'TLSv1.2').sharedSecret, z.subarray(i));
  assertIllegalParameter(() => offerKeyShare(NamedGroup.ffdhe2048, { privateKey: x }, 'TLSv1.3').complete(minimal), 'a short TLS 1.3 share');
});

for (const g of FFDHE) {
  test(`${groupName(g)}: peer values outside 1 < Y < p-1 or of the wrong length get illegal_parameter`, () => {
    const { p, length } = ffdheParameters(g);
    const P = big(p);
    const bad: [string, Buffer, KeyExchangeVersion][] = [];
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      for (const [what, v] of [
        ['0', 0n],
        ['1', 1n],
        ['p-1', P - 1n],
        ['p', P],
        ['p+1', P + 1n],
      ] as const) {
        bad.push([`Y = ${what}`, bytes(v, length), version]);
      }
      bad.push(['all ones', Buffer.alloc(length, 0xff), version]);
      bad.push(['longer than p', Buffer.concat([Buffer.of(0), bytes(2n, length)]), version]);
      bad.push(['empty', Buffer.alloc(0), version]);
    }
    bad.push(['shorter than p (TLS 1.3)', bytes(2n, length - 1), 'TLSv1.3']);
    bad.push(['Y = 1 in one byte (TLS 1.2)', Buffer.of(1), 'TLSv1.2']);
    const offers = { 'TLSv1.3': offerKeyShare(g, undefined, 'TLSv1.3'), 'TLSv1.2': offerKeyShare(g, undefined, 'TLSv1.2') };
    for (const [what, share, version] of bad) {
      assertIllegalParameter(() => offers[version].complete(share), `${groupName(g)} ${version} ${what} (complete)`);
      assertIllegalParameter(() => acceptKeyShare(g, share, undefined, version), `${groupName(g)} ${version} ${what} (accept)`);
    }
    // Y = 2 and Y = 2^(8 len - 1) mod p are valid values
    assert.equal(offers['TLSv1.3'].complete(bytes(modPow(2n, BigInt(8 * length - 1), P), length)).length, length);
    assert.ok(offers['TLSv1.2'].complete(Buffer.of(2)).length <= length);
  });
}
