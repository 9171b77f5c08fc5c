/**
 * One front connection on keyd's side: frames in, replies out. Requests that finish at
 * once (see KeydService.handle) are answered in the turn that read them: their audit
 * lines are written, then their replies, one write each per chunk read. Others run
 * concurrently; each reply goes out as soon as it and its audit line are ready.
 * CANCEL aborts a request still running (queued work is dropped, running work's result
 * discarded); closing the connection cancels everything it had in flight.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { KeyOperationError } from '../keys/keyOperations.js';
import {
  CONNECTION_REQUEST_ID,
  FrameDecoder,
  FrameType,
  MAX_PING_PAYLOAD,
  PROTOCOL_VERSION,
  encodeError,
  encodeFrame,
  frameTypeName,
  isKnownFrameType,
  type Frame,
  type TlvWriter,
  type WireErrorCode,
} from './protocol.js';
import { isOperation, type KeydService, type Reply, type Session } from './service.js';

/** Per-connection limits. */
export interface ConnectionLimits {
  maxFrameBytes: number;
  maxInFlightPerConnection: number;
  /** A frame must be whole this long after its first byte arrived, ms. */
  frameTimeoutMs: number;
  /** Closed after this long with nothing in flight and no bytes either way, ms; 0 never. */
  idleTimeoutMs: number;
}

/** Why keyd closed an authenticated connection on its own. */
export type ConnectionCloseReason = 'frame-timeout' | 'idle-timeout';

