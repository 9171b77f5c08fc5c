/**
 * Moves plaintext between an established TLS connection and its plaintext side, both
 * directions, with backpressure (pipe pauses the side whose destination is full) and
 * half-close (the client's close_notify becomes a FIN to the upstream and the upstream's
 * FIN becomes close_notify to the client; the other direction keeps flowing).
 */
import type { Duplex } from 'node:stream';

/** How a relayed connection ended. */
export type RelayOutcome = 'ok' | 'idle-timeout' | 'client-error' | 'upstream-error' | 'shutdown';

/** Byte counters and the end of one relayed connection. */
export interface Relay {
  fromClient: number;
  toClient: number;
  /** Resolves once both sides are closed. */
  done: Promise<RelayOutcome>;
  /** Ends it now (shutdown past the grace period). */
  abort(outcome: RelayOutcome): void;
}

/**
 * Relays between `client` and `upstream`, each connected and allowing half-open: in
 * server mode the client is the TLS socket and the upstream plain TCP, in client mode the
 * other way round. `idleMs` > 0 closes both when the client's TCP connection sees no
 * traffic in either direction for that long.
 */
export function relay(
  client: Duplex & { setTimeout(ms: number): unknown },
  upstream: Duplex,
  idleMs: number,
  onBytes: (direction: 'from_client' | 'to_client', n: number) => void,
): Relay {
  let outcome: RelayOutcome | undefined;
  const state: Relay = {
    fromClient: 0,
    toClient: 0,
    done: undefined as unknown as Promise<RelayOutcome>,
    abort(o) {
      outcome ??= o;
      client.destroy();
      upstream.destroy();
    },
  };
  client.on('data', (c: Buffer) => {
    state.fromClient += c.length;
    onBytes('from_client', c.length);
  });
  upstream.on('data', (c: Buffer) => {
    state.toClient += c.length;
    onBytes('to_client', c.length);
  });
  client.on('error', () => {
    outcome ??= 'client-error';
    upstream.destroy();
  });
  upstream.on('error', () => {
    outcome ??= 'upstream-error';
    client.destroy();
  });
  if (idleMs > 0) {
    client.setTimeout(idleMs);
    client.on('timeout', () => state.abort('idle-timeout'));
  }
  state.done = new Promise<RelayOutcome>((resolve) => {
    let open = 2;
    const closed = () => {
      if (--open === 0) resolve(outcome ?? 'ok');
    };
    client.once('close', () => {
      // The client is gone: whatever the upstream still sends has nowhere to go.
      if (!(upstream.writableFinished && upstream.readableEnded)) upstream.destroy();
      closed();
    });
    upstream.once('close', (hadError: boolean) => {
      // An upstream that ended cleanly has ended the client's side through the pipe; the
      // client may still send (half-close) until it ends too. One that failed takes the client along.
      if (hadError || !upstream.readableEnded) client.destroy();
      closed();
    });
  });
  client.pipe(upstream);
  upstream.pipe(client);
  return state;
}
