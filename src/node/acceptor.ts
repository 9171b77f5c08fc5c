import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { ServerConfig } from '../tls/engine/config.js';
import { KeywardTLSSocket, type KeywardTLSSocketOptions, type TlsHandshakeError } from './tlsSocket.js';

/**
 * Turns accepted TCP sockets into keyward TLS sockets and reports on them: the part
 * shared by `KeywardServer` and the http/http2 servers, which accept TCP themselves.
 *
 * Events: `secureConnection` (socket), `tlsClientError` (error, socket).
 */
export class TlsAcceptor extends EventEmitter {
  private readonly sockets = new Set<KeywardTLSSocket>();

  constructor(
    readonly config: ServerConfig,
    private readonly socketOptions: KeywardTLSSocketOptions = {},
  ) {
    super();
  }

  /** Starts the TLS handshake on `raw`; `owner` becomes the socket's `server` property. */
  accept(raw: Socket, owner?: unknown): KeywardTLSSocket {
    const socket = new KeywardTLSSocket(raw, this.config, this.socketOptions);
    socket.server = owner;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // As node:tls: a socket error never crashes the server. Before the handshake completes
    // failures arrive as tlsClientError; afterwards the application's own listeners see them.
    socket.on('error', () => undefined);
    socket.once('tlsClientError', (err: TlsHandshakeError) => this.emit('tlsClientError', err, socket));
    socket.once('secure', () => this.emit('secureConnection', socket));
    return socket;
  }

  /** Open TLS connections (handshaking or established). */
  get connections(): ReadonlySet<KeywardTLSSocket> {
    return this.sockets;
  }

  /** Destroys every open connection: a hard stop, after `close()` stopped accepting. */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}
