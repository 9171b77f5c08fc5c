/**
 * remoteKey: the keyd client backend. The private key stays in keyd; this process holds
 * only the public key and a few authenticated connections.
 *
 * - Many operations are multiplexed and pipelined over a small pool of connections
 *   (default 2), each request tagged with an id; frames written in one turn of the event
 *   loop leave in one write.
 * - Every operation has a deadline ('timeout'); an AbortSignal sends CANCEL to keyd.
 * - When a connection dies its pending operations fail at once with 'unavailable'; the
 *   pool reconnects in the background with exponential backoff and fails over across
 *   the configured keyd addresses, in order.
 * - Connections are pinged periodically; one that stops answering is dropped.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { schemeFitsVersion, schemesForKey, type SignatureScheme } from '../tls/crypto/signatureSchemes.js';
import {
  CONNECTION_REQUEST_ID,
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  FrameType,
  PROTOCOL_VERSION,
  decodeError,
  decodeKeyInfos,
  decodeListKeysResult,
  decodeOutput,
  decodeTicketKeysResult,
  decodeTrafficSecrets,
  encodeDecryptPremasterRequest,
  encodeDeleteKeyRequest,
  encodeDeletePskRequest,
  encodeFrame,
  encodeGenerateKeyRequest,
  encodeGetKeyRequest,
  encodeIssueDelegatedCredentialRequest,
  encodePskMasterSecretRequest,
  encodePutKeyRequest,
  encodePutPskRequest,
  encodeTls13PskRequest,
  signRequestWriter,
  TLS13_PSK_FRAMES,
  type Frame,
  type GeneratedKeyType,
  type KeyInfo,
  type KeySelector,
  type ListKeysResult,
  type TicketKeysResult,
  type Tls13PskMessage,
  type TlvWriter,
} from '../keyd/protocol.js';
import { verifyDelegatedCredential, type DelegatedCredentialIssuer, type DelegatedCredentialRequest } from './delegatedCredentialIssuer.js';
import { keyIdOf } from './keyId.js';
import {
  KeyOperationError,
  UnknownPskIdentityError,
  type KeyOperations,
  vouchForSignatures,
  type OperationContext,
  type PskMasterSecretRequest,
  type PskOperations,
  type Tls13PskOperations,
  type Tls13PskRequest,
  type Tls13PskScheduleRequest,
} from './keyOperations.js';
import { hashLength } from '../tls/crypto/hash.js';
import { checkTls13PskRequest } from './tls13PskSteps.js';

/** How to reach and authenticate to keyd. */
export interface KeydClientOptions {
  /** keyd addresses in order of preference: 'tls://HOST:PORT' or 'unix:/path/to/socket'. */
  addresses: string[];
  /** CA certificate(s) that issued keyd's certificate, PEM. */
  ca?: string | Buffer;
  /** This front's client certificate (chain), PEM. Required for tls:// addresses. */
  cert?: string | Buffer;
  /** This front's client private key, PEM (the key of the mTLS link, not the TLS server key). */
  key?: string | Buffer;
  /** Name to check keyd's certificate against; default the host of the address. */
  tlsServerName?: string;
  /** Connections in the pool (default 2). */
  poolSize?: number;
  /** Default deadline per operation in ms (default 2000). */
  deadlineMs?: number;
  /** Deadline for establishing one connection in ms (default 2000). */
  connectTimeoutMs?: number;
  /** Ping interval in ms (default 5000; 0 turns pings off). */
  pingIntervalMs?: number;
  /** Reconnect backoff: first delay and cap in ms (defaults 100 and 2000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Largest reply frame accepted (default 1 MiB). */
  maxFrameBytes?: number;
  /**
   * Bound mode: send the handshake messages with each sign request, so keyd recomputes
   * what it signs (required by keyd for fronts whose rule says `bound`). Default false:
   * about 1-4 KB more per request (the certificate chain travels with it).
   */
  bound?: boolean;
}

/** State of one pooled connection, for health reports. */
export interface KeydConnectionHealth {
  address: string | null;
  state: 'connected' | 'connecting' | 'backoff' | 'closed';
  inFlight: number;
  /** Round trip of the last ping, when one answered. */
  rttMs?: number;
  /** Why the last connection attempt or connection failed. */
  lastError?: string;
}

/** What {@link KeydClient.health} reports. */
export interface KeydHealth {
  /** At least one connection answered a ping just now. */
  healthy: boolean;
  connections: KeydConnectionHealth[];
}

/** Per-request options. */
export interface RequestOptions {
  signal?: AbortSignal;
  deadlineMs?: number;
}

