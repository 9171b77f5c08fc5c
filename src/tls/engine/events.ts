import type { KeyOperations, OperationContext } from '../../keys/keyOperations.js';
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

export type KeyOperationRequest = SignRequest;

/** What a connection reports to its driver. */
export type EngineEvent =
  | { readonly type: 'keyOperation'; readonly request: KeyOperationRequest }
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
}
