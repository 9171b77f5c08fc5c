/**
 * The fleet's session ticket keys, made and rotated by keyd, sealed in its store, served to
 * the fronts whose rule says `ticketKeys` (GET_TICKET_KEYS). Fronts that share them resume
 * each other's sessions, and no ticket key ever sits on a front's disk.
 *
 * Each key has a sealing period of `rotateMs` starting at its `createdAt`. keyd makes every
 * key one period ahead of it and serves it as "next" meanwhile, so by the time any front
 * seals with it every front that fetched since the last rotation can already open its
 * tickets; fronts fetch again after each rotation (TicketKeyFetcher). A key is served, and
 * kept, until it last sealed a ticket `lifetimeSeconds` ago: createdAt + rotateMs + lifetime.
 */
import { randomBytes } from 'node:crypto';
import type { SealedStore, StoredTicketKey } from './store.js';

/** How keyd rotates ticket keys (keyd.json `ticketKeys`). */
export interface TicketKeySettings {
  rotateMs: number;
  lifetimeSeconds: number;
}

/** The keys a front gets: the sealing key first, then the older ones still accepted (newest first), then the next one. */
export interface ServedTicketKeys {
  keys: StoredTicketKey[];
  /** ms until the next key starts sealing; 0 when there is no next key yet. */
  nextRotationMs: number;
}

/** What a rotation did, for the audit line, the log and the metrics (names only, never keys). */
export interface TicketKeyRotation {
  made: string[];
  removed: string[];
}

/** What the keeper needs beyond the store. */
export interface TicketKeyKeeperDeps {
  /** Clock, ms since the epoch (tests inject one). */
  now?: () => number;
  /** Called after every change of the key set (at start too, when it made or removed keys). */
  onRotated?: (r: TicketKeyRotation) => void;
  /** Called when bringing the keys up to date failed (e.g. the store could not be written); it is retried. */
  onError?: (e: Error) => void;
}

/** A failed rotation is tried again this soon (the served keys stay valid meanwhile). */
const RETRY_MS = 10_000;

const hex = (k: StoredTicketKey): string => k.name.toString('hex');

/** Makes, rotates, retires and serves the ticket keys of one keyd. */
export class TicketKeyKeeper {
  readonly #store: SealedStore;
  readonly #s: TicketKeySettings;
  readonly #now: () => number;
  readonly #deps: TicketKeyKeeperDeps;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Updates run one at a time: each writes to the store. */
  #updating: Promise<void> = Promise.resolve();

  constructor(store: SealedStore, settings: TicketKeySettings, deps: TicketKeyKeeperDeps = {}) {
    this.#store = store;
    this.#s = settings;
    this.#now = deps.now ?? Date.now;
    this.#deps = deps;
  }

  get settings(): TicketKeySettings {
    return this.#s;
  }

  /** Brings the keys up to date (rejects when the store cannot be written) and keeps them so. */
  async start(): Promise<void> {
    await this.update();
    this.#arm();
  }

  /** Stops rotating (the keys stay in the store for the next start). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #expired(k: StoredTicketKey, now: number): boolean {
    return now >= k.createdAt + this.#s.rotateMs + this.#s.lifetimeSeconds * 1000;
  }

  /**
   * Makes the current and the next key when missing (current: the newest whose period has
   * begun and not ended; after a keyd outage longer than a period, a new one from now) and
   * removes the expired ones.
   */
  update(): Promise<void> {
    const run = this.#updating.then(() => this.#update());
    this.#updating = run.catch(() => undefined);
    return run;
  }

  async #update(): Promise<void> {
    const now = this.#now();
    const r: TicketKeyRotation = { made: [], removed: [] };
    for (const k of this.#store.ticketKeys()) {
      if (!this.#expired(k, now)) continue;
      r.removed.push(hex(k));
      await this.#store.deleteTicketKey(k.name);
    }
    let current = this.#currentAt(now);
    if (!current || now >= current.createdAt + this.#s.rotateMs) current = await this.#make(now, r);
    const nextAt = current.createdAt + this.#s.rotateMs;
    if (!this.#store.ticketKeys().some((k) => k.createdAt >= nextAt)) await this.#make(nextAt, r);
    if (r.made.length > 0 || r.removed.length > 0) this.#deps.onRotated?.(r);
  }

  async #make(createdAt: number, r: TicketKeyRotation): Promise<StoredTicketKey> {
    const name = randomBytes(16);
    const secret = randomBytes(32);
    try {
      const k = await this.#store.putTicketKey(name, secret, createdAt);
      r.made.push(hex(k));
      return k;
    } finally {
      secret.fill(0);
    }
  }

  /** The newest key whose sealing period has begun. */
  #currentAt(now: number): StoredTicketKey | undefined {
    const begun = this.#store.ticketKeys().filter((k) => k.createdAt <= now && !this.#expired(k, now));
    return begun[begun.length - 1];
  }

  /** Runs the next update when the next key starts sealing. */
  #arm(delayMs?: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const served = this.served();
    const delay = delayMs ?? (served.nextRotationMs > 0 ? served.nextRotationMs : RETRY_MS);
    // setTimeout takes at most 2^31-1 ms; a longer wait is re-armed on the way.
    this.#timer = setTimeout(() => {
      this.update().then(
        () => this.#arm(),
        (e: Error) => {
          this.#deps.onError?.(e);
          this.#arm(RETRY_MS);
        },
      );
    }, Math.min(delay, 0x7fffffff));
    this.#timer.unref();
  }

  /** The keys to hand a front now: sealing key first, older accepted ones newest first, then the next. */
  served(): ServedTicketKeys {
    const now = this.#now();
    const live = this.#store.ticketKeys().filter((k) => !this.#expired(k, now));
    const begun = live.filter((k) => k.createdAt <= now);
    const ahead = live.filter((k) => k.createdAt > now);
    // A clock that went back may leave no begun key: the earliest then seals.
    const current = begun.length > 0 ? begun[begun.length - 1] : ahead.shift();
    if (!current) return { keys: [], nextRotationMs: 0 };
    const older = begun.slice(0, -1).reverse();
    // No next key yet (it is being made at this very rotation, or making it fails): 0 asks
    // the front to come back soon rather than at the next rotation, which it could not open.
    const nextRotationMs = ahead.length > 0 ? ahead[0].createdAt - now : 0;
    return { keys: [current, ...older, ...ahead], nextRotationMs };
  }
}