type Address = { kind: 'tls'; host: string; port: number; text: string } | { kind: 'unix'; path: string; text: string };

/** Parses 'tls://HOST:PORT' or 'unix:/path'. */
export function parseKeydAddress(text: string): Address {
  if (text.startsWith('unix:')) {
    const path = text.slice(5).replace(/^\/\/(?=\/)/, '');
    if (path.length === 0) throw new Error(`keyd address ${JSON.stringify(text)}: missing socket path`);
    return { kind: 'unix', path, text };
  }
  const m = /^tls:\/\/(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})\/?$/.exec(text);
  if (!m || Number(m[3]) > 65535 || Number(m[3]) === 0) throw new Error(`keyd address ${JSON.stringify(text)}: expected tls://HOST:PORT or unix:/path`);
  return { kind: 'tls', host: m[1] ?? m[2], port: Number(m[3]), text };
}

interface Pending {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  /** performance.now() by which keyd must have answered. */
  deadlineAt: number;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** Longest deadline a timer can hold (node fires longer ones after 1 ms). */
const MAX_DEADLINE_MS = 0x7fffffff;

/** A deadline in ms: a finite number from 1 to MAX_DEADLINE_MS, or a RangeError. */
function checkDeadline(ms: number): number {
  if (!Number.isFinite(ms) || ms < 1 || ms > MAX_DEADLINE_MS) throw new RangeError(`keyd deadline must be 1..${MAX_DEADLINE_MS} ms, not ${String(ms)}`);
  return ms;
}

function unavailable(message: string): KeyOperationError {
  return new KeyOperationError('unavailable', message);
}

/** One connection to keyd: request ids, pending requests and their deadlines. */
class ClientConnection {
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** One timer for every pending request's deadline, due at the earliest (see #armDeadline). */
  #deadlineTimer: NodeJS.Timeout | undefined;
  #deadlineDue = Infinity;
  #closed = false;
  #closeReason = 'connection to keyd closed';
  lastRttMs: number | undefined;
  readonly closed: Promise<void>;
  #markClosed!: () => void;

  constructor(
    private readonly socket: Socket,
    readonly address: Address,
    maxFrameBytes: number,
  ) {
    this.#decoder = new FrameDecoder(maxFrameBytes, true);
    this.closed = new Promise((r) => (this.#markClosed = r));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => socket.destroy());
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#closeReason = `connection to keyd ${address.text} failed: ${e.code ?? e.message}`;
    });
    socket.on('close', () => this.#onClose());
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (e) {
      this.destroy(`keyd sent a malformed frame: ${(e as Error).message}`);
      return;
    }
    for (const f of frames) {
      if (f.version !== PROTOCOL_VERSION) {
        this.destroy(`keyd answered with protocol version ${f.version}`);
        return;
      }
      if (f.id === CONNECTION_REQUEST_ID && f.type === FrameType.ERROR) {
        let msg = 'connection error';
        try {
          msg = decodeError(f.body).message;
        } catch {
          // keep the generic text
        }
        this.destroy(`keyd closed the connection: ${msg}`);
        return;
      }
      const p = this.#pending.get(f.id);
      // Answers to requests that timed out or were cancelled are dropped here.
      if (!p) continue;
      this.#settle(f.id, p);
      p.resolve(f);
    }
  }

  #settle(id: number, p: Pending): void {
    this.#pending.delete(id);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    // An idle connection's timer stays armed (cheaper than re-arming it per request) but
    // keeps nothing alive.
    if (this.#pending.size === 0) this.#deadlineTimer?.unref();
  }

  /**
   * Makes sure the deadline timer fires by `at`. Requests mostly share one deadline
   * length, so theirs come in order and a timer already armed for an earlier one covers
   * them: a lone request costs no timer of its own (a timer per request was a measurable
   * part of the latency a front adds).
   */
  #armDeadline(at: number): void {
    if (this.#deadlineTimer && this.#deadlineDue <= at) {
      this.#deadlineTimer.ref();
      return;
    }
    clearTimeout(this.#deadlineTimer);
    this.#deadlineDue = at;
    this.#deadlineTimer = setTimeout(() => this.#expire(), Math.max(0, Math.ceil(at - performance.now())));
  }

  /** Fails the requests whose deadline has passed and arms the timer for the next one. */
  #expire(): void {
    this.#deadlineTimer = undefined;
    this.#deadlineDue = Infinity;
    // Node's timers count whole milliseconds of loop time: allow for firing a little early.
    const now = performance.now() + 1;
    let next = Infinity;
    for (const [id, p] of this.#pending) {
      if (p.deadlineAt <= now) this.#giveUp(id, p, new KeyOperationError('timeout', 'keyd did not answer within the deadline'));
      else if (p.deadlineAt < next) next = p.deadlineAt;
    }
    if (next !== Infinity) this.#armDeadline(next);
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#deadlineTimer);
    const err = unavailable(this.#closeReason);
    for (const [id, p] of this.#pending) {
      this.#settle(id, p);
      p.reject(err);
    }
    this.#markClosed();
  }

  /**
   * Writes at once: a request is the start of the handshake's critical path, and node runs
   * each socket's callback (and the ticks after it) on its own, so holding it for the end
   * of the tick only delayed it (by 20-100 µs here) without batching anything. (Batching a
   * whole loop turn with setImmediate cost a lone request more and showed no gain under load.)
   */
  #write(buf: Buffer): void {
    this.socket.write(buf);
  }

