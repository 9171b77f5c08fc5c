import type { Socket } from 'node:net';
import type { ServerConfig } from '../tls/engine/config.js';
import type { PeerVerdict, PeerVerificationRequest } from '../tls/engine/events.js';
import { TlsServerConnection } from '../tls/engine/serverConnection.js';
import { EngineSocket, TlsHandshakeError, type CipherInfo, type EngineSocketOptions } from './engineSocket.js';

export { TlsHandshakeError, type CipherInfo };

/** Per-socket options; `createServer` passes its own. */
export type KeywardTLSSocketOptions = EngineSocketOptions;

/**
 * A server-side TLS socket over an accepted TCP socket, shaped like `tls.TLSSocket` (see
 * {@link EngineSocket} for the driver it shares with the client socket).
 *
 * Events beyond a Duplex's: `secure` (handshake done), `tlsClientError` (handshake
 * failed, with a {@link TlsHandshakeError}; the socket is then destroyed without an
 * 'error' event), `timeout`, `keyOperationError` (a key operation rejected).
 */
export class KeywardTLSSocket extends EngineSocket {
  readonly connecting = false;
  /** SNI the client sent, false when none. */
  servername: string | false = false;
  /** The server that accepted the connection (http sets it to the http.Server). */
  server: unknown = undefined;
  /** Kept from accept time, so logs can still name the peer after the socket closed. */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;

  constructor(rawSocket: Socket, config: ServerConfig, opts: KeywardTLSSocketOptions = {}) {
    const connectionId = EngineSocket.newConnectionId();
    super(
      rawSocket,
      new TlsServerConnection(config, {
        peerAddress: rawSocket.remoteAddress ? `${rawSocket.remoteAddress}:${rawSocket.remotePort}` : undefined,
        connectionId,
      }),
      opts,
      connectionId,
    );
    this.remoteAddress = rawSocket.remoteAddress;
    this.remotePort = rawSocket.remotePort;
    this.remoteFamily = rawSocket.remoteFamily;
  }

  protected onSecure(): void {
    this.servername = this.engine.info.serverName ?? false;
    this.emit('secure');
  }

  protected onHandshakeFailure(err: TlsHandshakeError): void {
    // As node:tls: no 'error' event; the server reports it as tlsClientError.
    this.emit('tlsClientError', err);
  }

  /** No client certificate is requested yet: nothing to judge. */
  protected judgePeer(_req: PeerVerificationRequest): PeerVerdict {
    return { ok: true };
  }
}
