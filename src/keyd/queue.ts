/**
 * Bounded concurrency for key operations. Work beyond the limit waits in a FIFO queue,
 * where cancellation removes it before it starts (a CANCEL frame, a closed connection).
 * Work already running is told through its AbortSignal; whether it can stop depends on
 * the key holder (a PKCS#11 C_Sign cannot), and its result is discarded either way.
 */
import { KeyOperationError } from '../keys/keyOperations.js';

interface Entry {
  run: (signal: AbortSignal) => Promise<unknown>;
  signal: AbortSignal;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  onAbort: () => void;
  dropped: boolean;
}

/** Observes queue depth changes (for metrics). */
export type QueueObserver = (running: number, queued: number) => void;

/** A FIFO of key operations with at most `limit` running at once and `maxQueued` waiting. */
export class WorkQueue {
  #running = 0;
  #queued = 0;
  #items: Entry[] = [];
  #head = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly maxQueued: number,
    private readonly observe: QueueObserver = () => {},
  ) {}

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * Runs `run` when a slot is free. Rejects with KeyOperationError('aborted') if `signal`
   * fires while the work is still queued (it never starts), and with 'unavailable' when
   * the queue is full.
   */
  submit<T>(run: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new KeyOperationError('aborted', 'cancelled before it started'));
    if (this.#running < this.limit) return this.#start(run, signal);
    if (this.#queued >= this.maxQueued) return Promise.reject(new KeyOperationError('unavailable', 'keyd is overloaded (operation queue full)'));
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = {
        run,
        signal,
        resolve: resolve as (v: unknown) => void,
        reject,
        dropped: false,
        onAbort: () => {
          if (entry.dropped) return;
          entry.dropped = true;
          this.#queued -= 1;
          this.#notify();
          reject(new KeyOperationError('aborted', 'cancelled before it started'));
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.#items.push(entry);
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

  #next(): void {
    while (this.#running < this.limit && this.#head < this.#items.length) {
      const e = this.#items[this.#head];
      this.#items[this.#head] = undefined as unknown as Entry;
      this.#head += 1;
      if (e.dropped) continue;
      e.dropped = true;
      this.#queued -= 1;
      e.signal.removeEventListener('abort', e.onAbort);
      this.#start(e.run, e.signal).then(e.resolve, e.reject);
    }
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
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