  #allocId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
      if (!this.#pending.has(id)) return id;
    }
  }

  /** Sends a request; resolves with the answering frame (RESULT, ERROR or PONG). */
  request(type: FrameType, body: Uint8Array | TlvWriter, deadlineAt: number, signal: AbortSignal | undefined): Promise<Frame> {
    if (this.#closed) return Promise.reject(unavailable(this.#closeReason));
    if (signal?.aborted) return Promise.reject(new KeyOperationError('aborted', 'operation aborted'));
    const id = this.#allocId();
    return new Promise<Frame>((resolve, reject) => {
      const p: Pending = { resolve, reject, deadlineAt };
      if (signal) {
        p.signal = signal;
        p.onAbort = () => this.#giveUp(id, p, new KeyOperationError('aborted', 'operation aborted'));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#pending.set(id, p);
      this.#armDeadline(deadlineAt);
      this.#write(encodeFrame(type, id, body));
    });
  }

  /** Stops waiting for a request (timed out or aborted): keyd is told to cancel it. */
  #giveUp(id: number, p: Pending, err: KeyOperationError): void {
    this.#settle(id, p);
    this.#cancel(id);
    p.reject(err);
  }

  #cancel(id: number): void {
    if (!this.#closed) this.#write(encodeFrame(FrameType.CANCEL, id));
  }

  /** Pings keyd; resolves with the round trip in ms. */
  async ping(deadlineMs: number): Promise<number> {
    const t0 = performance.now();
    const f = await this.request(FrameType.PING, new Uint8Array(0), t0 + deadlineMs, undefined);
    if (f.type !== FrameType.PONG) throw unavailable('keyd answered PING with something else');
    this.lastRttMs = performance.now() - t0;
    return this.lastRttMs;
  }

  destroy(reason?: string): void {
    if (reason) this.#closeReason = reason;
    this.socket.destroy();
  }
}

/** Opens one connection to `address`, bounded by `timeoutMs`. */
function openConnection(address: Address, opts: KeydClientOptions, timeoutMs: number): Promise<ClientConnection> {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    let socket: Socket;
    const readyEvent = address.kind === 'tls' ? 'secureConnect' : 'connect';
    if (address.kind === 'tls') {
      const servername = opts.tlsServerName ?? (isIP(address.host) ? undefined : address.host);
      socket = tlsConnect({
        host: address.host,
        port: address.port,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        minVersion: 'TLSv1.3',
        ...(servername ? { servername } : {}),
      });
    } else {
      socket = netConnect({ path: address.path });
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(unavailable(`cannot connect to keyd ${address.text}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (e: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(unavailable(`cannot connect to keyd ${address.text}: ${e.code ?? e.message}`));
    };
    socket.once('error', onError);
    socket.once(readyEvent, () => {
      socket.off('error', onError);
      const conn = new ClientConnection(socket, address, opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
      // In TLS 1.3 the client finishes its handshake before keyd has checked the client
      // certificate: only an answered PING shows that keyd accepted this connection.
      conn.ping(Math.max(1, startedAt + timeoutMs - performance.now())).then(
        () => {
          clearTimeout(timer);
          resolve(conn);
        },
        (e: Error) => {
          clearTimeout(timer);
          conn.destroy();
          reject(unavailable(`keyd ${address.text} refused the connection: ${e.message}`));
        },
      );
    });
  });
}

class Slot {
  conn: ClientConnection | undefined;
  connecting: Promise<ClientConnection> | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  failures = 0;
  lastError: string | undefined;
}

/**
 * A pool of connections to keyd, shared by every RemoteKey made from it (see
 * {@link KeydClient.key}) and by the admin client.
 */
export class KeydClient {
  readonly #addresses: Address[];
  readonly #slots: Slot[];
  readonly #opts: KeydClientOptions;
  readonly #deadlineMs: number;
  #pingTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(opts: KeydClientOptions) {
    if (!Array.isArray(opts.addresses) || opts.addresses.length === 0) throw new Error('keyd client needs at least one address');
    this.#addresses = opts.addresses.map(parseKeydAddress);
    if (this.#addresses.some((a) => a.kind === 'tls') && (!opts.cert || !opts.key)) throw new Error('tls:// keyd addresses need a client certificate and key (mutual TLS)');
    const size = opts.poolSize ?? 2;
    if (!Number.isInteger(size) || size < 1 || size > 64) throw new RangeError('poolSize must be 1..64');
    this.#opts = opts;
    this.#deadlineMs = checkDeadline(opts.deadlineMs ?? 2_000);
    this.#slots = Array.from({ length: size }, () => new Slot());
  }

  /**
   * Creates the pool and waits until one connection is up. Rejects with
   * KeyOperationError('unavailable') when no address answers.
   */
  static async connect(opts: KeydClientOptions): Promise<KeydClient> {
    const c = new KeydClient(opts);
    const attempts = c.#slots.map((s) => c.#connectSlot(s));
    try {
      await Promise.any(attempts);
    } catch {
      const why = c.#slots.map((s) => s.lastError).find((e) => e) ?? 'no address answered';
      c.close();
      throw unavailable(why);
    }
    const interval = opts.pingIntervalMs ?? 5_000;
    if (interval > 0) {
      c.#pingTimer = setInterval(() => c.#pingAll(), interval);
      c.#pingTimer.unref();
    }
    return c;
  }

  /** Tries the addresses in order; on failure schedules a retry with backoff. */
  #connectSlot(slot: Slot): Promise<ClientConnection> {
    if (slot.connecting) return slot.connecting;
    const attempt = (async () => {
      let last = 'no address';
      for (const a of this.#addresses) {
        if (this.#closed) break;
        try {
          return await openConnection(a, this.#opts, this.#opts.connectTimeoutMs ?? 2_000);
        } catch (e) {
          last = (e as Error).message;
        }
      }
      throw unavailable(last);
    })();
    slot.connecting = attempt;
    attempt.then(
      (conn) => {
        slot.connecting = undefined;
        if (this.#closed) {
          conn.destroy();
          return;
        }
        slot.conn = conn;
        slot.failures = 0;
        slot.lastError = undefined;
        void conn.closed.then(() => {
          if (slot.conn === conn) slot.conn = undefined;
          slot.lastError = 'connection lost';
          this.#scheduleRetry(slot);
        });
      },
      (e: Error) => {
        slot.connecting = undefined;
        slot.lastError = e.message;
        slot.failures += 1;
        this.#scheduleRetry(slot);
      },
    );
    return attempt;
  }

  #scheduleRetry(slot: Slot): void {
    if (this.#closed || slot.retryTimer || slot.connecting) return;
    const initial = this.#opts.backoff?.initialMs ?? 100;
    const max = this.#opts.backoff?.maxMs ?? 2_000;
    const base = Math.min(max, initial * 2 ** Math.min(slot.failures, 20));
    // Jitter spreads reconnects of many fronts after a keyd restart.
    const delay = slot.failures === 0 ? initial * Math.random() : base * (0.5 + Math.random() / 2);
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined;
      void this.#connectSlot(slot).catch(() => undefined);
    }, delay);
    slot.retryTimer.unref();
  }

  #pingAll(): void {
    const timeout = Math.min(this.#deadlineMs, 2_000);
    for (const s of this.#slots) {
      const conn = s.conn;
      if (!conn?.isOpen) continue;
      conn.ping(timeout).catch(() => conn.destroy('keyd did not answer a ping'));
    }
  }

  /** The open connection with the fewest requests in flight, if any. */
  #pickOpen(): ClientConnection | undefined {
    let best: ClientConnection | undefined;
    for (const s of this.#slots) {
      const c = s.conn;
      if (c?.isOpen && (!best || c.inFlight < best.inFlight)) best = c;
    }
    return best;
  }

  /** Waits (within the deadline) for a connection being set up. */
  async #waitForConnection(deadlineAt: number): Promise<ClientConnection> {
    if (this.#closed) throw unavailable('keyd client is closed');
    const connecting = this.#slots.map((s) => s.connecting).filter((p): p is Promise<ClientConnection> => p !== undefined);
    if (connecting.length === 0) {
      throw unavailable(`no connection to keyd (${this.#slots.map((s) => s.lastError).find((e) => e) ?? 'reconnecting'})`);
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        Promise.any(connecting),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new KeyOperationError('timeout', 'no connection to keyd within the deadline')), Math.max(0, deadlineAt - performance.now()));
        }),
      ]);
    } catch (e) {
      if (e instanceof KeyOperationError) throw e;
      throw unavailable(`no connection to keyd (${this.#slots.map((s) => s.lastError).find((x) => x) ?? 'connect failed'})`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends one request and resolves with the RESULT body. Rejects with KeyOperationError:
   * the code keyd answered, 'timeout', 'aborted', or 'unavailable'; with a RangeError for
   * a `deadlineMs` outside 1..2^31-1.
   */
  async request(type: FrameType, body: Uint8Array | TlvWriter, opts: RequestOptions = {}): Promise<Uint8Array> {
    const deadlineAt = performance.now() + (opts.deadlineMs === undefined ? this.#deadlineMs : checkDeadline(opts.deadlineMs));
    if (opts.signal?.aborted) throw new KeyOperationError('aborted', 'operation aborted');
    // No await when a connection is open: a lone operation's round trip is the latency a front adds.
    const conn = this.#pickOpen() ?? (await this.#waitForConnection(deadlineAt));
    const f = await conn.request(type, body, deadlineAt, opts.signal);
    if (f.type === FrameType.RESULT) return f.body;
    if (f.type === FrameType.ERROR) {
      let e;
      try {
        e = decodeError(f.body);
      } catch {
        throw new KeyOperationError('internal', 'keyd sent a malformed error');
      }
      if (e.code === 'unknown-psk-identity') throw new UnknownPskIdentityError();
      throw new KeyOperationError(e.code, `keyd: ${e.message}`);
    }
    throw new KeyOperationError('internal', `keyd answered with frame type ${f.type}`);
  }

  /** Pings every open connection and reports the pool's state. */
  async health(deadlineMs = Math.min(this.#deadlineMs, 2_000)): Promise<KeydHealth> {
    const connections = await Promise.all(
      this.#slots.map(async (s): Promise<KeydConnectionHealth & { ok: boolean }> => {
        const c = s.conn;
        if (c?.isOpen) {
          try {
            const rtt = await c.ping(deadlineMs);
            return { ok: true, address: c.address.text, state: 'connected', inFlight: c.inFlight, rttMs: rtt };
          } catch (e) {
            return { ok: false, address: c.address.text, state: 'connected', inFlight: c.inFlight, lastError: (e as Error).message };
          }
        }
        const state = this.#closed ? 'closed' : s.connecting ? 'connecting' : 'backoff';
        return { ok: false, address: null, state, inFlight: 0, ...(s.lastError ? { lastError: s.lastError } : {}) };
      }),
    );
    return { healthy: connections.some((c) => c.ok), connections: connections.map(({ ok: _ok, ...rest }) => rest) };
  }

  /** Public facts about the keys a selector names (by id: one; by name: newest first). */
  async getKeys(sel: KeySelector, opts: RequestOptions = {}): Promise<KeyInfo[]> {
    return decodeKeyInfos(await this.request(FrameType.GET_KEY, encodeGetKeyRequest({ key: sel }), opts));
  }

  /**
   * A RemoteKey for one key, sharing this pool. With `serverName`, the newest key serving
   * it (of `keyType`, when given) is chosen.
   */
  async key(sel: { keyId?: string; serverName?: string; keyType?: string }, deadlineMs?: number): Promise<RemoteKey> {
    return RemoteKey.open(this, sel, false, deadlineMs ?? this.#deadlineMs);
  }

  /**
   * The fleet's session ticket keys (GET_TICKET_KEYS; this front's rule needs `ticketKeys`
   * and the link mutual TLS). The secrets are views of the answer's buffer: install them,
   * then wipe them (TicketKeyFetcher does both).
   */
  async ticketKeys(opts: RequestOptions = {}): Promise<TicketKeysResult> {
    const body = await this.request(FrameType.GET_TICKET_KEYS, new Uint8Array(0), opts);
    try {
      return decodeTicketKeysResult(body);
    } catch (e) {
      body.fill(0);
      throw new KeyOperationError('internal', `keyd sent malformed ticket keys: ${(e as Error).message}`);
    }
  }

  /** PSK operations through this pool. */
  psk(deadlineMs?: number): RemotePsk {
    return new RemotePsk(this, deadlineMs ?? this.#deadlineMs);
  }

  /** Whether sign requests carry their handshake messages (see KeydClientOptions.bound). */
  get bound(): boolean {
    return this.#opts.bound === true;
  }

  /** Stops reconnecting and pinging and closes every connection; pending operations fail with 'unavailable'. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pingTimer);
    for (const s of this.#slots) {
      clearTimeout(s.retryTimer);
      s.conn?.destroy('keyd client closed');
    }
  }
}

/**
 * PSK secrets computed in keyd (the PSK never leaves it): TLS 1.2 master secrets, and the
 * TLS 1.3 binders and transcript-bound secrets (docs/tls13-psk.md), each checked for its
 * length before it is used.
 */
export class RemotePsk implements PskOperations, Tls13PskOperations {
  constructor(
    private readonly client: KeydClient,
    private readonly deadlineMs: number,
    private readonly owner = false,
  ) {}

  async tls12MasterSecret(req: PskMasterSecretRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const out = decodeOutput(await this.client.request(FrameType.PSK_MASTER_SECRET, encodePskMasterSecretRequest({ req, ctx }), { signal, deadlineMs: this.deadlineMs }));
    if (out.length !== 48) throw new KeyOperationError('internal', 'keyd returned a master secret of the wrong length');
    return out;
  }

  /** One TLS 1.3 PSK step in keyd, its RESULT read by `read` (which copies what it keeps); the frame's bytes are zeroed after. */
  async #tls13<T>(m: Tls13PskMessage, signal: AbortSignal, read: (body: Uint8Array) => T): Promise<T> {
    checkTls13PskRequest(m.req);
    const body = await this.client.request(TLS13_PSK_FRAMES[m.step], encodeTls13PskRequest({ ...m, ctx: { ...m.ctx, tlsVersion: 'TLSv1.3' } }), { signal, deadlineMs: this.deadlineMs });
    try {
      return read(body);
    } finally {
      body.fill(0);
    }
  }

  /** Copies of `secrets`, each of the hash's length, or 'internal'. */
  #sized(hash: Tls13PskRequest['hash'], ...secrets: (Uint8Array | undefined)[]): Buffer[] {
    const n = hashLength(hash);
    if (secrets.some((x) => x === undefined || x.length !== n)) throw new KeyOperationError('internal', 'keyd returned a TLS 1.3 secret of the wrong length');
    return secrets.map((x) => Buffer.from(x!));
  }

  tls13Binder(req: Tls13PskRequest & { transcriptHash: Uint8Array }, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return this.#tls13({ step: 'binder', req: { ...req, dheSecret: null }, ctx }, signal, (b) => this.#sized(req.hash, decodeOutput(b))[0]);
  }

  tls13VerifyBinder(req: Tls13PskRequest & { transcriptHash: Uint8Array; binder: Uint8Array }, ctx: OperationContext, signal: AbortSignal): Promise<boolean> {
    return this.#tls13({ step: 'verify-binder', req: { ...req, dheSecret: null }, ctx }, signal, (b) => {
      const out = decodeOutput(b);
      if (out.length !== 1 || out[0] > 1) throw new KeyOperationError('internal', 'keyd returned a malformed binder verdict');
      return out[0] === 1;
    });
  }

  tls13HandshakeSecrets(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array }> {
    return this.#tls13({ step: 'handshake-secrets', req, ctx }, signal, (b) => {
      const t = decodeTrafficSecrets(b, false);
      const [client, server] = this.#sized(req.hash, t.client, t.server);
      return { client, server };
    });
  }

  tls13ApplicationSecrets(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<{ client: Uint8Array; server: Uint8Array; exporter: Uint8Array }> {
    return this.#tls13({ step: 'application-secrets', req, ctx }, signal, (b) => {
      const t = decodeTrafficSecrets(b, true);
      const [client, server, exporter] = this.#sized(req.hash, t.client, t.server, t.exporter);
      return { client, server, exporter };
    });
  }

  tls13ResumptionMasterSecret(req: Tls13PskScheduleRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return this.#tls13({ step: 'resumption-master-secret', req, ctx }, signal, (b) => this.#sized(req.hash, decodeOutput(b))[0]);
  }

  async close(): Promise<void> {
    if (this.owner) this.client.close();
  }
}

