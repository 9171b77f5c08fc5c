/**
 * How many error answers (refusals, malformed or unsupported requests) keyd audits and logs
 * one by one, per client identity. Every error used to cost an audit line and a log line:
 * any holder of a certificate of the client CA, even one no rule names, could grow the
 * audit log by ~700 MB a minute with small bad frames, until the disk was full and keyd
 * refused every front. Beyond `perSecond` (a token bucket holding one second's worth),
 * errors are counted instead, and one summary line per identity and second says how many
 * were not written. Results are never counted this way: each has its own line.
 */

interface Bucket {
  tokens: number;
  last: number;
  /** Errors not written since the last summary. */
  suppressed: number;
}

/** Per-identity budget of error lines; see the module comment. */
export class ErrorLineBudget {
  readonly #buckets = new Map<string, Bucket>();
  readonly #timer: NodeJS.Timeout;

  /** `summary` writes the line for `count` errors of `client` that were not written one by one. */
  constructor(
    readonly perSecond: number,
    private readonly summary: (client: string, count: number) => void,
  ) {
    this.#timer = setInterval(() => this.#flush(), 1000);
    this.#timer.unref();
  }

  /** Whether this error of `client` gets its own audit and log lines; false: it is counted for the summary. */
  take(client: string): boolean {
    const now = performance.now();
    let b = this.#buckets.get(client);
    if (!b) this.#buckets.set(client, (b = { tokens: this.perSecond, last: now, suppressed: 0 }));
    b.tokens = Math.min(this.perSecond, b.tokens + ((now - b.last) / 1000) * this.perSecond);
    b.last = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.suppressed += 1;
    return false;
  }

  /** Writes the summaries due and forgets identities whose bucket is full again. */
  #flush(): void {
    const now = performance.now();
    for (const [client, b] of this.#buckets) {
      if (b.suppressed > 0) {
        this.summary(client, b.suppressed);
        b.suppressed = 0;
      } else if (b.tokens + ((now - b.last) / 1000) * this.perSecond >= this.perSecond) {
        this.#buckets.delete(client);
      }
    }
  }

  /** Writes what is pending and stops the timer. */
  close(): void {
    clearInterval(this.#timer);
    this.#flush();
  }
}
