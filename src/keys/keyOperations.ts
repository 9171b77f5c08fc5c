import type { KeyObject } from 'node:crypto';
import type { SignatureScheme } from '../tls/crypto/signatureSchemes.js';

/**
 * Which handshake structure a signature covers. Key holders use it for policy
 * (they sign only these shapes) and audit.
 */
export type SignPurpose =
  | 'tls13-server-certificate-verify'
  | 'tls13-client-certificate-verify'
  | 'tls12-server-key-exchange'
  | 'tls12-client-certificate-verify';

/** What a key holder needs to know about an operation for policy and audit. Never secret. */
export interface OperationContext {
  /** SNI of the connection, if any. */
  serverName?: string;
  /** Remote address of the TLS peer, `host:port`. */
  peerAddress?: string;
  tlsVersion: 'TLSv1.3' | 'TLSv1.2';
  purpose?: SignPurpose;
  /** Opaque per-connection id, for correlating audit lines with front logs. */
  connectionId?: string;
  /**
   * The handshake messages a signature input derives from, whole with their headers, in
   * transcript order (per purpose: see boundSignInput.ts). Public data. keyd in bound mode
   * recomputes the input from them; other holders ignore them.
   */
  handshakeMessages?: readonly Uint8Array[];
}

/**
 * The signing boundary. Every signature keyward makes with a certificate key (server or
 * client) goes through this interface; a backend may keep the key in-process (localKey),
 * in a forked key process, in keyd, or in a PKCS#11 token. RSA premaster decryption
 * ({@link PremasterDecryption}) and PSK secrets ({@link PskOperations}) are interfaces of
 * their own, which the same backend may also implement.
 *
 * Rules every backend keeps:
 * - it never blocks the event loop;
 * - `signal` aborting rejects the promise promptly (with the signal's reason) and, where
 *   it can, stops the work in the key holder;
 * - errors carry no key material.
 */
export interface KeyOperations {
  /** Public half, from the certificate: used to choose schemes and to verify results. */
  readonly publicKey: KeyObject;
  /** Signature schemes this key can produce (TLS code points). */
  readonly schemes: readonly SignatureScheme[];
  /** Stable key id: hex SHA-256 of the SubjectPublicKeyInfo DER. */
  readonly keyId: string;
  /**
   * Sign `message` (the whole structure, never a digest) with `scheme`.
   */
  sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
  /** Releases connections, workers or child processes the backend holds. */
  close?(): Promise<void>;
}

/** Holders registered by {@link vouchForSignatures}. */
const checkedSigners = new WeakSet<object>();

/**
 * Registers `holder` as one whose signatures need no second check in the engine: it signs
 * with node:crypto (OpenSSL, which checks its own RSA-CRT results) under a key matched to
 * the certificate at start, or it verifies what a token returned before answering (keyd).
 * The engine verifies every other holder's signature (a PKCS#11 token in the front, any
 * KeyOperations of an application's making) before it reaches a peer. Called by the
 * holder's own constructor; exact classes only (a subclass may sign another way).
 */
export function vouchForSignatures(holder: object): void {
  checkedSigners.add(holder);
}

/** Whether `holder` was registered with {@link vouchForSignatures}. */
export function signaturesVouchedFor(holder: unknown): boolean {
  return typeof holder === 'object' && holder !== null && checkedSigners.has(holder);
}

/**
 * TLS 1.2 RSA key exchange (server side): the key holder decrypts the client's
 * EncryptedPreMasterSecret. An RSA certificate key may implement it beside
 * {@link KeyOperations}; the engine uses it only with `rsaKeyExchange`.
 */
