import type { OperationContext } from '../../keys/keyOperations.js';
import type { RecordAead } from '../crypto/aead.js';
import type { AeadName } from '../crypto/cipherSuites.js';
import type { HashName } from '../crypto/hash.js';
import type { ClientSession } from '../resumption/clientSession.js';
import type { HandshakeType } from '../wire/constants.js';
import type { KeyShareFactory, RandomSource } from './config.js';
import type { NegotiatedInfo, NewKeyOperation, PeerVerdict, PeerVerificationRequest } from './events.js';
import type { RecordLayer } from './recordLayer.js';

export interface HandshakeMessage {
  type: number;
  body: Uint8Array;
  /** The whole message with its 4-byte header, as hashed into the transcript. */
  raw: Uint8Array;
}

/**
 * Secrets a finished TLS 1.3 handshake hands to the connection for KeyUpdate and
 * exporters, named by direction so the traffic phase does not depend on the role.
 */
export interface TrafficSecrets13 {
  readonly version: 'TLSv1.3';
  readonly hash: HashName;
  readonly aead: AeadName;
  readSecret: Buffer;
  writeSecret: Buffer;
  readonly exporterMaster: Buffer;
  /** Client: the resumption master secret, from which each NewSessionTicket's PSK comes (RFC 8446 4.6.1). */
  readonly resumptionMasterSecret?: Buffer;
}

/** What a finished TLS 1.2 handshake hands to the connection, for the RFC 5705 exporter. */
export interface TrafficSecrets12 {
  readonly version: 'TLSv1.2';
  readonly hash: 'sha256' | 'sha384';
  readonly masterSecret: Buffer;
  readonly clientRandom: Uint8Array;
  readonly serverRandom: Uint8Array;
}

/**
 * What a handshake waits for now (BoringSSL's wait reasons). The connection reads records
 * only while a handshake waits for a message or a ChangeCipherSpec, and checks each
 * message's type against `expect` (the expected-message order, as data) before handing it over.
 */
export type Wait =
  | { readonly on: 'message'; readonly expect: readonly HandshakeType[] }
  /** TLS 1.2: the peer's ChangeCipherSpec. */
  | { readonly on: 'changeCipherSpec' }
  | { readonly on: 'keyOperation'; readonly id: number }
  | { readonly on: 'peerVerification'; readonly id: number };

/** One handshake (one role and version) as the connection drives it. */
export interface Handshake {
  readonly wait: Wait;
  /** A message whose type `wait.expect` lists. */
  handleMessage(msg: HandshakeMessage): void;
  /** The answer to the key operation `wait` names. */
  keyOperationResult(opId: number, result: Uint8Array): void;
  /**
   * A key operation was rejected. A version may turn that into its own outcome (TLS 1.2
   * RSA key exchange continues with a random premaster, so a rejection is not an oracle);
   * absent, or when it throws, the handshake fails with internal_error.
   */
  keyOperationFailed?(opId: number, error: Error): void;
  /** The driver's verdict on the peer's chain. */
  peerVerified?(id: number, verdict: PeerVerdict): void;
  /** TLS 1.2: the peer's ChangeCipherSpec (already checked to be the single byte 1). */
  handleChangeCipherSpec?(): void;
  /** Whether a plaintext ChangeCipherSpec from the peer is still dropped (TLS 1.3 D.4). */
  readonly acceptsCompatCcs: boolean;
}

/** What the connection offers a handshake: output, keys, key operations and the next step. */
export interface HandshakeHost {
  readonly random: RandomSource;
  /** Clock, ms since the epoch. */
  readonly now: () => number;
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
  /** TLS 1.2 was negotiated: 1.2 record protection, ChangeCipherSpec, no KeyUpdate. */
  useTls12(): void;
  handshakeFragmentPending(): boolean;
  /** Emits a keyOperation event; returns its id, which the handshake's `wait` then names. */
  requestKeyOperation(req: NewKeyOperation): number;
  /** Emits a verifyPeer event; returns its id. */
  requestPeerVerification(req: Omit<PeerVerificationRequest, 'id'>): number;
  /**
   * Puts off work that must come before any further output but is not needed for the
   * key operation just requested; it runs once the driver has passed the request on
   * (or, at the latest, before the next output or input is handled).
   */
  defer(work: () => void): void;
  /** Runs `cb` if the connection ends with a fatal alert, sent or received (RFC 5246 7.2.2: the session is not resumed). */
  onFatalAlert(cb: () => void): void;
  /**
   * Runs `cb` once if the connection ends before the handshake completes (a fatal alert,
   * close_notify, the transport gone); forgotten when it completes, so nothing keeps the
   * finished handshake alive.
   */
  onAbandoned(cb: () => void): void;
  /** Client: a session the application may keep and offer later (a `session` event, after handshakeComplete). */
  emitSession(session: ClientSession): void;
  /** The handshake hands over to another (the version's, once it is known). */
  continueWith(next: Handshake): void;
  handshakeComplete(secrets: TrafficSecrets13 | TrafficSecrets12): void;
}
