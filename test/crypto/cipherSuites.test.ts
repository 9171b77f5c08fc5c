import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getCiphers } from 'node:tls';
import {
  ALL_CIPHER_SUITES,
  CipherSuite,
  aeadKeyLength,
  suiteInfo,
  suiteName,
  tls12FixedIvLength,
} from '../../src/tls/crypto/cipherSuites.js';

test('every enum member has one table entry with consistent fields', () => {
  const codes = Object.values(CipherSuite).filter((v): v is number => typeof v === 'number');
  assert.equal(ALL_CIPHER_SUITES.length, codes.length);
  for (const code of codes) {
    const i = suiteInfo(code);
    assert.ok(i, `suite 0x${code.toString(16)}`);
    assert.equal(i.suite, code);
    assert.equal(i.name, CipherSuite[code]);
    assert.equal(i.version === 'TLSv1.3', code >> 8 === 0x13);
    assert.equal(i.keyExchange === 'any', i.version === 'TLSv1.3');
    // The TLS 1.2 CCM names leave the hash out: RFC 6655 and 7251 fix the PRF at SHA-256.
    if (i.version === 'TLSv1.2' && i.aead.includes('ccm')) assert.equal(i.hash, 'sha256', i.name);
    else assert.ok(i.name.endsWith(i.hash === 'sha256' ? 'SHA256' : 'SHA384'), i.name);
    const aeadInName: Record<string, string> = {
      'aes-128-gcm': 'AES_128_GCM',
      'aes-256-gcm': 'AES_256_GCM',
      'chacha20-poly1305': 'CHACHA20_POLY1305',
      'aes-128-ccm': 'AES_128_CCM',
      'aes-256-ccm': 'AES_256_CCM',
      'aes-128-ccm-8': 'AES_128_CCM_8',
      'aes-256-ccm-8': 'AES_256_CCM_8',
    };
    assert.ok(i.name.includes(aeadInName[i.aead]), i.name);
    if (i.aead === 'aes-128-ccm' || i.aead === 'aes-256-ccm') assert.ok(!i.name.includes('CCM_8'), i.name);
  }
  assert.equal(suiteInfo(0x002f), undefined);
  assert.equal(suiteName(0x1301), 'TLS_AES_128_GCM_SHA256');
  assert.equal(suiteName(0x002f), '0x002f');
});

test('key exchange kinds follow the IANA names', () => {
  assert.equal(suiteInfo(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)?.keyExchange, 'ECDHE_ECDSA');
  assert.equal(suiteInfo(CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)?.keyExchange, 'ECDHE_RSA');
  assert.equal(suiteInfo(CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256)?.keyExchange, 'RSA');
  assert.equal(suiteInfo(CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256)?.keyExchange, 'PSK');
  assert.equal(suiteInfo(CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256)?.keyExchange, 'ECDHE_PSK');
});

test('OpenSSL names are ones node:tls knows (except RFC 8442 ECDHE_PSK AES-GCM, which OpenSSL lacks, and the TLS 1.2 CCM suites, which node:tls does not list)', () => {
  const known = new Set(getCiphers());
  for (const i of ALL_CIPHER_SUITES) {
    if (i.suite === CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256) continue;
    // openssl s_client/s_server know these names; the CCM interop tests use them (test/tls12/ccm12.test.ts).
    if (i.version === 'TLSv1.2' && i.aead.includes('ccm')) continue;
    assert.ok(known.has(i.opensslName.toLowerCase()), i.opensslName);
  }
});

test('AEAD key and TLS 1.2 fixed IV lengths', () => {
  assert.equal(aeadKeyLength('aes-128-gcm'), 16);
  assert.equal(aeadKeyLength('aes-256-gcm'), 32);
  assert.equal(aeadKeyLength('chacha20-poly1305'), 32);
  assert.equal(tls12FixedIvLength('aes-128-gcm'), 4);
  assert.equal(tls12FixedIvLength('chacha20-poly1305'), 12);
  assert.equal(aeadKeyLength('aes-128-ccm-8'), 16);
  assert.equal(aeadKeyLength('aes-256-ccm'), 32);
  assert.equal(tls12FixedIvLength('aes-256-ccm-8'), 4);
  assert.throws(() => aeadKeyLength('aes-128-cbc' as 'aes-128-gcm'), TypeError);
});