/**
 * A key held by keyd. Implements KeyOperations (and PskOperations, for PSKs keyd holds
 * next to it). Create with {@link connectRemoteKey} or {@link KeydClient.key}.
 */
export class RemoteKey implements KeyOperations, PskOperations, DelegatedCredentialIssuer {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  /** What keyd reported about the key (server names, source, type). */
  readonly info: KeyInfo;
  /** TLS 1.2 RSA key exchange, for RSA keys only: keyd decrypts with implicit rejection. */
  readonly decryptPremaster?: (ciphertext: Uint8Array, clientVersion: number, ctx: OperationContext, signal: AbortSignal) => Promise<Uint8Array>;
  readonly #psk: RemotePsk;

  private constructor(
    readonly client: KeydClient,
    info: KeyInfo,
    private readonly ownsClient: boolean,
    private readonly deadlineMs: number,
  ) {
    this.info = info;
    let pub: KeyObject;
    try {
      pub = createPublicKey({ key: Buffer.from(info.spki), format: 'der', type: 'spki' });
    } catch {
      throw new KeyOperationError('internal', 'keyd sent a public key that does not parse');
    }
    // The id is the hash of the key: a keyd that sends a mismatching pair is refused.
    if (keyIdOf(pub) !== info.keyId) throw new KeyOperationError('internal', 'keyd sent a public key that does not match its key id');
    this.publicKey = pub;
    this.keyId = info.keyId;
    // keyd signs with node:crypto, or verifies a token's result before it answers.
    if (new.target === RemoteKey) vouchForSignatures(this);
    const possible = new Set<number>(schemesForKey(pub));
    this.schemes = info.schemes.filter((s) => possible.has(s)) as SignatureScheme[];
    this.#psk = new RemotePsk(client, deadlineMs);
    if (pub.asymmetricKeyType === 'rsa') {
      this.decryptPremaster = async (ciphertext, clientVersion, ctx, signal) => {
        const body = encodeDecryptPremasterRequest({ key: { keyId: this.keyId }, ciphertext, clientVersion, ctx });
        const out = decodeOutput(await this.client.request(FrameType.DECRYPT_PREMASTER, body, { signal, deadlineMs: this.deadlineMs }));
        if (out.length !== 48) throw new KeyOperationError('internal', 'keyd returned a premaster of the wrong length');
        return out;
      };
    }
  }

