/**
 * When a costly signature (RSA) may run on the calling thread rather than on libuv's
 * thread pool. The pool's round trip costs about 0.1 ms of latency and as much CPU (two
 * more thread wake-ups) per signature, which a key holder that signs one request at a
 * time pays for nothing. Signing inline delays whatever arrives meanwhile, so it is
 * rationed: callers sign inline only the last request of a socket read, with nothing
 * waiting for a pool slot (the others of the read are on the pool by then, and run beside
 * it), and this budget keeps inline signing to at most half of the holder's time, with
 * bursts of 1 ms; a long signature is paid back before the next. A request arriving during
 * an inline signature (a burst split over several reads) waits for at most about one.
 */

/**
 * Inline signing time (ms) earned per ms not spent signing inline: 1, so that inline
 * signatures take at most half of the holder's time.
 */
const EARN_PER_MS = 1;
/** Inline signing time (ms) that may be spent at once after an idle spell. */
const BURST_MS = 1;
/** RSA keys above this size never sign inline: one signature stalls the loop 5 ms or more. */
const MAX_INLINE_RSA_BITS = 3072;

/** True for keys whose signatures may be made inline at all (see {@link InlineSignBudget}). */
export function inlineSignable(modulusBits: number | undefined): boolean {
  return modulusBits === undefined || modulusBits <= MAX_INLINE_RSA_BITS;
}

/** One holder's ration of inline signing time. */
export class InlineSignBudget {
  /** Time (ms) that may still be spent; negative while a long signature is paid back. Earned since `#at`. */
  #budgetMs = BURST_MS;
  #at: number;

  /** `now`: a clock in ms (tests pass their own). */
  constructor(private readonly now: () => number = () => performance.now()) {
    this.#at = now();
  }

  /** True when an inline signature may start now. */
  allows(): boolean {
    const now = this.now();
    this.#budgetMs = Math.min(BURST_MS, this.#budgetMs + (now - this.#at) * EARN_PER_MS);
    this.#at = now;
    return this.#budgetMs > 0;
  }

  /** Runs `sign` on this thread and charges its duration. */
  run<T>(sign: () => T): T {
    const t = this.now();
    try {
      return sign();
    } finally {
      // Time spent signing is charged, and earns nothing.
      this.#at = this.now();
      this.#budgetMs -= this.#at - t;
    }
  }
}
