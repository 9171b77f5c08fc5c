import type { KeyOperations, OperationContext, PskMasterSecretRequest, PskOperations } from '../../keys/keyOperations.js';
import type { SignatureScheme } from '../crypto/signatureSchemes.js';
import type { AlertDescription } from '../wire/alerts.js';

/**
 * A private-key operation the engine waits on (BoringSSL's "retry", Mbed TLS's
 * start/resume/cancel). The driver performs it with `key` and answers with
 * `completeKeyOperation(id, result)` or `failKeyOperation(id, error)`.
 */
export interface SignRequest {
  readonly id: number;
  readonly kind: 'sign';
  readonly key: KeyOperations;
  readonly scheme: SignatureScheme;
  /** The whole structure to sign (never a digest). */
  readonly message: Uint8Array;
  readonly context: OperationContext;
}

/**
 * TLS 1.2 RSA key exchange: the key holder decrypts the client's EncryptedPreMasterSecret
 * and answers 48 bytes whatever the padding said (RFC 5246 7.4.7.1 implicit rejection).
 */
export interface DecryptPremasterRequest {
  readonly id: number;
  readonly kind: 'decryptPremaster';
  readonly key: KeyOperations;
  readonly ciphertext: Uint8Array;
  /** ClientHello.client_version, which the premaster must start with. */
  readonly clientVersion: number;
  readonly context: OperationContext;
}

/** TLS 1.2 PSK suites: the PSK holder computes the 48-byte master secret; the PSK never leaves it. */
export interface PskMasterSecretOperation {
  readonly id: number;
  readonly kind: 'pskMasterSecret';
  readonly holder: PskOperations;
  readonly request: PskMasterSecretRequest;
  readonly context: OperationContext;
}

/** Every key operation the engine can wait on; `kind` says which. */
export type KeyOperationRequest = SignRequest | DecryptPremasterRequest | PskMasterSecretOperation;

/** A request without its id, as a handshake asks for it (distributes over the union). */
export type NewKeyOperation = KeyOperationRequest extends infer R ? (R extends KeyOperationRequest ? Omit<R, 'id'> : never) : never;

/** What a connection reports to its driver. */
export type EngineEvent =
  /** Sign with the certificate key (TLS 1.3 CertificateVerify, TLS 1.2 ServerKeyExchange). */
  | { readonly type: 'keyOperation'; readonly request: SignRequest }
  /** TLS 1.2 RSA key exchange: decrypt the premaster secret in the key holder. */
  | { readonly type: 'decryptPremaster'; readonly request: DecryptPremasterRequest }
  /** TLS 1.2 PSK suites: derive the master secret in the PSK holder. */
  | { readonly type: 'pskMasterSecret'; readonly request: PskMasterSecretOperation }
  | { readonly type: 'handshakeComplete' }
  | { readonly type: 'data'; readonly data: Uint8Array }
  /** The peer sent close_notify: no more data will come. */
  | { readonly type: 'peerClosed' }
  /** The connection failed; `alertSent` or `alertReceived` says how. No more events follow. */
  | { readonly type: 'error'; readonly error: Error; readonly alertSent?: AlertDescription; readonly alertReceived?: AlertDescription };

/** What was negotiated, for `getProtocol()`, `getCipher()` and logs. */
export interface NegotiatedInfo {
  version?: 'TLSv1.3' | 'TLSv1.2';
  cipherSuite?: number;
  cipherName?: string;
  opensslCipherName?: string;
  group?: number;
  signatureScheme?: number;
  alpnProtocol?: string;
  serverName?: string;
  helloRetry?: boolean;
  /** TLS 1.2: whether the RFC 7627 extended master secret was used. */
  extendedMasterSecret?: boolean;
  /** TLS 1.2 PSK suites: the identity the client named (UTF-8 as sent, lossy). */
  pskIdentity?: string;
}