  /** @internal */
  static async open(client: KeydClient, sel: { keyId?: string; serverName?: string; keyType?: string }, ownsClient: boolean, deadlineMs: number): Promise<RemoteKey> {
    let selector: KeySelector;
    if (sel.keyId) selector = { keyId: sel.keyId.toLowerCase() };
    else if (sel.serverName) selector = { serverName: sel.serverName };
    else throw new KeyOperationError('bad-request', 'give keyId or serverName to choose a key in keyd');
    const infos = (await client.getKeys(selector, { deadlineMs })).filter((k) => !sel.keyType || k.keyType === sel.keyType);
    const info = 'keyId' in selector ? infos.find((k) => k.keyId === (selector as { keyId: string }).keyId) : infos[0];
    if (!info) throw new KeyOperationError('unknown-key', `keyd has no ${sel.keyType ? `${sel.keyType} ` : ''}key for ${sel.keyId ?? sel.serverName}`);
    return new RemoteKey(client, info, ownsClient, deadlineMs);
  }

  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    if (!schemeFitsVersion(this.schemes, scheme, ctx.tlsVersion)) throw new KeyOperationError('unsupported', `scheme ${scheme} does not fit this key`);
    const handshakeMessages = this.client.bound ? ctx.handshakeMessages : undefined;
    const body = signRequestWriter({ key: { keyId: this.keyId }, scheme, message, ctx, ...(handshakeMessages ? { handshakeMessages } : {}) });
    return decodeOutput(await this.client.request(FrameType.SIGN, body, { signal, deadlineMs: this.deadlineMs }));
  }

  tls12MasterSecret(req: PskMasterSecretRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    return this.#psk.tls12MasterSecret(req, ctx, signal);
  }

  /**
   * Has keyd sign a delegated credential for this key's certificate (the front's rule
   * needs `"delegatedCredentials": true`). Returns the signature, which must verify with
   * this key over the RFC 9345 content: anything else is 'internal'.
   */
  async issueDelegatedCredential(request: DelegatedCredentialRequest, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    const body = encodeIssueDelegatedCredentialRequest({ key: { keyId: this.keyId }, request, ctx });
    const sig = decodeOutput(await this.client.request(FrameType.ISSUE_DELEGATED_CREDENTIAL, body, { signal, deadlineMs: this.deadlineMs }));
    if (!verifyDelegatedCredential(this.publicKey, request, sig)) throw new KeyOperationError('internal', 'keyd returned a delegated credential signature that does not verify');
    return sig;
  }

  /** Pings keyd over the pool's connections. */
  health(): Promise<KeydHealth> {
    return this.client.health();
  }

  /** Closes the pool when this key created it; a shared pool stays open. */
  async close(): Promise<void> {
    if (this.ownsClient) this.client.close();
  }
}

