/** AEAD algorithms, named as node:crypto names them. */
export type AeadName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

/** TLS cipher suite code points keyward implements (IANA TLS Cipher Suites registry). */
export enum CipherSuite {
  TLS_AES_128_GCM_SHA256 = 0x1301,
  TLS_AES_256_GCM_SHA384 = 0x1302,
  TLS_CHACHA20_POLY1305_SHA256 = 0x1303,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xc02c,
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xc02f,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xc030,
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca8,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xcca9,
  TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009c,
  TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009d,
  TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00a8,
  TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 = 0xd001,
  TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xccac,
}

export type KeyExchangeKind = 'any' | 'ECDHE_ECDSA' | 'ECDHE_RSA' | 'RSA' | 'PSK' | 'ECDHE_PSK';

export interface CipherSuiteInfo {
  suite: CipherSuite;
  /** IANA name. */
  name: string;
  /** OpenSSL's name (for `openssl s_client -cipher` / `-ciphersuites` and node:tls `ciphers`). */
  opensslName: string;
  version: 'TLSv1.3' | 'TLSv1.2';
  aead: AeadName;
  /** Hash of the TLS 1.3 key schedule / transcript, or of the TLS 1.2 PRF. */
  hash: 'sha256' | 'sha384';
  /** 'any' for TLS 1.3, where the suite does not fix the key exchange. */
  keyExchange: KeyExchangeKind;
}

function s(suite: CipherSuite, opensslName: string, aead: AeadName, hash: 'sha256' | 'sha384', keyExchange: KeyExchangeKind): CipherSuiteInfo {
  return Object.freeze({
    suite,
    name: CipherSuite[suite],
    opensslName,
    version: keyExchange === 'any' ? 'TLSv1.3' : 'TLSv1.2',
    aead,
    hash,
    keyExchange,
  });
}

const C = CipherSuite;

/** Every suite keyward implements, in a sensible default server preference order per version. */
export const ALL_CIPHER_SUITES: readonly CipherSuiteInfo[] = Object.freeze([
  s(C.TLS_AES_128_GCM_SHA256, 'TLS_AES_128_GCM_SHA256', 'aes-128-gcm', 'sha256', 'any'),
  s(C.TLS_AES_256_GCM_SHA384, 'TLS_AES_256_GCM_SHA384', 'aes-256-gcm', 'sha384', 'any'),
  s(C.TLS_CHACHA20_POLY1305_SHA256, 'TLS_CHACHA20_POLY1305_SHA256', 'chacha20-poly1305', 'sha256', 'any'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-ECDSA-CHACHA20-POLY1305', 'chacha20-poly1305', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'ECDHE-RSA-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'ECDHE_RSA'),
  s(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'ECDHE-RSA-AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'ECDHE_RSA'),
  s(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-RSA-CHACHA20-POLY1305', 'chacha20-poly1305', 'sha256', 'ECDHE_RSA'),
  s(C.TLS_RSA_WITH_AES_128_GCM_SHA256, 'AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'RSA'),
  s(C.TLS_RSA_WITH_AES_256_GCM_SHA384, 'AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'RSA'),
  s(C.TLS_PSK_WITH_AES_128_GCM_SHA256, 'PSK-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'PSK'),
  // RFC 8442; OpenSSL does not implement this suite, the name follows its naming scheme.
  s(C.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, 'ECDHE-PSK-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'ECDHE_PSK'),
  s(C.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-PSK-CHACHA20-POLY1305', 'chacha20-poly1305', 'sha256', 'ECDHE_PSK'),
]);

const byCode = new Map<number, CipherSuiteInfo>(ALL_CIPHER_SUITES.map((i) => [i.suite, i]));

/** What keyward knows about a suite code point, or undefined for one it does not implement. */
export function suiteInfo(code: number): CipherSuiteInfo | undefined {
  return byCode.get(code);
}

/** IANA name of a suite, or its code in hex when unknown (for logs and errors). */
export function suiteName(code: number): string {
  return byCode.get(code)?.name ?? `0x${code.toString(16).padStart(4, '0')}`;
}

/** AEAD key length in bytes: 16 / 32 / 32. */
export function aeadKeyLength(a: AeadName): number {
  switch (a) {
    case 'aes-128-gcm':
      return 16;
    case 'aes-256-gcm':
    case 'chacha20-poly1305':
      return 32;
    default:
      throw new TypeError(`unknown AEAD ${String(a)}`);
  }
}

/** Per-record nonce length of every AEAD here (RFC 8446 5.3: iv_length = max(8, N_MIN) = 12). */
export const AEAD_NONCE_LENGTH = 12;

/** AEAD tag length in bytes (16 for all three). */
export const AEAD_TAG_LENGTH = 16;

/**
 * TLS 1.2 client/server_write_IV length from the key block: 4-byte implicit salt for GCM
 * (RFC 5288 3), the full 12-byte IV for ChaCha20-Poly1305 (RFC 7905 2).
 */
export function tls12FixedIvLength(a: AeadName): number {
  return a === 'chacha20-poly1305' ? 12 : 4;
}
