/**
 * Admission control for keyd's mutual-TLS port before the peer has authenticated. Anyone
 * who can reach the port can open TCP connections and never start (or finish) a TLS
 * handshake; such connections must neither fill the slots of authenticated fronts nor
 * stay open. So a connection that has not authenticated:
 *
 * - has its own budget (`maxPending` in all, `maxPendingPerSource` per source address),
 *   separate from the authenticated fronts' `maxConnections`;
 * - is closed `timeoutMs` after it was accepted (Node's tls.Server only reports its own
 *   handshake timeout, it never closes the socket);
 * - makes room, when a budget is full, by closing the *oldest* pending connection of the
 *   same source (per-source budget) or of the source holding the most (total budget). A
 *   real front finishes its handshake within milliseconds, so it is rarely the oldest:
 *   idle connections only push out each other.
 */
import type { Socket } from 'node:net';

/** Why a pre-handshake connection was closed by keyd. */
export type PendingDropReason = 'handshake-timeout' | 'evicted';

/** Budgets of {@link HandshakeGuard}. */
export interface HandshakeGuardLimits {
  /** Connections that have not authenticated yet, in all. */
  maxPending: number;
  /** Connections that have not authenticated yet, per source address. */
  maxPendingPerSource: number;
  /** Time from accept to an authenticated TLS session, ms. */
  timeoutMs: number;
}

interface Pending {
  socket: Socket;
  source: string;
  timer: NodeJS.Timeout;
}

/** A connection's identity while it lives: the TLS socket over a raw one has the same peer address and port. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

/** Tracks and bounds the connections of one listener that are still in their handshake. */
export class HandshakeGuard {
  /** By peer key; insertion order is age order: the first entry is the oldest. */
  readonly #all = new Map<string, Pending>();
  readonly #bySource = new Map<string, Set<string>>();

  constructor(
    private readonly limits: HandshakeGuardLimits,
    private readonly events: {
      /** A connection keyd closed (after it is no longer counted). */
      dropped(source: string, reason: PendingDropReason): void;
      /** The number of pending connections changed. */
      counted(pending: number): void;
    },
  ) {}

  /** Connections accepted and not yet authenticated (or closed). */
  get pending(): number {
    return this.#all.size;
  }

  /**
   * Counts a newly accepted raw connection, closing older pending ones if a budget is
   * full, and arms its handshake timer. The connection leaves the count when it closes or
   * {@link authenticated} names it. False when the socket is already closed.
   */
  admit(socket: Socket): boolean {
    const source = socket.remoteAddress;
    // Already reset by the peer: nothing to guard.
    if (source === undefined) {
      socket.destroy();
      return false;
    }
    const key = peerKey(socket);
    const mine = this.#bySource.get(source);
    if (mine && mine.size >= this.limits.maxPendingPerSource) this.#drop(first(mine), 'evicted');
    if (this.#all.size >= this.limits.maxPending) this.#drop(this.#oldestOfLargestSource(), 'evicted');
    let set = this.#bySource.get(source);
    if (!set) this.#bySource.set(source, (set = new Set()));
    set.add(key);
    const timer = setTimeout(() => this.#drop(key, 'handshake-timeout'), this.limits.timeoutMs);
    timer.unref();
    this.#all.set(key, { socket, source, timer });
    socket.once('close', () => {
      if (this.#all.get(key)?.socket === socket) this.#forget(key);
    });
    this.events.counted(this.#all.size);
    return true;
  }

  /** The connection (the TLS socket over an admitted raw one) has authenticated: it no longer counts. */
  authenticated(socket: Socket): void {
    this.#forget(peerKey(socket));
  }

  /** Closes every pending connection (shutdown). */
  closeAll(): void {
    for (const [key, p] of [...this.#all]) {
      this.#forget(key);
      p.socket.destroy();
    }
  }

  #oldestOfLargestSource(): string {
    let best: Set<string> | undefined;
    for (const set of this.#bySource.values()) if (!best || set.size > best.size) best = set;
    return first(best!);
  }

  #drop(key: string, reason: PendingDropReason): void {
    const p = this.#all.get(key);
    if (!p) return;
    this.#forget(key);
    p.socket.destroy();
    this.events.dropped(p.source, reason);
  }

  #forget(key: string): void {
    const p = this.#all.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    this.#all.delete(key);
    const set = this.#bySource.get(p.source);
    set?.delete(key);
    if (set?.size === 0) this.#bySource.delete(p.source);
    this.events.counted(this.#all.size);
  }
}

function first(set: Set<string>): string {
  return set.values().next().value as string;
}
