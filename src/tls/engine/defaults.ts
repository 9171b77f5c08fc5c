import { CipherSuite } from '../crypto/cipherSuites.js';
import { NamedGroup, recommendedGroupPreference } from '../crypto/groups.js';
import { SignatureScheme } from '../crypto/signatureSchemes.js';

/**
 * Every protocol default of keyward in one place, with its reason (as in Go's crypto/tls).
 */

/** TLS 1.3 suites, server preference: AES-GCM first (AES-NI makes it fastest on servers). */
export const DEFAULT_TLS13_SUITES: readonly CipherSuite[] = [
  CipherSuite.TLS_AES_128_GCM_SHA256,
  CipherSuite.TLS_AES_256_GCM_SHA384,
  CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
];

/**
 * TLS 1.2 suites, server preference: forward-secret AEAD suites only; ECDSA before RSA
 * (cheaper signatures), AES-GCM before ChaCha20. The RSA key exchange suites (no forward
 * secrecy) are used only with `rsaKeyExchange: true`, the PSK suites only when a PSK
 * holder is configured; ECDHE_PSK precedes plain PSK for forward secrecy. The PSK AES-CCM
 * suites (RFC 6655) come after PSK AES-GCM: constrained devices speak them (LwM2M
 * requires TLS_PSK_WITH_AES_128_CCM_8). The ECDHE_ECDSA AES-CCM suites (RFC 7251) are
 * implemented but off unless listed in `tls12CipherSuites`. No CBC suite and no DHE
 * suite exists in keyward (docs/security.md says why).
 */
export const DEFAULT_TLS12_SUITES: readonly CipherSuite[] = [
  CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
  CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
  CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
  CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
  CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,
  CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
  CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
  CipherSuite.TLS_PSK_WITH_AES_128_CCM,
  CipherSuite.TLS_PSK_WITH_AES_256_CCM,
  CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,
  CipherSuite.TLS_PSK_WITH_AES_256_CCM_8,
  CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
  CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384,
];

/**
 * TLS 1.2 ECDHE group for a ClientHello without any extension (RFC 4492 let such clients
 * leave supported_groups out; the server picks): P-256, which every ECC client implements.
 * A hello with extensions but no supported_groups gets no ECDHE (server12 chooseGroup12).
 */
export const TLS12_GROUP_WITHOUT_SUPPORTED_GROUPS = NamedGroup.secp256r1;

/** Renegotiation attempts (ClientHellos after a TLS 1.2 handshake) answered with no_renegotiation before we give up. */
export const MAX_RENEGOTIATION_ATTEMPTS = 8;

/**
 * Groups in preference order, measured per Node version (recommendedGroupPreference, from
 * bench/groups.ts): X25519MLKEM768 first where node:crypto has ML-KEM (Node 24.7+; browsers
 * send its share first), else x25519 first with the hybrid second (the JS ML-KEM costs ~5x);
 * then the classical curves by cost, P-521 and the RFC 7919 FFDHE groups last, so a client
 * that offers only those is still served (issue 16).
 */
export const DEFAULT_GROUPS: readonly NamedGroup[] = recommendedGroupPreference().groups;

/**
 * Signature schemes keyward accepts from a peer (a server's CertificateVerify or
 * ServerKeyExchange, a client's CertificateVerify) and offers in signature_algorithms:
 * every scheme it verifies but SHA-1, ECDSA and EdDSA first (cheaper to verify), then
 * RSA-PSS for rsaEncryption keys, then for RSASSA-PSS keys (rsa_pss_pss_*, in TLS 1.2 as
 * well: RFC 8446 4.2.3). TLS 1.3 drops the PKCS#1 v1.5 ones.
 */
export const VERIFIED_SIGNATURE_SCHEMES: readonly SignatureScheme[] = [
  SignatureScheme.ecdsa_secp256r1_sha256,
  SignatureScheme.ecdsa_secp384r1_sha384,
  SignatureScheme.ecdsa_secp521r1_sha512,
  SignatureScheme.ed25519,
  SignatureScheme.ed448,
  SignatureScheme.rsa_pss_rsae_sha256,
  SignatureScheme.rsa_pss_rsae_sha384,
  SignatureScheme.rsa_pss_rsae_sha512,
  SignatureScheme.rsa_pss_pss_sha256,
  SignatureScheme.rsa_pss_pss_sha384,
  SignatureScheme.rsa_pss_pss_sha512,
  SignatureScheme.rsa_pkcs1_sha256,
  SignatureScheme.rsa_pkcs1_sha384,
  SignatureScheme.rsa_pkcs1_sha512,
];

/** ALPN: none unless configured. */
export const DEFAULT_MAX_HANDSHAKE_MESSAGE = 64 * 1024;
/** Bytes we buffer from the peer while a key operation is pending, before calling it abuse. */
export const MAX_BUFFERED_WHILE_WAITING = 256 * 1024;
/**
 * Records sent under one key before keyward rotates it with a KeyUpdate. RFC 8446 5.5
 * limits AES-GCM to 2^24.5 full-size records per key; we stay well below.
 */
export const KEY_UPDATE_AFTER_RECORDS = 1 << 24;
/** Consecutive empty or KeyUpdate-only records tolerated, against a peer that spins us. */
export const MAX_EMPTY_RECORDS = 32;
/** 0-RTT bytes we skip when a client sends early data we do not accept. */
export const DEFAULT_MAX_EARLY_DATA_SKIP = 64 * 1024;
