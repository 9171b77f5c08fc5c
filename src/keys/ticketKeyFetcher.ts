/**
 * A front's side of keyd-served session ticket keys: fetches the fleet's keys from keyd
 * (GET_TICKET_KEYS) at start and again after each of keyd's rotations, and installs them
 * into a TicketKeyRing, so that every front of the fleet seals and opens the same tickets
 * and no ticket key ever sits on a front's disk.
 *
 * - keyd hands out the next key one period before it seals, so fetching once per period
 *   (shortly after each rotation, with jitter to spread a fleet's requests) is enough for
 *   every front to open every other front's tickets.
 * - While keyd is unreachable the ring keeps the last set it was given; it drops each key
 *   when it can no longer have sealed a live ticket. Fetches are retried with backoff.
 * - The key bytes exist here only between the answer and `install` (which copies them into
 *   KeyObjects); they are zeroed right after. Logs name keys by their public names only.
 */
import { TicketKeyRing } from '../tls/resumption/ticketKeys.js';
import type { TicketKeysResult } from '../keyd/protocol.js';
import { KeyOperationError } from './keyOperations.js';

/** Where the fetcher reports; never given key bytes. */
export type TicketKeyFetcherLog = (level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;

/** Options of {@link TicketKeyFetcher.start}. */
export interface TicketKeyFetcherOptions {
  /** The keyd connection pool (`KeydClient`), or anything that fetches the same answer. */
  client: { ticketKeys(opts?: { deadlineMs?: number }): Promise<TicketKeysResult> };
  /** Deadline of one fetch, ms (default 5000). */
  deadlineMs?: number;
  log?: TicketKeyFetcherLog;
  /** Retries after a failed fetch: first delay and cap, ms (defaults 1000 and 60000; each with jitter). */
  retry?: { initialMs?: number; maxMs?: number };
  /** A fetch lands this much after keyd's rotation at most (default: a tenth of the period, at most 30 s). */
  maxJitterMs?: number;
  /** [0, 1) source for the jitter (tests inject one). */
  random?: () => number;
  /** Clock for the ring, ms since the epoch (tests inject one). */
  now?: () => number;
}

/** How the fetches went, for health checks and tests. */
export interface TicketKeyFetcherStats {
  fetches: number;
  failures: number;
  /** Names (hex) of the keys the ring holds now, the sealing one first. */
  keyNames: string[];
  lastError?: string;
}

/** Fetches have not failed this often in a row before a warning is logged again. */
const WARN_EVERY = 10;

/** Keeps a TicketKeyRing filled with keyd's ticket keys. Start with {@link TicketKeyFetcher.start}. */
export class TicketKeyFetcher {
  /** The ring to give the server (`ticketKeys` of its options). */
  readonly ring: TicketKeyRing;
  readonly #opts: TicketKeyFetcherOptions;
  readonly #log: TicketKeyFetcherLog;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #fetches = 0;
  #failures = 0;
  #failuresInRow = 0;
  #lastError: string | undefined;
  #expiredSaid = false;
  #mismatchSaid = false;

  private constructor(opts: TicketKeyFetcherOptions, first: TicketKeysResult) {
    this.#opts = opts;
    this.#log = opts.log ?? (() => undefined);
    // The ring's horizons must be keyd's: a key is kept until it last sealed a ticket a lifetime ago.
    this.ring = new TicketKeyRing({ rotateEvery: first.rotateEveryMs, ticketLifetime: first.ticketLifetimeSeconds, ...(opts.now ? { now: opts.now } : {}) });
    this.#install(first);
  }

  /**
   * Fetches the keys once (rejects with a KeyOperationError when keyd does not give them:
   * a front asked to share the fleet's tickets does not start without them), then keeps
   * them current.
   */
  static async start(opts: TicketKeyFetcherOptions): Promise<TicketKeyFetcher> {
    const first = await opts.client.ticketKeys({ deadlineMs: opts.deadlineMs ?? 5_000 });
    let f: TicketKeyFetcher;
    try {
      f = new TicketKeyFetcher(opts, first);
    } catch (e) {
      wipe(first);
      throw new KeyOperationError('internal', `keyd's ticket keys cannot be used: ${(e as Error).message}`);
    }
    f.#log('info', 'ticket keys from keyd installed', { keys: f.ring.keyNames() });
    f.#schedule(first.nextRotationMs);
    return f;
  }

  get stats(): TicketKeyFetcherStats {
    return { fetches: this.#fetches, failures: this.#failures, keyNames: this.ring.keyNames(), ...(this.#lastError ? { lastError: this.#lastError } : {}) };
  }

  /** Fetches now (the periodic fetches go on); resolves true when the ring got a fresh set. */
  async refresh(): Promise<boolean> {
    if (this.#closed) return false;
    let r: TicketKeysResult;
    try {
      r = await this.#opts.client.ticketKeys({ deadlineMs: this.#opts.deadlineMs ?? 5_000 });
    } catch (e) {
      this.#failed(e instanceof Error ? e.message : String(e));
      return false;
    }
    if (this.#closed) {
      wipe(r);
      return false;
    }
    try {
      this.#install(r);
    } catch (e) {
      this.#failed(`keyd's ticket keys cannot be used: ${(e as Error).message}`);
      return false;
    }
    if (this.#failuresInRow > 0) this.#log('info', 'ticket keys from keyd again', { keys: this.ring.keyNames(), failedFetches: this.#failuresInRow });
    this.#failuresInRow = 0;
    this.#lastError = undefined;
    this.#expiredSaid = false;
    this.#schedule(r.nextRotationMs);
    return true;
  }

  /** Stops fetching. The ring keeps what it holds (the server may still be draining). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #install(r: TicketKeysResult): void {
    try {
      if (!this.#mismatchSaid && (r.rotateEveryMs !== this.ring.rotateEvery || r.ticketLifetimeSeconds !== this.ring.ticketLifetime)) {
        this.#mismatchSaid = true;
        this.#log('warn', "keyd's ticket key rotation or lifetime changed since this front started; restart the front to follow it", {
          rotateEveryMs: r.rotateEveryMs,
          ticketLifetimeSeconds: r.ticketLifetimeSeconds,
        });
      }
      this.ring.install(r.keys);
      this.#fetches += 1;
    } finally {
      wipe(r);
    }
  }

  #failed(message: string): void {
    this.#failures += 1;
    this.#failuresInRow += 1;
    this.#lastError = message;
    const left = this.ring.keyNames();
    if (this.#failuresInRow === 1 || this.#failuresInRow % WARN_EVERY === 0) {
      this.#log('warn', 'cannot fetch ticket keys from keyd; keeping the last ones', { error: message, failedFetches: this.#failuresInRow, keys: left });
    }
    if (left.length === 0 && !this.#expiredSaid) {
      this.#expiredSaid = true;
      this.#log('error', "every ticket key from keyd has expired: no ticket can be issued or resumed until keyd answers", { error: message });
    }
    const initial = this.#opts.retry?.initialMs ?? 1_000;
    const max = this.#opts.retry?.maxMs ?? 60_000;
    const base = Math.min(max, initial * 2 ** Math.min(this.#failuresInRow - 1, 20));
    this.#arm(base * (0.5 + this.#random() / 2));
  }

  /**
   * The next fetch: just after keyd's next rotation, spread by jitter. keyd says 0 when it
   * has no next key to hand out yet (caught in the middle of a rotation): soon, then.
   */
  #schedule(nextRotationMs: number): void {
    const period = this.ring.rotateEvery;
    const jitter = (this.#opts.maxJitterMs ?? Math.min(period / 10, 30_000)) * this.#random();
    // At least a second apart, at most a period.
    this.#arm(Math.max(1_000, Math.min(nextRotationMs, period) + jitter));
  }

  #random(): number {
    return (this.#opts.random ?? Math.random)();
  }

  #arm(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.refresh(), Math.min(delayMs, 0x7fffffff));
    this.#timer.unref();
  }
}

/** Zeroes the key bytes of an answer (views of the frame keyd sent). */
function wipe(r: TicketKeysResult): void {
  for (const k of r.keys) k.secret.fill(0);
}
