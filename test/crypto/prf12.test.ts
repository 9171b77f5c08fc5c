import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  prf12,
  pskPremaster,
  tls12ExtendedMasterSecret,
  tls12KeyBlock,
  tls12MasterSecret,
  tls12VerifyData,
  type Prf12Hash,
} from '../../src/tls/crypto/prf12.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** An independent, deliberately naive P_hash (RFC 5246 5) for self-consistency checks. */
function referencePrf(h: Prf12Hash, secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const s = Buffer.concat([Buffer.from(label, 'ascii'), seed]);
  let a = s;
  let out = Buffer.alloc(0);
  while (out.length < length) {
    a = createHmac(h, secret).update(a).digest();
    out = Buffer.concat([out, createHmac(h, secret).update(Buffer.concat([a, s])).digest()]);
  }
  return out.subarray(0, length);
}

test('published TLS 1.2 PRF test vector, SHA-256 (100 bytes)', () => {
  const out = prf12('sha256', hex('9bbe436ba940f017b17652849a71db35'), 'test label', hex('a0ba9f936cda311827a6f796ffd5198c'), 100);
  assert.deepEqual(
    out,
    hex(`e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af
      0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66`),
  );
});

test('published TLS 1.2 PRF test vector, SHA-384 (148 bytes)', () => {
  const out = prf12('sha384', hex('b80b733d6ceefcdc71566ea48e5567df'), 'test label', hex('cd665cf6a8447dd6ff8b27555edb7465'), 148);
  assert.deepEqual(
    out,
    hex(`7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0
      e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b
      5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e0990703d73
      e56f`),
  );
});

test('prf12 agrees with an independent P_hash for many lengths', () => {
  const secret = Buffer.from('a secret of some length');
  const seed = Buffer.from('seed bytes');
  for (const h of ['sha256', 'sha384'] as const) {
    for (const len of [0, 1, 12, 31, 32, 33, 48, 72, 104, 200]) {
      assert.deepEqual(prf12(h, secret, 'label', seed, len), referencePrf(h, secret, 'label', seed, len), `${h} ${len}`);
    }
  }
  assert.throws(() => prf12('sha512' as Prf12Hash, secret, 'l', seed, 10), TypeError);
  assert.throws(() => prf12('sha256', secret, 'l', seed, -1), RangeError);
});

test('master secret, extended master secret, verify data are PRF calls with the RFC labels', () => {
  const pre = Buffer.alloc(48, 5);
  const cr = Buffer.alloc(32, 1);
  const sr = Buffer.alloc(32, 2);
  const ms = tls12MasterSecret('sha256', pre, cr, sr);
  assert.equal(ms.length, 48);
  assert.deepEqual(ms, referencePrf('sha256', pre, 'master secret', Buffer.concat([cr, sr]), 48));
  const sessionHash = Buffer.alloc(48, 9);
  assert.deepEqual(
    tls12ExtendedMasterSecret('sha384', pre, sessionHash),
    referencePrf('sha384', pre, 'extended master secret', sessionHash, 48),
  );
  const hh = Buffer.alloc(32, 7);
  const vd = tls12VerifyData('sha256', ms, 'client finished', hh);
  assert.equal(vd.length, 12);
  assert.deepEqual(vd, referencePrf('sha256', ms, 'client finished', hh, 12));
  assert.notDeepEqual(tls12VerifyData('sha256', ms, 'server finished', hh), vd);
});

test('key block: server_random first in the seed; keys then IVs; IV sizes per AEAD', () => {
  const ms = Buffer.alloc(48, 3);
  const cr = Buffer.alloc(32, 1);
  const sr = Buffer.alloc(32, 2);
  for (const [aead, kl, il] of [
    ['aes-128-gcm', 16, 4],
    ['aes-256-gcm', 32, 4],
    ['chacha20-poly1305', 32, 12],
  ] as const) {
    const block = referencePrf('sha256', ms, 'key expansion', Buffer.concat([sr, cr]), 2 * kl + 2 * il);
    const kb = tls12KeyBlock('sha256', ms, cr, sr, aead);
    assert.deepEqual(kb.clientKey, block.subarray(0, kl));
    assert.deepEqual(kb.serverKey, block.subarray(kl, 2 * kl));
    assert.deepEqual(kb.clientIv, block.subarray(2 * kl, 2 * kl + il));
    assert.deepEqual(kb.serverIv, block.subarray(2 * kl + il));
    assert.equal(kb.serverIv.length, il);
  }
});

test('PSK premaster (RFC 4279 2, RFC 5489)', () => {
  const psk = Buffer.from('0123', 'hex');
  // plain PSK: other_secret = N zero bytes
  assert.deepEqual(pskPremaster(psk, null), hex('0002 0000 0002 0123'));
  // ECDHE_PSK: other_secret = the ECDHE shared secret
  assert.deepEqual(pskPremaster(psk, Buffer.from('aabbcc', 'hex')), hex('0003 aabbcc 0002 0123'));
  const big = Buffer.alloc(64, 0xee);
  const p = pskPremaster(big, null);
  assert.equal(p.length, 4 + 128);
  assert.equal(p.readUInt16BE(0), 64);
  assert.ok(p.subarray(2, 66).every((b) => b === 0));
  assert.equal(p.readUInt16BE(66), 64);
  assert.deepEqual(p.subarray(68), big);
  assert.throws(() => pskPremaster(Buffer.alloc(0x10000), null), RangeError);
});
