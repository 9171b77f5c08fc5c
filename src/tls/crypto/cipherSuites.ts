/**
 * AEAD algorithms, named as node:crypto names them; `-8` marks AES-CCM with the 8-byte
 * tag of the CCM_8 suites (RFC 6655 3), which node:crypto selects with `authTagLength: 8`.
 */
export type AeadName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305' | 'aes-128-ccm' | 'aes-256-ccm' | 'aes-128-ccm-8' | 'aes-256-ccm-8';

/** What node:crypto needs for each AEAD: its cipher name, key and tag lengths. */
interface AeadSpec {
  readonly cipher: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305' | 'aes-128-ccm' | 'aes-256-ccm';
  readonly keyLength: number;
  readonly tagLength: number;
}

const AEADS: Readonly<Record<AeadName, AeadSpec>> = {
  'aes-128-gcm': { cipher: 'aes-128-gcm', keyLength: 16, tagLength: 16 },
  'aes-256-gcm': { cipher: 'aes-256-gcm', keyLength: 32, tagLength: 16 },
  'chacha20-poly1305': { cipher: 'chacha20-poly1305', keyLength: 32, tagLength: 16 },
  'aes-128-ccm': { cipher: 'aes-128-ccm', keyLength: 16, tagLength: 16 },
  'aes-256-ccm': { cipher: 'aes-256-ccm', keyLength: 32, tagLength: 16 },
  'aes-128-ccm-8': { cipher: 'aes-128-ccm', keyLength: 16, tagLength: 8 },
  'aes-256-ccm-8': { cipher: 'aes-256-ccm', keyLength: 32, tagLength: 8 },
};

function aeadSpec(a: AeadName): AeadSpec {
  const spec = Object.hasOwn(AEADS, a) ? AEADS[a] : undefined;
  if (!spec) throw new TypeError(`unknown AEAD ${String(a)}`);
  return spec;
}

/** TLS cipher suite code points keyward implements (IANA TLS Cipher Suites registry). */
export enum CipherSuite {
  TLS_AES_128_GCM_SHA256 = 0x1301,
  TLS_AES_256_GCM_SHA384 = 0x1302,
  TLS_CHACHA20_POLY1305_SHA256 = 0x1303,
  TLS_AES_128_CCM_SHA256 = 0x1304,
  TLS_AES_128_CCM_8_SHA256 = 0x1305,
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
  TLS_PSK_WITH_AES_128_CCM = 0xc0a4,
  TLS_PSK_WITH_AES_256_CCM = 0xc0a5,
  TLS_PSK_WITH_AES_128_CCM_8 = 0xc0a8,
  TLS_PSK_WITH_AES_256_CCM_8 = 0xc0a9,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM = 0xc0ac,
  TLS_ECDHE_ECDSA_WITH_AES_256_CCM = 0xc0ad,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xc0ae,
  TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8 = 0xc0af,
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
  s(C.TLS_AES_128_CCM_SHA256, 'TLS_AES_128_CCM_SHA256', 'aes-128-ccm', 'sha256', 'any'),
  s(C.TLS_AES_128_CCM_8_SHA256, 'TLS_AES_128_CCM_8_SHA256', 'aes-128-ccm-8', 'sha256', 'any'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-ECDSA-CHACHA20-POLY1305', 'chacha20-poly1305', 'sha256', 'ECDHE_ECDSA'),
  // RFC 7251: AES-CCM with the TLS 1.2 PRF on SHA-256, whatever the key size.
  s(C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, 'ECDHE-ECDSA-AES128-CCM', 'aes-128-ccm', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_256_CCM, 'ECDHE-ECDSA-AES256-CCM', 'aes-256-ccm', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 'ECDHE-ECDSA-AES128-CCM8', 'aes-128-ccm-8', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8, 'ECDHE-ECDSA-AES256-CCM8', 'aes-256-ccm-8', 'sha256', 'ECDHE_ECDSA'),
  s(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'ECDHE-RSA-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'ECDHE_RSA'),
  s(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'ECDHE-RSA-AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'ECDHE_RSA'),
  s(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'ECDHE-RSA-CHACHA20-POLY1305', 'chacha20-poly1305', 'sha256', 'ECDHE_RSA'),
  s(C.TLS_RSA_WITH_AES_128_GCM_SHA256, 'AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'RSA'),
  s(C.TLS_RSA_WITH_AES_256_GCM_SHA384, 'AES256-GCM-SHA384', 'aes-256-gcm', 'sha384', 'RSA'),
  s(C.TLS_PSK_WITH_AES_128_GCM_SHA256, 'PSK-AES128-GCM-SHA256', 'aes-128-gcm', 'sha256', 'PSK'),
  // RFC 6655: AES-CCM with the TLS 1.2 PRF on SHA-256, whatever the key size.
  s(C.TLS_PSK_WITH_AES_128_CCM, 'PSK-AES128-CCM', 'aes-128-ccm', 'sha256', 'PSK'),
  s(C.TLS_PSK_WITH_AES_256_CCM, 'PSK-AES256-CCM', 'aes-256-ccm', 'sha256', 'PSK'),
  s(C.TLS_PSK_WITH_AES_128_CCM_8, 'PSK-AES128-CCM8', 'aes-128-ccm-8', 'sha256', 'PSK'),
  s(C.TLS_PSK_WITH_AES_256_CCM_8, 'PSK-AES256-CCM8', 'aes-256-ccm-8', 'sha256', 'PSK'),
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

/** AEAD key length in bytes: 16 for the AES-128 ones, else 32. */
export function aeadKeyLength(a: AeadName): number {
  return aeadSpec(a).keyLength;
}

/** AEAD tag length in bytes: 8 for AES-CCM_8, else 16. */
export function aeadTagLength(a: AeadName): number {
  return aeadSpec(a).tagLength;
}

/** The node:crypto cipher name of an AEAD (CCM_8 is CCM with an 8-byte tag). */
export function aeadCipherName(a: AeadName): AeadSpec['cipher'] {
  return aeadSpec(a).cipher;
}

/** Per-record nonce length of every AEAD here (RFC 8446 5.3: iv_length = max(8, N_MIN) = 12). */
export const AEAD_NONCE_LENGTH = 12;

/**
 * TLS 1.2 client/server_write_IV length from the key block: 4-byte implicit salt for GCM
 * (RFC 5288 3) and CCM (RFC 6655 3), the full 12-byte IV for ChaCha20-Poly1305 (RFC 7905 2).
 */
export function tls12FixedIvLength(a: AeadName): number {
  return aeadSpec(a).cipher === 'chacha20-poly1305' ? 12 : 4;
}
