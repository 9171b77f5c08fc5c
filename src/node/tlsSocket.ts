import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { KeyOperationError } from '../keys/keyOperations.js';
import { TlsServerConnection } from '../tls/engine/serverConnection.js';
import type { ServerConfig } from '../tls/engine/config.js';
import type { EngineEvent, KeyOperationRequest } from '../tls/engine/events.js';
import { alertName } from '../tls/wire/alerts.js';

/** Why a handshake failed, for `tlsClientError` listeners and logs. Never carries secrets. */
export class TlsHandshakeError extends Error {
  constructor(message: string, readonly alertSent?: number, readonly alertReceived?: number) {
    super(message);
    this.name = 'TlsHandshakeError';
  }

  get code(): string {
    if (this.alertSent !== undefined) return `ERR_TLS_ALERT_SENT_${alertName(this.alertSent).toUpperCase()}`;
    if (this.alertReceived !== undefined) return `ERR_TLS_ALERT_RECEIVED_${alertName(this.alertReceived).toUpperCase()}`;
    return 'ERR_TLS_HANDSHAKE';
  }
}

export interface CipherInfo {
  name: string;
  standardName: string;
  version: string;
}

/**
 * A server-side TLS socket over a TCP socket, shaped like `tls.TLSSocket` so that
 * `http`, `http2`, `ws` and Express run on it unchanged. The TLS work is done by the
 * sans-IO engine; this class only moves bytes and runs key operations.
 */
export class KeywardTLSSocket extends Duplex {
  readonly encrypted = true;
  /** Client certificate authentication is not requested, so never authorized. */
  authorized = false;
  authorizationError: Error | null = null;
  alpnProtocol: string | false = false;
  servername: string | false = false;
  /** Id correlating front logs with key-holder audit lines. */
  readonly connectionId = randomUUID();
  private readonly engine: TlsServerConnection;
  private readonly keyAbort = new AbortController();
  private pendingWrites: { chunk: Buffer; cb: (err?: Error | null) => void }[] = [];
  private secureEstablished = false;
  private readPaused = false;

  constructor(readonly rawSocket: Socket, config: ServerConfig) {
    super({ allowHalfOpen: false });
    this.engine = new TlsServerConnection(config, {
      peerAddress: rawSocket.remoteAddress ? `${rawSocket.remoteAddress}:${rawSocket.remotePort}` : undefined,
      connectionId: this.connectionId,
    });
    rawSocket.on('data', (chunk: Buffer) => {
      this.engine.receive(chunk);
      this.pump();
    });
    rawSocket.on('end', () => {
      // TCP FIN: with or without close_notify, no more data will come.
      this.push(null);
      if (!this.secureEstablished) this.fail(new TlsHandshakeError('peer closed the connection during the handshake'));
    });
    rawSocket.on('error', (err) => this.destroy(err));
    rawSocket.on('close', () => this.destroy());
    rawSocket.on('timeout', () => this.emit('timeout'));
  }

  // ---- tls.TLSSocket-like surface ----

  getProtocol(): string | null {
    return this.engine.info.version ?? null;
  }

  getCipher(): CipherInfo | undefined {
    const i = this.engine.info;
    if (!i.cipherName) return undefined;
    return { name: i.opensslCipherName ?? i.cipherName, standardName: i.cipherName, version: i.version ?? 'TLSv1.3' };
  }

  /** No client certificate is requested: an empty object, as node:tls returns then. */
  getPeerCertificate(_detailed?: boolean): Record<string, never> {
    return {};
  }

  getEphemeralKeyInfo(): { type: string; name?: string } | null {
    const g = this.engine.info.group;
    return g === undefined ? null : { type: 'ECDH', name: String(g) };
  }

  /** Negotiation details: group, signature scheme, HelloRetryRequest. */
  get negotiated() {
    return this.engine.info;
  }

  exportKeyingMaterial(length: number, label: string, context?: Buffer): Buffer {
    return this.engine.exportKeyingMaterial(label, context ?? Buffer.alloc(0), length);
  }

  /** Sends a TLS 1.3 KeyUpdate; `requestPeer` asks the client to update its keys too. */
  keyUpdate(requestPeer = false): void {
    this.engine.keyUpdate(requestPeer);
    this.flushOutput();
  }

