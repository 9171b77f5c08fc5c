/**
 * Bounded concurrency for key operations. Work beyond the limit waits in a queue per
 * client, served in turn (round robin), so a front that pipelines thousands of RSA
 * signatures delays another front's next one by at most one operation per busy client,
 * not by its whole backlog; cancellation removes work before it starts (a CANCEL frame, a
 * closed connection). Work already running is told through its AbortSignal; whether it
 * can stop depends on the key holder (a PKCS#11 C_Sign cannot), and its result is
 * discarded either way.
 */
import { KeyOperationError } from '../keys/keyOperations.js';

interface Entry {
  run: (signal: AbortSignal) => Promise<unknown>;
  signal: AbortSignal;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  onAbort: () => void;
  dropped: boolean;
  client: ClientQueue;
}

/** One client's waiting work, oldest first from `head`. */
interface ClientQueue {
  key: string;
  items: Entry[];
  head: number;
  /** Entries waiting (not dropped). */
  waiting: number;
}

/** Observes queue depth changes (for metrics). */
export type QueueObserver = (running: number, queued: number) => void;

/**
 * Key operations with at most `limit` running at once and `maxQueued` waiting, of which
 * one client holds at most `maxQueuedPerClient`.
 */
export class WorkQueue {
  #running = 0;
  #queued = 0;
  /** Clients with work waiting, in turn order. */
  readonly #clients = new Map<string, ClientQueue>();
  #idleWaiters: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly maxQueued: number,
    private readonly observe: QueueObserver = () => {},
    private readonly maxQueuedPerClient = maxQueued,
  ) {}

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * Runs `run` when a slot is free, after the work `client` queued before and in turn with
   * other clients'. Rejects with KeyOperationError('aborted') if `signal` fires while the
   * work is still queued (it never starts), and with 'unavailable' when the queue, or this
   * client's share of it, is full.
   */
  submit<T>(run: (signal: AbortSignal) => Promise<T>, signal: AbortSignal, client = ''): Promise<T> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'cancelled before it started'));
    if (this.#running < this.limit) return this.#start(run, signal);
    if (this.#queued >= this.maxQueued) return Promise.reject(new KeyOperationError('unavailable', 'keyd is overloaded (operation queue full)'));
    let q = this.#clients.get(client);
    if (q && q.waiting >= this.maxQueuedPerClient) return Promise.reject(new KeyOperationError('unavailable', "keyd is overloaded (this client's share of the operation queue is full)"));
    if (!q) this.#clients.set(client, (q = { key: client, items: [], head: 0, waiting: 0 }));
    const cq = q;
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = {
        run,
        signal,
        resolve: resolve as (v: unknown) => void,
        reject,
        dropped: false,
        client: cq,
        onAbort: () => {
          if (entry.dropped) return;
          entry.dropped = true;
          this.#queued -= 1;
          cq.waiting -= 1;
          if (cq.waiting === 0) this.#clients.delete(cq.key);
          this.#notify();
          reject(new KeyOperationError('aborted', 'cancelled before it started'));
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      cq.items.push(entry);
      cq.waiting += 1;
      this.#queued += 1;
      this.#notify();
    });
  }

  #start<T>(run: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    this.#running += 1;
    this.#notify();
    let p: Promise<T>;
    try {
      p = run(signal);
    } catch (e) {
      p = Promise.reject(e);
    }
    return p.finally(() => {
      this.#running -= 1;
      this.#next();
      this.#notify();
    });
  }

  /** Starts waiting work while slots are free: the first client in turn, which then goes last. */
  #next(): void {
    while (this.#running < this.limit && this.#clients.size > 0) {
      const q = this.#clients.values().next().value as ClientQueue;
      this.#clients.delete(q.key);
      let e: Entry | undefined;
      while (q.head < q.items.length && !e) {
        const c = q.items[q.head];
        q.items[q.head] = undefined as unknown as Entry;
        q.head += 1;
        if (!c.dropped) e = c;
      }
      if (!e) continue;
      e.dropped = true;
      this.#queued -= 1;
      q.waiting -= 1;
      // Back at the end of the turn order while it has work waiting.
      if (q.waiting > 0) {
        // Compact now and then so the array does not grow without bound.
        if (q.head > 1024 && q.head * 2 > q.items.length) {
          q.items = q.items.slice(q.head);
          q.head = 0;
        }
        this.#clients.set(q.key, q);
      }
      e.signal.removeEventListener('abort', e.onAbort);
      this.#start(e.run, e.signal).then(e.resolve, e.reject);
    }
  }

  #notify(): void {
    this.observe(this.#running, this.#queued);
    if (this.#running === 0 && this.#queued === 0 && this.#idleWaiters.length > 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.#running === 0 && this.#queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
