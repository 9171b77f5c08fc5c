import { randomUUID, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { KeyOperationError } from '../keys/keyOperations.js';
import type { TlsConnection } from '../tls/engine/connection.js';
import { encodeClientSession, type ClientSession } from '../tls/resumption/clientSession.js';
import type { EngineEvent, KeyOperationRequest, NegotiatedInfo, PeerVerdict, PeerVerificationRequest } from '../tls/engine/events.js';
import { AlertDescription, alertName } from '../tls/wire/alerts.js';
import { ephemeralKeyInfo } from './groupInfo.js';
import { runKeyOperation } from './keyOperationRunner.js';

/** Why a handshake or connection failed, for `tlsClientError` listeners, 'error' and logs. Never carries secrets. */
export class TlsHandshakeError extends Error {
  /**
   * @param alertSent alert we sent the peer, if any
   * @param alertReceived alert the peer sent us, if any
   * @param fixedCode overrides the derived `code` (e.g. ERR_TLS_HANDSHAKE_TIMEOUT)
   */
  constructor(
    message: string,
    readonly alertSent?: number,
    readonly alertReceived?: number,
    private readonly fixedCode?: string,
  ) {
    super(message);
    this.name = 'TlsHandshakeError';
  }

  /** Stable, loggable: ERR_TLS_ALERT_SENT_<NAME>, ERR_TLS_ALERT_RECEIVED_<NAME>, or a fixed code. */
  get code(): string {
    if (this.fixedCode) return this.fixedCode;
    if (this.alertSent !== undefined) return `ERR_TLS_ALERT_SENT_${alertName(this.alertSent).toUpperCase()}`;
    if (this.alertReceived !== undefined) return `ERR_TLS_ALERT_RECEIVED_${alertName(this.alertReceived).toUpperCase()}`;
    return 'ERR_TLS_HANDSHAKE';
  }
}

/** What `getCipher()` returns, as node:tls does. */
export interface CipherInfo {
  /** OpenSSL's name (the IANA name for TLS 1.3 suites). */
  name: string;
  /** IANA name. */
  standardName: string;
  version: string;
}

/** Options every engine socket takes. */
export interface EngineSocketOptions {
  /**
   * Keep our writable side open after the peer ends its side (close_notify or TCP FIN).
   * Default false, as node:tls: our side then ends (close_notify, FIN) once 'end' is emitted.
   */
  allowHalfOpen?: boolean;
  /** Milliseconds the peer has to finish the handshake; 0 disables. Default 120 s, as node:tls. */
  handshakeTimeout?: number;
}

/** How long a failed or finished connection waits for the peer's FIN before the TCP socket is destroyed. */
const LINGER_MS = 2_000;
/**
 * The same wait after both close_notifys were exchanged and before the peer's FIN: the peer
 * may send nothing more, so this only absorbs stray bytes, which would otherwise make the
 * kernel reset the connection and drop what of our reply the peer has not read yet.
 */
const CLEAN_LINGER_MS = 500;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 120_000;

type WriteCallback = (err?: Error | null) => void;

function concat(chunks: Uint8Array[]): Buffer {
  if (chunks.length === 1) {
    const c = chunks[0];
    return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
  return Buffer.concat(chunks);
}

/** Sealed output below this many bytes goes to the socket as one joined buffer (handshake flights, small writes). */
const GATHER_FROM = 16 * 1024;
/** In a gathered write, pieces below this (record headers, tags, TLS 1.3's content-type byte) are joined with their neighbours. */
const JOIN_BELOW = 1024;

/**
 * Writes sealed records to the TCP socket; returns what `write` returns. A large output
 * (application data: 16 KiB records) goes as one gathered write, corked: each ciphertext
 * piece as it came from the cipher, the small pieces between them joined, so the
 * ciphertext is not copied again (one copy of a 64 KiB write cost ~100 µs per MiB).
 */
function writeSealed(raw: Socket, pieces: Uint8Array[]): boolean {
  let total = 0;
  for (const p of pieces) total += p.length;
  if (pieces.length === 1 || total < GATHER_FROM) return raw.write(concat(pieces));
  raw.cork();
  let from = 0;
  for (let i = 0; i < pieces.length; i++) {
    if (pieces[i].length < JOIN_BELOW) continue;
    if (from < i) raw.write(concat(pieces.slice(from, i)));
    raw.write(pieces[i]);
    from = i + 1;
  }
  if (from < pieces.length) raw.write(concat(pieces.slice(from)));
  raw.uncork();
  // What one write would have said: corked writes report the whole batch as buffered,
  // even when uncork then hands it all to the kernel at once.
  return raw.writableLength < raw.writableHighWaterMark;
}

/**
 * Runs the last writes of a connection (an alert, close_notify, FIN) without stack traces
 * for the errors they raise. Those writes often meet a peer that has already gone, and
 * Node then builds an EPIPE/ECONNRESET error whose stack it formats at once: ~10% of a
 * server's CPU per connection when clients close first (openssl s_time), for a stack of
 * Node's own frames that tells nobody anything.
 */
function withoutStackTraces(fn: () => void): void {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new KeyOperationError('internal', String(err));
}

/** node:tls's getPeerCertificate() object of a chain (leaf first); `detailed` links issuerCertificate. */
export function peerCertificateObject(chain: readonly X509Certificate[], detailed: boolean): PeerCertificate | Record<string, never> {
  if (chain.length === 0) return {};
  const objects = chain.map((c) => c.toLegacyObject());
  if (!detailed) return objects[0];
  for (let i = 0; i < objects.length; i++) {
    const issuer = objects[i + 1];
    // A self-signed last certificate is its own issuer, as node:tls reports it.
    (objects[i] as { issuerCertificate?: PeerCertificate }).issuerCertificate = issuer ?? (chain[i].checkIssued(chain[i]) ? objects[i] : undefined);
  }
  return objects[0];
}

/**
 * The driver of one engine connection over a TCP socket, shaped like `tls.TLSSocket` so
 * that `http`, `https`, `http2`, `ws` and Express run on it unchanged; the server socket,
 * the client socket and the proxy share it. It moves bytes, keeps both directions'
 * backpressure, runs key operations (aborting them when the connection goes away), asks
 * the role for its judgement of the peer's chain, and closes cleanly. The roles differ
 * only in how they report the handshake's end ({@link onSecure}, {@link onHandshakeFailure})
 * and judge the peer ({@link judgePeer}).
 *
 * Events beyond a Duplex's: `timeout`, `keyOperationError` (a key operation rejected),
 * `session` (client: a session to resume later, as node:tls's Buffer).
 *
 * Backpressure: a write's callback waits for the TCP socket to drain, so `write()`
 * returns false and 'drain' follows as with net.Socket; TCP reads pause while our
 * readable buffer is full or while the peer does not read what we send.
 *
 * Half-close: the peer's close_notify (or a bare FIN) ends the readable side only
 * (RFC 8446 6.1). With allowHalfOpen false (default) our side then ends too, after the
 * 'end' listeners ran, so a reply written in an 'end' listener is still sent; with
 * allowHalfOpen true it stays writable until `end()`. `end()` sends close_notify, then FIN.
 */
export abstract class EngineSocket extends Duplex {
  readonly encrypted = true;
  /** Whether the peer's certificate chain was verified (node:tls's meaning). */
  authorized = false;
  authorizationError: Error | null = null;
  /** Negotiated ALPN protocol, false when none. */
  alpnProtocol: string | false = false;
  /** Id correlating front logs with key-holder audit lines. */
  readonly connectionId: string;
  /** Whether the peer ended with close_notify (false after a bare TCP FIN: a possible truncation). */
  peerSentCloseNotify = false;

  /** Whether the handshake finished; `secure`/`secureConnect` has been emitted. */
  protected established = false;
  /** The peer's chain, once received (leaf first). */
  protected peerChain: X509Certificate[] = [];
  /** Made at the first key operation; aborted when the connection goes away. */
  private keyAbort: AbortController | null = null;
  private pendingWrite: { chunk: Buffer; cb: WriteCallback } | null = null;
  private handshakeFailed = false;
  private readEnded = false;
  /** Our readable buffer is full: stop reading the TCP socket. */
  private readBackpressure = false;
  /** Handshake/alert/KeyUpdate output is not draining: the peer is not reading; stop reading it. */
  private outputBackpressure = false;
  /** Destroy the TCP socket only after it has sent our last bytes and FIN (or a linger time passed). */
  private lingerOnDestroy = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private pendingKeyOperations = 0;
  private flushScheduled = false;
  /** Writes are held for our close_notify ({@link holdWritesForClose}). */
  private closeHold = false;
  /** The last session the peer gave us (client side), as {@link getSession} returns it. */
  private lastSession: { readonly encoded: Buffer; readonly ticket: Buffer } | null = null;

  /** A fresh id for a connection: the engine's key operations carry it before the socket exists. */
  static newConnectionId(): string {
    return randomUUID();
  }

  protected constructor(
    readonly rawSocket: Socket,
    protected readonly engine: TlsConnection,
    opts: EngineSocketOptions,
    connectionId: string,
  ) {
    super({ allowHalfOpen: opts.allowHalfOpen ?? false });
    this.connectionId = connectionId;
    rawSocket.on('data', (chunk: Buffer) => this.onRawData(chunk));
    rawSocket.on('end', () => this.onRawEnd());
    rawSocket.on('error', (err) => this.onRawError(err));
    rawSocket.on('close', () => this.onRawClose());
    rawSocket.on('timeout', () => {
      if (!this.destroyed) this.emit('timeout');
    });
    const timeout = opts.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (timeout > 0) {
      this.handshakeTimer = setTimeout(() => {
        this.failHandshake(new TlsHandshakeError(`TLS handshake timed out after ${timeout} ms`, undefined, undefined, 'ERR_TLS_HANDSHAKE_TIMEOUT'));
      }, timeout);
      this.handshakeTimer.unref();
    }
  }

  // ---- what the roles supply ----

  /** The handshake finished: emit the role's event ('secure', 'secureConnect'). */
  protected abstract onSecure(): void;
  /** The handshake failed: report it the role's way (the socket is destroyed after). */
  protected abstract onHandshakeFailure(err: TlsHandshakeError): void;
  /** Judges the peer's chain (setting `authorized` and `authorizationError`). */
  protected abstract judgePeer(req: PeerVerificationRequest): PeerVerdict;

  // ---- tls.TLSSocket-like surface ----

  /** 'TLSv1.3' (or 'TLSv1.2') once negotiated, else null. */
  getProtocol(): string | null {
    return this.engine.info.version ?? null;
  }

  getCipher(): CipherInfo | undefined {
    const i = this.engine.info;
    if (!i.cipherName) return undefined;
    return { name: i.opensslCipherName ?? i.cipherName, standardName: i.cipherName, version: i.version ?? 'TLSv1.3' };
  }

  /** The peer's certificate as node:tls reports it; an empty object when it sent none. */
  getPeerCertificate(detailed = false): PeerCertificate | Record<string, never> {
    return peerCertificateObject(this.peerChain, detailed);
  }

  getPeerX509Certificate(): X509Certificate | undefined {
    return this.peerChain[0];
  }

  /** The key-exchange group, e.g. `{ type: 'ECDH', name: 'X25519', size: 253 }`; null before it is chosen. */
  getEphemeralKeyInfo(): { type: string; name: string; size: number } | null {
    const g = this.engine.info.group;
    return g === undefined ? null : ephemeralKeyInfo(g);
  }

  /** Whether this handshake resumed an earlier session (no certificate, no key-holder call). */
  isSessionReused(): boolean {
    return this.engine.info.resumed === true;
  }

  /**
   * Client: the last session received (TLS 1.3: one per NewSessionTicket), encoded as the
   * `session` option of `connect` takes it; undefined before the first. Whoever holds it can
   * resume the session: store it as a secret.
   */
  getSession(): Buffer | undefined {
    return this.lastSession?.encoded;
  }

  /** Client: the ticket of the last session received, as the server sealed it (opaque). */
  getTLSTicket(): Buffer | undefined {
    return this.lastSession?.ticket;
  }

  /** Negotiation details: group, signature schemes, HelloRetryRequest. */
  get negotiated(): Readonly<NegotiatedInfo> {
    return this.engine.info;
  }

  /** RFC 8446 7.5 (TLS 1.3) or RFC 5705 (TLS 1.2) exporter, with node:tls's argument order. */
  exportKeyingMaterial(length: number, label: string, context?: Buffer): Buffer {
    if (!Number.isInteger(length) || length <= 0) throw new RangeError(`invalid exporter length ${length}`);
    if (!this.established) throw new Error('exportKeyingMaterial: the TLS handshake is not complete');
    return this.engine.exportKeyingMaterial(label, context, length);
  }

  /** Sends a TLS 1.3 KeyUpdate; `requestPeer` asks the peer to update its keys too. Throws on TLS 1.2. */
  keyUpdate(requestPeer = false): void {
    if (!this.established || this.destroyed) throw new Error('keyUpdate: the TLS connection is not established');
    this.engine.keyUpdate(requestPeer);
    this.flushOutput();
  }

  /** Number of key operations started for this connection and not yet settled. */
  get pendingKeyOperationCount(): number {
    return this.pendingKeyOperations;
  }

  get localAddress() {
    return this.rawSocket.localAddress;
  }
  get localPort() {
    return this.rawSocket.localPort;
  }
  get bytesRead(): number {
    return this.rawSocket.bytesRead;
  }
  get bytesWritten(): number {
    return this.rawSocket.bytesWritten;
  }
  address(): AddressInfo | Record<string, never> {
    return this.rawSocket.address();
  }
  /** Idle timeout of the TCP socket, as net.Socket#setTimeout (0 disables). */
  setTimeout(ms: number, cb?: () => void): this {
    this.rawSocket.setTimeout(ms);
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.rawSocket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.rawSocket.setKeepAlive(enable, delay);
    return this;
  }
  ref(): this {
    this.rawSocket.ref();
    return this;
  }
  unref(): this {
    this.rawSocket.unref();
    return this;
  }
  /** Like net.Socket#destroySoon: end, then destroy once everything is sent (http uses it). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  // ---- TCP side ----

  /** Sends what the engine produced so far (a client's ClientHello); the roles call it once set up. */
  protected startEngine(): void {
    this.pump();
  }

  private onRawData(chunk: Buffer): void {
    if (this.destroyed) return;
    if (!this.engineCall(() => this.engine.receive(chunk))) return;
    this.pump();
  }

  private onRawEnd(): void {
    if (this.destroyed) return;
    if (!this.established) {
      this.failHandshake(new TlsHandshakeError('peer closed the connection during the TLS handshake', undefined, undefined, 'ECONNRESET'));
      return;
    }
    // FIN without close_notify (truncation) ends the stream as node:tls does; nothing more can come.
    this.endReadable();
  }

  private onRawError(err: Error): void {
    if (this.destroyed) return;
    if (!this.established) {
      const code = (err as NodeJS.ErrnoException).code;
      this.failHandshake(new TlsHandshakeError(`TCP error during the TLS handshake: ${err.message}`, undefined, undefined, code ?? 'ERR_TLS_HANDSHAKE'));
      return;
    }
    this.destroy(err);
  }

  private onRawClose(): void {
    if (this.destroyed) return;
    if (!this.established) {
      this.failHandshake(new TlsHandshakeError('connection closed during the TLS handshake', undefined, undefined, 'ECONNRESET'));
      return;
    }
    this.destroy();
  }

  /** Pauses the TCP socket while either direction is backed up. */
  private updateRawFlow(): void {
    const paused = this.readBackpressure || this.outputBackpressure;
    if (paused && !this.rawSocket.isPaused()) this.rawSocket.pause();
    else if (!paused && this.rawSocket.isPaused() && !this.rawSocket.destroyed) this.rawSocket.resume();
  }

  // ---- engine pump ----

  /** Runs an engine call; a throw (an engine bug) closes the connection instead of crashing the process. */
  private engineCall(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      this.failWith(new TlsHandshakeError(`internal error in the TLS engine: ${toError(err).message}`, undefined, undefined, 'ERR_TLS_INTERNAL'));
      return false;
    }
  }

  private pump(): void {
    for (;;) {
      // Events before output: a key operation started here lets the ServerHello wait a tick.
      const events = this.engine.takeEvents();
      for (const ev of events) {
        if (this.destroyed) return;
        this.onEvent(ev);
      }
      if (this.destroyed) return;
      this.flushOutput();
      if (events.length === 0) return;
    }
  }

  /**
   * Sends what the engine produced outside `write` (handshake flights, alerts, KeyUpdates).
   * While a key operation is pending the rest of the flight waits one turn of the event
   * loop: by then the request has left for the key holder, so the engine's deferred work
   * (the TLS 1.3 key exchange and handshake keys) overlaps the holder's; and a holder that
   * answers at once (a local key) shares one write with the whole flight.
   */
  private flushOutput(): void {
    if (this.pendingKeyOperations > 0) {
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          if (this.destroyed || !this.engineCall(() => this.engine.runDeferredWork())) return;
          // Deferred work can only fail the connection (a bad key share): an error event.
          for (const ev of this.engine.takeEvents()) {
            if (this.destroyed) return;
            this.onEvent(ev);
          }
          if (!this.destroyed) this.writeEngineOutput();
        });
      }
      return;
    }
    this.writeEngineOutput();
  }

  private writeEngineOutput(): void {
    const out = this.engine.takeOutput();
    if (out.length === 0 || !this.rawSocket.writable) return;
    if (!writeSealed(this.rawSocket, out) && !this.outputBackpressure) {
      this.outputBackpressure = true;
      this.updateRawFlow();
      this.rawSocket.once('drain', () => {
        this.outputBackpressure = false;
        if (!this.destroyed) this.updateRawFlow();
      });
    }
  }

  private onEvent(ev: EngineEvent): void {
    switch (ev.type) {
      case 'keyOperation':
        this.startKeyOperation(ev.request);
        break;
      case 'verifyPeer':
        this.verifyPeer(ev.request);
        break;
      case 'handshakeComplete':
        this.onHandshakeComplete();
        break;
      case 'session':
        this.onSession(ev.session);
        break;
      case 'data':
        if (this.readEnded) break;
        if (!this.push(Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength))) {
          this.readBackpressure = true;
          this.updateRawFlow();
        }
        break;
      case 'peerClosed':
        this.peerSentCloseNotify = true;
        // A close_notify before the handshake is done ends it: nothing more will come.
        if (!this.established) {
          this.failHandshake(new TlsHandshakeError('peer sent close_notify during the TLS handshake', undefined, AlertDescription.close_notify, 'ECONNRESET'));
          break;
        }
        this.holdWritesForClose();
        this.endReadable();
        break;
      case 'error':
        this.failWith(new TlsHandshakeError(ev.error.message, ev.alertSent, ev.alertReceived));
        break;
    }
  }

  private verifyPeer(req: PeerVerificationRequest): void {
    let verdict: PeerVerdict;
    try {
      this.peerChain = req.chain.map((der) => new X509Certificate(der));
      verdict = this.judgePeer(req);
    } catch (err) {
      // Node could not read a certificate the engine's codec accepted, or a callback threw.
      verdict = { ok: false, alert: AlertDescription.bad_certificate, reason: `peer certificate: ${toError(err).message}` };
    }
    this.engineCall(() => this.engine.completePeerVerification(req.id, verdict));
  }

  private onSession(session: ClientSession): void {
    const encoded = Buffer.from(encodeClientSession(session));
    session.secret.fill(0);
    this.lastSession = { encoded, ticket: Buffer.from(session.ticket) };
    this.emit('session', encoded);
  }

  private onHandshakeComplete(): void {
    this.established = true;
    clearTimeout(this.handshakeTimer);
    this.alpnProtocol = this.engine.info.alpnProtocol ?? false;
    // A resumed handshake carries no certificate: the session's chain stands for the peer's.
    if (this.engine.info.resumed) this.peerChain = this.sessionChain();
    const queued = this.pendingWrite;
    this.pendingWrite = null;
    if (queued) this.writeNow(queued.chunk, queued.cb);
    this.onSecure();
  }

  private sessionChain(): X509Certificate[] {
    try {
      return (this.engine.info.peerCertificates ?? []).map((der) => new X509Certificate(der));
    } catch {
      return [];
    }
  }

  /**
   * The peer closed and our side will follow once the 'end' listeners ran (allowHalfOpen
   * false): what is written until then (the tickets after a client's Finished, a reply
   * written in an 'end' listener) goes out with our close_notify in one write instead of
   * one each. `_final`'s end() flushes it; the next turn of the loop at the latest.
   */
  private holdWritesForClose(): void {
    const raw = this.rawSocket;
    if (this.allowHalfOpen || this.closeHold || !raw.writable) return;
    this.closeHold = true;
    raw.cork();
    setImmediate(() => raw.uncork());
  }

  private endReadable(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    this.push(null);
  }

  private startKeyOperation(req: KeyOperationRequest): void {
    this.pendingKeyOperations++;
    runKeyOperation(req, (this.keyAbort ??= new AbortController()).signal).then(
      (result) => {
        this.pendingKeyOperations--;
        if (this.destroyed) return;
        if (this.engineCall(() => this.engine.completeKeyOperation(req.id, result))) this.pump();
      },
      (err: unknown) => {
        this.pendingKeyOperations--;
        if (this.destroyed) return;
        const error = toError(err);
        this.emit('keyOperationError', error);
        if (this.engineCall(() => this.engine.failKeyOperation(req.id, error))) this.pump();
      },
    );
  }

  private failWith(err: TlsHandshakeError): void {
    if (this.established) this.failEstablished(err);
    else this.failHandshake(err);
  }

  /** The handshake failed: send the alert, report it the role's way, close. */
  private failHandshake(err: TlsHandshakeError): void {
    if (this.handshakeFailed || this.destroyed) return;
    this.handshakeFailed = true;
    withoutStackTraces(() => this.writeEngineOutput());
    this.lingerOnDestroy = true;
    this.onHandshakeFailure(err);
    if (!this.destroyed) this.destroy();
  }

  private failEstablished(err: TlsHandshakeError): void {
    if (this.destroyed) return;
    withoutStackTraces(() => this.writeEngineOutput());
    this.lingerOnDestroy = true;
    this.destroy(err);
  }

  // ---- Duplex ----

  override _read(): void {
    if (this.readBackpressure) {
      this.readBackpressure = false;
      this.updateRawFlow();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCallback): void {
    if (!this.established) {
      // Writes before the handshake completes wait for it (Writable calls _write one at a time).
      this.pendingWrite = { chunk, cb };
      return;
    }
    this.writeNow(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: WriteCallback): void {
    // Coalesced writes become full records instead of one small record per chunk.
    this._write(concat(chunks.map((c) => c.chunk)), 'binary', cb);
  }

  /** Encrypts and sends; the callback waits for the TCP socket to drain, which is what bounds memory. */
  private writeNow(chunk: Buffer, cb: WriteCallback): void {
    if (chunk.length === 0) return cb();
    if (!this.engine.isConnected) return cb(new Error('TLS connection is closed for writing'));
    if (!this.engineCall(() => this.engine.write(chunk))) return cb(new Error('TLS connection failed'));
    const raw = this.rawSocket;
    if (!raw.writable) return cb(new Error('TCP connection is closed'));
    if (writeSealed(raw, this.engine.takeOutput())) return cb();
    const done = (err?: Error) => {
      raw.off('drain', onDrain);
      raw.off('close', onClose);
      cb(err);
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('TCP connection closed before the data was sent'));
    raw.on('drain', onDrain);
    raw.on('close', onClose);
  }

  override _final(cb: WriteCallback): void {
    // close_notify, then TCP FIN; 'finish' waits for the FIN to be sent.
    this.engineCall(() => this.engine.close());
    const raw = this.rawSocket;
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      raw.off('close', once);
      cb();
    };
    let ending = false;
    withoutStackTraces(() => {
      this.flushOutput();
      if (!raw.writable) return;
      ending = true;
      raw.on('close', once);
      raw.end(once);
    });
    if (!ending) cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    clearTimeout(this.handshakeTimer);
    if (this.pendingKeyOperations > 0) this.keyAbort?.abort(new KeyOperationError('aborted', 'the TLS connection closed'));
    this.engine.destroy();
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    if (pending) pending.cb(new Error('TLS connection closed before the handshake completed'));
    const raw = this.rawSocket;
    // Both close_notifys are exchanged and our FIN is out: the peer may send nothing more.
    // With its FIN in too, the socket closes at once; before it, a short linger.
    const closedCleanly = err === null && this.writableFinished && this.peerSentCloseNotify;
    if (raw.destroyed || (closedCleanly && raw.readableEnded)) raw.destroy();
    else if (closedCleanly) lingerClose(raw, CLEAN_LINGER_MS);
    else if (this.lingerOnDestroy || (err === null && this.writableFinished)) lingerClose(raw, LINGER_MS);
    else raw.destroy();
    cb(err);
  }
}

/**
 * Closes a TCP socket after what was written (an alert, a close_notify) has gone out:
 * FIN now, keep reading (and discarding) so the peer's FIN is seen, destroy when the
 * peer closes or after `ms`. Destroying at once could turn unread input into a
 * reset that makes the peer drop our last bytes.
 */
function lingerClose(raw: Socket, ms: number): void {
  if (raw.writable) raw.end();
  raw.resume();
  const timer = setTimeout(() => raw.destroy(), ms);
  timer.unref();
  raw.once('close', () => clearTimeout(timer));
}