  get remoteAddress() {
    return this.rawSocket.remoteAddress;
  }
  get remotePort() {
    return this.rawSocket.remotePort;
  }
  get remoteFamily() {
    return this.rawSocket.remoteFamily;
  }
  get localAddress() {
    return this.rawSocket.localAddress;
  }
  get localPort() {
    return this.rawSocket.localPort;
  }
  address() {
    return this.rawSocket.address();
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.rawSocket.setTimeout(ms);
    if (cb) this.once('timeout', cb);
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
  get bufferSize(): number {
    return this.rawSocket.writableLength;
  }

  // ---- engine pump ----

  private pump(): void {
    this.flushOutput();
    for (const ev of this.engine.takeEvents()) this.onEvent(ev);
    this.flushOutput();
  }

  private flushOutput(): void {
    const out = this.engine.takeOutput();
    if (out.length === 0 || this.rawSocket.destroyed) return;
    const ok = this.rawSocket.write(out.length === 1 ? out[0] : Buffer.concat(out));
    if (!ok && !this.readPaused) {
      // The peer is not reading what we send; stop reading from it until it does.
      this.readPaused = true;
      this.rawSocket.pause();
      this.rawSocket.once('drain', () => {
        this.readPaused = false;
        if (!this.isPaused()) this.rawSocket.resume();
      });
    }
  }

  private onEvent(ev: EngineEvent): void {
    switch (ev.type) {
      case 'keyOperation':
        this.runKeyOperation(ev.request);
        break;
      case 'handshakeComplete': {
        this.secureEstablished = true;
        const info = this.engine.info;
        this.alpnProtocol = info.alpnProtocol ?? false;
        this.servername = info.serverName ?? false;
        const queued = this.pendingWrites;
        this.pendingWrites = [];
        for (const w of queued) this.writeNow(w.chunk, w.cb);
        this.emit('secure');
        break;
      }
      case 'data':
        if (!this.push(Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength))) this.rawSocket.pause();
        break;
      case 'peerClosed':
        this.push(null);
        break;
      case 'error':
        this.fail(new TlsHandshakeError(ev.error.message, ev.alertSent, ev.alertReceived));
        break;
    }
  }

  private runKeyOperation(req: KeyOperationRequest): void {
    const signal = this.keyAbort.signal;
    req.key.sign(req.scheme, req.message, req.context, signal).then(
      (sig) => {
        if (this.destroyed) return;
        this.engine.completeKeyOperation(req.id, sig);
        this.pump();
      },
      (err: unknown) => {
        if (this.destroyed) return;
        const e = err instanceof Error ? err : new KeyOperationError('internal', String(err));
        this.emit('keyOperationError', e);
        this.engine.failKeyOperation(req.id, e);
        this.pump();
      },
    );
  }

  private fail(err: TlsHandshakeError): void {
    if (this.destroyed) return;
    this.flushOutput();
    if (!this.secureEstablished) {
      this.emit('_tlsClientError', err);
      this.rawSocket.end();
      this.destroy();
      return;
    }
    this.rawSocket.end();
    this.destroy(err);
  }

  // ---- Duplex ----

  override _read(): void {
    if (!this.readPaused && this.rawSocket.isPaused()) this.rawSocket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.secureEstablished) {
      this.pendingWrites.push({ chunk, cb });
      return;
    }
    this.writeNow(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const data = chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this._write(data, 'binary', cb);
  }

  private writeNow(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.engine.isClosed) return cb(new Error('TLS connection closed'));
    try {
      this.engine.write(chunk);
    } catch (err) {
      return cb(err as Error);
    }
    const out = this.engine.takeOutput();
    const data = out.length === 1 ? out[0] : Buffer.concat(out);
    if (this.rawSocket.write(data)) cb();
    else this.rawSocket.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.engine.close();
    this.flushOutput();
    this.rawSocket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.keyAbort.abort(new KeyOperationError('aborted', 'connection closed'));
    this.engine.destroy();
    for (const w of this.pendingWrites) w.cb(new Error('TLS connection closed before the handshake completed'));
    this.pendingWrites = [];
    if (!this.rawSocket.destroyed) this.rawSocket.destroy();
    cb(err);
  }
}
