import type {
  KeyOperations,
  OperationContext,
  PremasterDecryption,
  PskMasterSecretRequest,
  PskOperations,
  Tls13PskOperations,
  Tls13PskRequest,
  Tls13PskScheduleRequest,
} from '../../keys/keyOperations.js';
import type { SignatureScheme } from '../crypto/signatureSchemes.js';
import type { ClientSession } from '../resumption/clientSession.js';
import type { AlertDescription } from '../wire/alerts.js';

/**
 * A private-key operation the engine waits on (BoringSSL's "retry", Mbed TLS's
 * start/resume/cancel), keyed by `kind`. The driver performs it with the holder it names
 * and answers `completeKeyOperation(id, result)` or `failKeyOperation(id, error)`.
 */
export type KeyOperationRequest = SignRequest | DecryptPremasterRequest | PskMasterSecretOperation | Tls13PskOperation;

/** Sign with a certificate key: a CertificateVerify (either role) or a TLS 1.2 ServerKeyExchange. */
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
  readonly key: PremasterDecryption;
  readonly ciphertext: Uint8Array;
  /** ClientHello.client_version, which the premaster must start with. */
  readonly clientVersion: number;
  readonly context: OperationContext;
}

/** TLS 1.2 PSK suites (either role): the PSK holder computes the 48-byte master secret; the PSK never leaves it. */
export interface PskMasterSecretOperation {
  readonly id: number;
  readonly kind: 'pskMasterSecret';
  readonly holder: PskOperations;
  readonly request: PskMasterSecretRequest;
  readonly context: OperationContext;
}

/** One step of the TLS 1.3 key schedule of an external PSK, as the holder's method of that name takes it (docs/tls13-psk.md). */
export type Tls13PskStepRequest =
  | { readonly step: 'binder'; readonly request: Tls13PskRequest & { transcriptHash: Uint8Array } }
  | { readonly step: 'verify-binder'; readonly request: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array } }
  | { readonly step: 'handshake-secrets' | 'application-secrets' | 'resumption-master-secret'; readonly request: Tls13PskScheduleRequest };

/**
 * TLS 1.3 external PSK (either role): a stage of the key schedule run by the PSK holder,
 * which keeps the PSK, the Early Secret, the binder key and the Handshake and Master
 * Secrets. The result is the step's output as bytes: the binder; one byte, 1 or 0, for the
 * binder verdict; client ‖ server handshake traffic secrets; client ‖ server application
 * traffic secrets ‖ exporter master secret; the resumption master secret.
 */
export interface Tls13PskOperation {
  readonly id: number;
  readonly kind: 'tls13Psk';
  readonly holder: Tls13PskOperations;
  readonly step: Tls13PskStepRequest;
  readonly context: OperationContext;
}

/** A request without its id, as a handshake asks for it (distributes over the union). */
export type NewKeyOperation = KeyOperationRequest extends infer R ? (R extends KeyOperationRequest ? Omit<R, 'id'> : never) : never;

/**
 * The peer's certificate chain, for the driver to judge (trust anchors, validity, host
 * name, extended key usage: policy that belongs to the application, as in node:tls). The
 * engine itself checks the peer's CertificateVerify against the leaf. The driver answers
 * `completePeerVerification(id, verdict)`.
 */
export interface PeerVerificationRequest {
  readonly id: number;
  /** Whose chain it is: 'server' when we are the client. */
  readonly peer: 'server' | 'client';
  /** DER certificates, leaf first, as sent; empty when a client sent none. */
  readonly chain: readonly Uint8Array[];
  /** The name we asked the server for (client side), if any. */
  readonly serverName?: string;
}

/** The driver's judgement of the peer's chain: accept, or end the handshake with `alert`. */
export type PeerVerdict = { readonly ok: true } | { readonly ok: false; readonly alert: AlertDescription; readonly reason: string };

/** What a connection reports to its driver. */
export type EngineEvent =
  | { readonly type: 'keyOperation'; readonly request: KeyOperationRequest }
  | { readonly type: 'verifyPeer'; readonly request: PeerVerificationRequest }
  | { readonly type: 'handshakeComplete' }
  /** Client side: a session the application may keep and offer later (one per TLS 1.3 ticket). */
  | { readonly type: 'session'; readonly session: ClientSession }
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
  /** The scheme of the server's signature (CertificateVerify or ServerKeyExchange). */
  signatureScheme?: number;
  /** The scheme of the client's CertificateVerify, when it authenticated. */
  clientSignatureScheme?: number;
  alpnProtocol?: string;
  serverName?: string;
  helloRetry?: boolean;
  /** Whether this handshake resumed an earlier session (no certificate, no key-holder call). */
  resumed?: boolean;
  /** TLS 1.3: the RFC 8879 algorithm (2 brotli, 1 zlib) the server's Certificate came compressed with, when it did. */
  certificateCompression?: number;
  /**
   * TLS 1.3: the server signed CertificateVerify with a delegated credential (RFC 9345)
   * rather than the certificate's key, so no key holder signed for this handshake.
   */
  delegatedCredential?: boolean;
  /** TLS 1.2: whether the RFC 7627 extended master secret was used. */
  extendedMasterSecret?: boolean;
  /** TLS 1.2 PSK suites: the identity the client named (UTF-8 as sent, lossy). */
  pskIdentity?: string;
  /** The peer's certificate chain (DER, leaf first), once received. */
  peerCertificates?: readonly Uint8Array[];
}

/**
 * A NegotiatedInfo with every field present (undefined until known): each connection's
 * object then has one shape from the start, instead of a new hidden class per field the
 * handshake fills in, which left the engine's reads of it polymorphic.
 */
export function emptyNegotiatedInfo(): NegotiatedInfo {
  return {
    version: undefined,
    cipherSuite: undefined,
    cipherName: undefined,
    opensslCipherName: undefined,
    group: undefined,
    signatureScheme: undefined,
    clientSignatureScheme: undefined,
    alpnProtocol: undefined,
    serverName: undefined,
    helloRetry: undefined,
    resumed: undefined,
    certificateCompression: undefined,
    delegatedCredential: undefined,
    extendedMasterSecret: undefined,
    pskIdentity: undefined,
    peerCertificates: undefined,
  };
}
