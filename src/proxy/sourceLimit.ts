/**
 * Connections open at once per client IP address, so that one source cannot take every
 * connection slot of a front (`serve`, the proxy) with idle or slow connections.
 */
import type { Socket } from 'node:net';

/** Counts open connections by remote address; a socket leaves the count when it closes. */
export class SourceLimit {
  readonly #open = new Map<string, number>();

  /** @param max connections per address (>= 1) */
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('the per-source connection limit must be a positive integer');
  }

  /** Counts `socket` against its address and returns true, or returns false when that address is at the limit. */
  admit(socket: Socket): boolean {
    const source = socket.remoteAddress ?? '';
    const n = this.#open.get(source) ?? 0;
    if (n >= this.max) return false;
    this.#open.set(source, n + 1);
    socket.once('close', () => {
      const left = (this.#open.get(source) ?? 1) - 1;
      if (left > 0) this.#open.set(source, left);
      else this.#open.delete(source);
    });
    return true;
  }

  /** Addresses with an open connection. */
  get sources(): number {
    return this.#open.size;
  }
}
