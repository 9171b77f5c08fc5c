import { Server as NetServer, type Socket } from 'node:net';
import type { KeyOperations } from '../keys/keyOperations.js';
import { certifiedKey, type CertifiedKey } from '../tls/engine/certificates.js';
import { resolveServerConfig, type ServerConfig, type ServerConfigInput } from '../tls/engine/config.js';
import { KeywardTLSSocket, TlsHandshakeError } from './tlsSocket.js';

/** A certificate chain (PEM, leaf first) and the key operations of its private key. */
export interface CertificateWithKey {
  cert: string | Buffer;
  key: KeyOperations;
  /** Names to serve instead of the certificate's DNS names. */
  names?: string[];
}

/** Options of `createServer`, in the spirit of `tls.createServer`'s. */
export interface KeywardServerOptions extends Omit<Partial<ServerConfigInput>, 'certificates' | 'alpnProtocols'> {
  /** Certificate chains with their keys; several are chosen between by SNI and key type. */
  certificates: readonly (CertificateWithKey | CertifiedKey)[];
  /** ALPN protocols in server preference order (node:tls's name for it). */
  ALPNProtocols?: readonly string[];
  /** Milliseconds a client has to finish the handshake (default 120 s, as node:tls). */
  handshakeTimeout?: number;
}

function toCertifiedKey(c: CertificateWithKey | CertifiedKey): CertifiedKey {
  return 'chain' in c ? c : certifiedKey(c.cert, c.key, { names: c.names });
}

/** Builds the engine configuration from server options. */
export function serverConfigFrom(options: KeywardServerOptions): ServerConfig {
  const { certificates, ALPNProtocols, handshakeTimeout: _t, ...rest } = options;
  return resolveServerConfig({
    ...rest,
    certificates: certificates.map(toCertifiedKey),
    alpnProtocols: ALPNProtocols,
  } as ServerConfigInput);
}

/**
 * A TLS server whose private keys stay behind `KeyOperations`. Like `tls.Server` it is a
 * `net.Server` that emits `secureConnection` with a TLS socket and `tlsClientError`
 * when a handshake fails.
 */
export class KeywardServer extends NetServer {
  readonly config: ServerConfig;
  private readonly handshakeTimeout: number;
  private readonly sockets = new Set<KeywardTLSSocket>();

  constructor(options: KeywardServerOptions, secureConnectionListener?: (socket: KeywardTLSSocket) => void) {
    super();
    this.config = serverConfigFrom(options);
    this.handshakeTimeout = options.handshakeTimeout ?? 120_000;
    if (secureConnectionListener) this.on('secureConnection', secureConnectionListener);
    this.on('connection', (raw: Socket) => this.accept(raw));
  }

  private accept(raw: Socket): void {
    raw.setNoDelay(true);
    const socket = new KeywardTLSSocket(raw, this.config);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const timer = setTimeout(() => {
      socket.emit('_tlsClientError', new TlsHandshakeError('TLS handshake timeout'));
      socket.destroy();
    }, this.handshakeTimeout);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('_tlsClientError', (err: Error) => {
      clearTimeout(timer);
      if (this.listenerCount('tlsClientError') > 0) this.emit('tlsClientError', err, socket);
    });
    socket.once('secure', () => {
      clearTimeout(timer);
      this.emit('secureConnection', socket);
    });
  }

  /** Open TLS connections (handshaking or established). */
  get tlsConnections(): ReadonlySet<KeywardTLSSocket> {
    return this.sockets;
  }

  /** Destroys every open connection (after `close()`, for a hard stop). */
  closeAllConnections(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/** `tls.createServer` for keyward: the listener gets each established TLS socket. */
export function createServer(options: KeywardServerOptions, secureConnectionListener?: (socket: KeywardTLSSocket) => void): KeywardServer {
  return new KeywardServer(options, secureConnectionListener);
}