/** Options for {@link connectRemoteKey}: where keyd is, and which key. */
export interface RemoteKeyOptions extends KeydClientOptions {
  /** Hex SHA-256 of the key's SubjectPublicKeyInfo (e.g. keyIdOf(certificate.publicKey)). */
  keyId?: string;
  /** A server name the key serves, when the front has no certificate yet. */
  serverName?: string;
  /** With serverName: only keys of this type ('ec-p256', 'rsa', 'ed25519', ...). */
  keyType?: string;
}

/**
 * Connects to keyd and returns the key: its public half comes from keyd (GET_KEY), so a
 * front can start with only a key id or a server name. The returned key owns its
 * connection pool; `close()` releases it. To share one pool among many keys, use
 * `KeydClient.connect()` and `client.key(...)`.
 */
export async function connectRemoteKey(opts: RemoteKeyOptions): Promise<RemoteKey> {
  const client = await KeydClient.connect(opts);
  try {
    return await RemoteKey.open(client, opts, true, opts.deadlineMs ?? 2_000);
  } catch (e) {
    client.close();
    throw e;
  }
}

/** Connects to keyd for PSK operations only. `close()` releases the pool. */
export async function connectRemotePsk(opts: KeydClientOptions): Promise<RemotePsk> {
  const client = await KeydClient.connect(opts);
  return new RemotePsk(client, opts.deadlineMs ?? 2_000, true);
}