export interface PremasterDecryption {
  /**
   * Returns a 48-byte premaster secret, doing the RFC 5246 7.4.7.1 implicit rejection
   * inside the key holder so the caller never learns whether the padding was valid.
   */
  decryptPremaster(ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
}

/** A certificate key as backends offer it: signing, and for RSA keys that can, premaster decryption. */
export type CertificateKey = KeyOperations & Partial<PremasterDecryption>;

/** The premaster decryption of `key`, when it offers one. */
export function premasterDecryptionOf(key: CertificateKey): PremasterDecryption | undefined {
  return typeof key.decryptPremaster === 'function' ? (key as PremasterDecryption) : undefined;
}

/** Inputs for a TLS 1.2 master secret derived from a PSK the key holder keeps (RFC 4279, 5489, 7627). */
export interface PskMasterSecretRequest {
  identity: Uint8Array;
  /** ECDHE shared secret for ECDHE_PSK; null for plain PSK (zeros of the PSK's length). */
  otherSecret: Uint8Array | null;
  /** PRF hash of the suite. */
  hash: 'sha256' | 'sha384';
  /** true: RFC 7627 "extended master secret" with `seed` = session hash. */
  extended: boolean;
  /** client_random + server_random, or the session hash when extended. */
  seed: Uint8Array;
}

/**
 * PSK secrets computed by the key holder: the PSK never leaves it. An unknown identity
 * yields a random master secret unless the holder is configured to say so, in which case
 * it rejects with `UnknownPskIdentityError`.
 */
export interface PskOperations {
  tls12MasterSecret(req: PskMasterSecretRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** What every TLS 1.3 external-PSK operation names: which PSK, and the suite's hash (the PSK's own hash must match). */
export interface Tls13PskRequest {
  identity: Uint8Array;
  hash: 'sha256' | 'sha384';
}

/** A transcript-bound step of the TLS 1.3 key schedule run inside the holder (docs/tls13-psk.md). */
export interface Tls13PskScheduleRequest extends Tls13PskRequest {
  /** The (EC)DHE shared secret (psk_dhe_ke), or null for psk_ke (the Handshake Secret then comes from zeros). */
  dheSecret: Uint8Array | null;
  /** Hash of the transcript up to the point the step names. */
  transcriptHash: Uint8Array;
}

/**
 * TLS 1.3 external PSKs (RFC 8446 7.1) kept by the key holder: the PSK, Early Secret,
 * binder key and the Handshake/Master Secrets never leave it (with psk_ke the latter are
 * PSK-equivalent); only transcript-bound outputs do. Every call is stateless: the holder
 * recomputes the schedule from the PSK and the inputs. An unknown identity must look to the
 * caller like a known one with a wrong binder (same answer, same work).
 */
export interface Tls13PskOperations {
  /** Client: the binder over `transcriptHash` = Hash(ClientHello truncated before the binders). */
  tls13Binder(req: Tls13PskRequest & { transcriptHash: Uint8Array }, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
  /** Server: whether `binder` is right (compared in constant time); false for an unknown identity too. */
  tls13VerifyBinder(req: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array }, ctx: OperationContext, signal: AbortSignal): Promise<boolean>;
  /** client/server handshake traffic secrets; `transcriptHash` = Hash(ClientHello..ServerHello). */
  tls13HandshakeSecrets(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array }>;
  /** client/server application traffic secrets and the exporter master secret; `transcriptHash` = Hash(ClientHello..server Finished). */
  tls13ApplicationSecrets(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array; exporter: Uint8Array }>;
  /** resumption_master_secret; `transcriptHash` = Hash(ClientHello..client Finished). Optional: without it no tickets follow a PSK handshake. */
  tls13ResumptionMasterSecret?(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array>;
}

/** A key operation failed; `code` is stable and safe to log. */
export class KeyOperationError extends Error {
  constructor(readonly code: KeyErrorCode, message: string) {
    super(message);
    this.name = 'KeyOperationError';
  }
}

export type KeyErrorCode =
  | 'aborted'
  | 'timeout'
  | 'unavailable'
  | 'refused'
  | 'unknown-key'
  | 'unsupported'
  | 'bad-request'
  | 'rate-limited'
  | 'internal';

export class UnknownPskIdentityError extends KeyOperationError {
  constructor() {
    super('refused', 'unknown PSK identity');
    this.name = 'UnknownPskIdentityError';
  }
}
