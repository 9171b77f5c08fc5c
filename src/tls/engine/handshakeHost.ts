import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import type { AeadName } from '../crypto/cipherSuites.js';
import type { HashName } from '../crypto/hash.js';
import type { KeyShareFactory, RandomSource, ServerConfig } from './config.js';
import type { NegotiatedInfo, NewKeyOperation } from './events.js';
import type { RecordLayer } from './recordLayer.js';

export interface HandshakeMessage {
  type: number;
  body: Uint8Array;
  /** The whole message with its 4-byte header, as hashed into the transcript. */
  raw: Uint8Array;
}

/** Secrets a finished TLS 1.3 handshake hands to the connection for KeyUpdate and exporters. */
export interface TrafficSecrets13 {
  hash: HashName;
  aead: AeadName;
  clientAppSecret: Buffer;
  serverAppSecret: Buffer;
  exporterMaster: Buffer;
}

/** What a finished TLS 1.2 handshake hands to the connection, for the RFC 5705 exporter. */
export interface Tls12Secrets {
  readonly version: 'TLSv1.2';
  readonly hash: 'sha256' | 'sha384';
  readonly masterSecret: Buffer;
  readonly clientRandom: Uint8Array;
  readonly serverRandom: Uint8Array;
}

/** What the connection offers a handshake state machine: output, keys and key operations. */
export interface HandshakeHost {
  readonly config: ServerConfig;
  readonly random: RandomSource;
  readonly keyShareFactory: KeyShareFactory;
  readonly record: RecordLayer;
  readonly info: NegotiatedInfo;
  operationContext(): Omit<OperationContext, 'tlsVersion'>;
  /** Queues a handshake message; queued messages share records until `flush`. */
  sendHandshake(raw: Uint8Array): void;
  flush(): void;
  sendChangeCipherSpec(): void;
  setWriteKey(aead: RecordAead): void;
  setReadKey(aead: RecordAead): void;
  handshakeFragmentPending(): boolean;
  requestKeyOperation(req: NewKeyOperation): number;
  /**
   * Puts off work that must come before any further output but is not needed for the
   * key operation just requested; it runs once the driver has passed the request on
   * (or, at the latest, before the next output or input is handled).
   */
  defer(work: () => void): void;
  handshakeComplete(secrets: TrafficSecrets13 | Tls12Secrets): void;
}

/** A server handshake state machine for one protocol version. */
export interface ServerHandshake {
  handleMessage(msg: HandshakeMessage): void;
  keyOperationResult(opId: number, result: Uint8Array): void;
  readonly waitingForKey: boolean;
  /** Whether a plaintext ChangeCipherSpec from the client is still acceptable (TLS 1.3 D.4). */
  readonly expectsCompatCcs: boolean;
  /** TLS 1.2 only: the peer's ChangeCipherSpec (already checked to be the single byte 1). */
  handleChangeCipherSpec?(): void;
  /**
   * A key operation was rejected. A version may turn that into its own outcome (TLS 1.2
   * RSA key exchange continues with a random premaster, so a rejection is not an oracle);
   * absent, or when it throws, the handshake fails.
   */
  keyOperationFailed?(opId: number, error: Error): void;
}