/** Provisioning: the admin API. Needs an admin identity in keyd's configuration. */
export class KeydAdmin {
  constructor(
    readonly client: KeydClient,
    private readonly deadlineMs = 60_000,
  ) {}

  /** Imports a private key (PKCS#8 DER or a private KeyObject) serving `serverNames`. */
  async putKey(privateKey: KeyObject | Uint8Array, serverNames: string[] = []): Promise<KeyInfo> {
    const pkcs8 = privateKey instanceof Uint8Array ? privateKey : privateKey.export({ type: 'pkcs8', format: 'der' });
    try {
      const infos = decodeKeyInfos(await this.client.request(FrameType.PUT_KEY, encodePutKeyRequest({ pkcs8, serverNames }), { deadlineMs: this.deadlineMs }));
      if (infos.length !== 1) throw new KeyOperationError('internal', 'keyd answered PUT_KEY without the key');
      return infos[0];
    } finally {
      if (!(privateKey instanceof Uint8Array)) pkcs8.fill(0);
    }
  }

  /** Has keyd generate a key that never leaves it. */
  async generateKey(keyType: GeneratedKeyType, serverNames: string[] = []): Promise<KeyInfo> {
    const infos = decodeKeyInfos(await this.client.request(FrameType.GENERATE_KEY, encodeGenerateKeyRequest({ keyType, serverNames }), { deadlineMs: this.deadlineMs }));
    if (infos.length !== 1) throw new KeyOperationError('internal', 'keyd answered GENERATE_KEY without the key');
    return infos[0];
  }

