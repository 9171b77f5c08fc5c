import type { SessionState } from './sessionState.js';
import { MAX_TICKET_LIFETIME, sessionAgeProblem } from './sessionState.js';

/** Options of a `SessionCache12`. */
export interface SessionCache12Options {
  /** Most sessions held; the least recently used goes first (default 10,000: ~1.5 MB). */
  maxEntries?: number;
  /** Seconds a session may be resumed after its full handshake (default 7200, as the ticket key ring; at most 604800). */
  lifetime?: number;
  /** Clock, ms since the epoch. */
  now?: () => number;
}

/**
 * TLS 1.2 resumption by session id (RFC 5246 7.4.1.2): a bounded in-memory map from the
 * 32-byte session id the server chose to the session's state, least recently used out
 * first, expired entries dropped when met. The cache keeps its own copy of each master
 * secret and wipes it when the entry leaves. One cache per server; sessions are not shared across processes (that
 * is what tickets are for).
 */
export class SessionCache12 {
  /** Seconds a session stays resumable; the server stamps it on the sessions it stores. */
  readonly lifetime: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** Map iteration order is insertion order: re-inserting on use keeps it LRU. */
  private readonly entries = new Map<string, SessionState>();

  constructor(opts: SessionCache12Options = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError('session cache maxEntries must be a positive integer');
    this.lifetime = opts.lifetime ?? 7200;
    if (!Number.isInteger(this.lifetime) || this.lifetime < 1 || this.lifetime > MAX_TICKET_LIFETIME) {
      throw new RangeError(`session cache lifetime must be 1..${MAX_TICKET_LIFETIME} seconds`);
    }
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Stores `state` under `sessionId` (1..32 bytes), evicting the least recently used beyond the bound. */
  set(sessionId: Uint8Array, state: SessionState): void {
    if (sessionId.length < 1 || sessionId.length > 32) throw new RangeError('a TLS 1.2 session id is 1..32 bytes');
    if (state.version !== 'TLSv1.2') throw new RangeError('the session cache holds TLS 1.2 sessions');
    const id = key(sessionId);
    this.drop(id);
    this.entries.set(id, { ...state, secret: Buffer.from(state.secret) });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest);
    }
  }

  /** The session for `sessionId`, if held and not expired (an expired one is dropped). */
  get(sessionId: Uint8Array): SessionState | undefined {
    if (sessionId.length < 1 || sessionId.length > 32) return undefined;
    const id = key(sessionId);
    const state = this.entries.get(id);
    if (state === undefined) return undefined;
    if (sessionAgeProblem(state, this.now()) !== undefined) {
      this.drop(id);
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, state);
    // A copy: the cache wipes its own when the entry leaves, which may be mid-handshake.
    return { ...state, secret: Buffer.from(state.secret) };
  }

  /** Forgets a session (after a fatal alert on a connection that used it, RFC 5246 7.2.2). */
  delete(sessionId: Uint8Array): void {
    this.drop(key(sessionId));
  }

  private drop(id: string): void {
    const state = this.entries.get(id);
    if (state === undefined) return;
    this.entries.delete(id);
    state.secret.fill(0);
  }
}

function key(sessionId: Uint8Array): string {
  return Buffer.from(sessionId.buffer, sessionId.byteOffset, sessionId.byteLength).toString('latin1');
}