/** Serves one socket until it closes. */
export class KeydConnection {
  readonly #decoder: FrameDecoder;
  readonly #inFlight = new Map<number, AbortController>();
  /** Frames to write at the end of the current chunk (or at once, for a finished async request). */
  #out: Buffer[] = [];
  /** Replies finished during the current chunk, waiting for their audit lines to be written. */
  #answered: Array<{ id: number; reply: Reply }> = [];
  #closed = false;
  /** Armed while a frame is partly read: the rest must come within limits.frameTimeoutMs. */
  #frameTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    readonly session: Session,
    private readonly service: KeydService,
    private readonly limits: ConnectionLimits,
    private readonly logger: Logger,
    private readonly onTimeout: (reason: ConnectionCloseReason) => void = () => {},
  ) {
    this.#decoder = new FrameDecoder(limits.maxFrameBytes, true);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    if (limits.idleTimeoutMs > 0) {
      socket.setTimeout(limits.idleTimeoutMs);
      // A slow key holder is not idleness: only a connection with nothing in flight is closed.
      socket.on('timeout', () => {
        if (this.#inFlight.size === 0) this.#timedOut('idle-timeout', `no request for ${limits.idleTimeoutMs} ms`);
      });
    }
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => logger.debug({ client: session.peer.display, err: e.code ?? e.message }, 'connection error'));
    socket.on('close', () => this.#onClose());
    socket.on('drain', () => socket.resume());
  }

  /** Requests of this connection still being handled. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (e) {
      // A bad length cannot be skipped: say why, then close.
      const msg = e instanceof KeyOperationError ? e.message : 'malformed frame';
      this.logger.warn({ client: this.session.peer.display, front: this.session.remote, reason: msg }, 'closing connection: protocol error');
      void this.service.auditRejected(this.session, 'protocol', 'bad-request', msg);
      this.#send(FrameType.ERROR, CONNECTION_REQUEST_ID, encodeError({ code: 'bad-request', message: msg }));
      this.#flush();
      this.#closed = true;
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1_000).unref();
      return;
    }
    this.#watchPartialFrame(frames.length > 0);
    // Only the last frame of a chunk may sign on keyd's loop: the others must not wait for it.
    for (let i = 0; i < frames.length; i++) this.#onFrame(frames[i], i === frames.length - 1);
    if (this.#answered.length > 0) {
      const answered = this.#answered;
      this.#answered = [];
      const written = this.service.writeAudit();
      for (const a of answered) {
        const r = written ? a.reply : this.service.auditUnavailable;
        this.#send(r.type, a.id, r.body, r.wipe);
      }
    }
    if (this.#out.length > 0) this.#flush();
    this.service.afterReplies();
  }

  /**
   * A frame begun must end within frameTimeoutMs of its first byte, however slowly the
   * rest trickles in (a peer sending part of a frame, then nothing, holds no slot for long).
   */
  #watchPartialFrame(framesEnded: boolean): void {
    const partial = this.#decoder.buffered > 0;
    if (this.#frameTimer && (framesEnded || !partial)) {
      clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
    }
    if (partial && !this.#frameTimer) {
      this.#frameTimer = setTimeout(() => this.#timedOut('frame-timeout', `a frame was not complete ${this.limits.frameTimeoutMs} ms after its first byte`), this.limits.frameTimeoutMs);
      this.#frameTimer.unref();
    }
  }

  #timedOut(reason: ConnectionCloseReason, message: string): void {
    if (this.#closed) return;
    this.logger.warn({ client: this.session.peer.display, front: this.session.remote, reason: message }, `closing connection: ${reason}`);
    if (reason === 'frame-timeout') void this.service.auditRejected(this.session, 'protocol', 'timeout', message);
    this.onTimeout(reason);
    this.#closed = true;
    this.socket.destroy();
  }

  #reject(id: number, code: WireErrorCode, message: string, extra: { supportedVersions?: number[] } = {}): void {
    this.#send(FrameType.ERROR, id, encodeError({ code, message, ...extra }));
  }

  #onFrame(f: Frame, lastOfRead: boolean): void {
    if (f.version !== PROTOCOL_VERSION) {
      const msg = `protocol version ${f.version} is not supported (this keyd speaks ${PROTOCOL_VERSION})`;
      void this.service.auditRejected(this.session, 'protocol', 'unsupported', msg);
      this.#reject(f.id, 'unsupported', msg, { supportedVersions: [PROTOCOL_VERSION] });
      return;
    }
    switch (f.type) {
      case FrameType.PING:
        if (f.body.length > MAX_PING_PAYLOAD) this.#reject(f.id, 'bad-request', `PING payload longer than ${MAX_PING_PAYLOAD} bytes`);
        else this.#send(FrameType.PONG, f.id, f.body);
        return;
      case FrameType.CANCEL:
        this.#inFlight.get(f.id)?.abort();
        return;
      default:
        break;
    }
    if (!isOperation(f.type)) {
      const msg = isKnownFrameType(f.type) ? `${frameTypeName(f.type)} is not a request` : `unknown frame type ${frameTypeName(f.type)}`;
      void this.service.auditRejected(this.session, 'protocol', isKnownFrameType(f.type) ? 'bad-request' : 'unsupported', msg);
      this.#reject(f.id, isKnownFrameType(f.type) ? 'bad-request' : 'unsupported', msg);
      return;
    }
    if (f.id === CONNECTION_REQUEST_ID) {
      this.#reject(f.id, 'bad-request', 'request id 0 is reserved');
      return;
    }
    if (this.#inFlight.has(f.id)) {
      this.#reject(f.id, 'bad-request', `request id ${f.id} is already in flight`);
      return;
    }
    if (this.#inFlight.size >= this.limits.maxInFlightPerConnection) {
      this.#reject(f.id, 'unavailable', `more than ${this.limits.maxInFlightPerConnection} requests in flight on this connection`);
      return;
    }
    // One controller per request, made on first use and kept: after the connection closes,
    // asking again must still see the aborted one.
    let ac: AbortController | undefined;
    const controller = (): AbortController => (ac ??= this.#controller(f.id));
    const r = this.service.handle(this.session, f, () => controller().signal, lastOfRead);
    if (!(r instanceof Promise)) {
      this.#answered.push({ id: f.id, reply: r });
      return;
    }
    // From here on a CANCEL (or the connection closing) can reach it.
    const own = controller();
    void r.then((reply) => {
      if (this.#inFlight.get(f.id) === own) this.#inFlight.delete(f.id);
      if (reply && !this.#closed) {
        this.#send(reply.type, f.id, reply.body, reply.wipe);
        this.#flush();
      }
      this.service.afterReplies();
    });
  }

  /** The AbortController of a request still running, made on first use. */
  #controller(id: number): AbortController {
    let ac = this.#inFlight.get(id);
    if (!ac) {
      ac = new AbortController();
      // A closed connection has nobody to answer: its requests start out cancelled.
      if (this.#closed) ac.abort();
      else this.#inFlight.set(id, ac);
    }
    return ac;
  }

  #send(type: FrameType, id: number, body: Uint8Array | TlvWriter, wipe = false): void {
    if (this.#closed || this.socket.destroyed) return;
    if (!wipe) {
      this.#out.push(encodeFrame(type, id, body));
      return;
    }
    // A frame with secrets leaves in a write of its own (no copy into a batch) and is
    // zeroed once the socket has taken it (TLS has encrypted it by then).
    this.#flush();
    const frame = encodeFrame(type, id, body);
    if (body instanceof Uint8Array) body.fill(0);
    if (!this.socket.write(frame, () => frame.fill(0))) this.socket.pause();
  }

  #flush(): void {
    if (this.#out.length === 0 || this.socket.destroyed) return;
    const data = this.#out.length === 1 ? this.#out[0] : Buffer.concat(this.#out);
    this.#out = [];
    // A front that does not read its replies must not make keyd buffer without bound.
    if (!this.socket.write(data)) this.socket.pause();
  }

  #onClose(): void {
    this.#closed = true;
    clearTimeout(this.#frameTimer);
    for (const ac of this.#inFlight.values()) ac.abort();
    this.#inFlight.clear();
  }

  /** Ends the connection after writing what is pending. */
  end(): void {
    this.#flush();
    this.#closed = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }

  /** Drops the connection at once (in-flight requests are cancelled). */
  destroy(): void {
    this.socket.destroy();
  }
}