  async listKeys(): Promise<ListKeysResult> {
    return decodeListKeysResult(await this.client.request(FrameType.LIST_KEYS, new Uint8Array(0), { deadlineMs: this.deadlineMs }));
  }

  async deleteKey(keyId: string): Promise<void> {
    await this.client.request(FrameType.DELETE_KEY, encodeDeleteKeyRequest({ keyId }), { deadlineMs: this.deadlineMs });
  }

  /** Stores a PSK with its TLS 1.3 hash (keyd's default: sha256). */
  async putPsk(identity: Uint8Array, secret: Uint8Array, hash?: 'sha256' | 'sha384'): Promise<void> {
    await this.client.request(FrameType.PUT_PSK, encodePutPskRequest({ identity, secret, ...(hash ? { hash } : {}) }), { deadlineMs: this.deadlineMs });
  }

  async deletePsk(identity: Uint8Array): Promise<void> {
    await this.client.request(FrameType.DELETE_PSK, encodeDeletePskRequest({ identity }), { deadlineMs: this.deadlineMs });
  }

  close(): void {
    this.client.close();
  }
}

/** Connects an admin client (one connection, no pings). */
export async function connectKeydAdmin(opts: KeydClientOptions): Promise<KeydAdmin> {
  const client = await KeydClient.connect({ poolSize: 1, pingIntervalMs: 0, ...opts });
  return new KeydAdmin(client, opts.deadlineMs ?? 60_000);
}
