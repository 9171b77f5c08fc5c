import { Server as NetServer, type Socket } from 'node:net';
import type { KeyOperations } from '../keys/keyOperations.js';
import type { X509Certificate } from 'node:crypto';
import { certifiedKey, subjectNameDer, type CertifiedKey, type DelegatedCredentialSource } from '../tls/engine/certificates.js';
import { resolveServerConfig, type ServerConfig, type ServerConfigInput } from '../tls/engine/config.js';
import { SessionCache12 } from '../tls/resumption/sessionCache12.js';
import { TicketKeyRing } from '../tls/resumption/ticketKeys.js';
import { TlsAcceptor } from './acceptor.js';
import { trustAnchors } from './peerVerification.js';
import type { KeywardTLSSocket, TlsHandshakeError } from './tlsSocket.js';

/** A certificate chain (PEM, leaf first) and the key operations of its private key. */
export interface CertificateWithKey {
  cert: string | Buffer;
  key: KeyOperations;
  /** Names to serve instead of the certificate's DNS names. */
  names?: string[];
  /**
   * Delegated credentials for this certificate (RFC 9345): a DelegatedCredentialManager
   * whose issuer is this certificate's key holder. TLS 1.3 clients that offer them are
   * served the current credential and a CertificateVerify signed with its key (no
   * key-holder call); every other client gets the key holder's signature.
   */
  delegatedCredentials?: DelegatedCredentialSource;
}

/** Options of `createServer`, in the spirit of `tls.createServer`'s. */
export interface KeywardServerOptions extends Omit<Partial<ServerConfigInput>, 'certificates' | 'alpnProtocols'> {
  /** Certificate chains with their keys; several are chosen between by SNI and key type. */
  certificates: readonly (CertificateWithKey | CertifiedKey)[];
  /** ALPN protocols in server preference order (node:tls's name for it). */
  ALPNProtocols?: readonly string[];
  /** Milliseconds a client has to finish the handshake; 0 disables (default 120 s, as node:tls). */
  handshakeTimeout?: number;
  /** Keep a socket writable after the client ends its side (default false, as node:tls). */
  allowHalfOpen?: boolean;
  /** Ask clients for a certificate (mutual TLS), as node:tls. Default false. */
  requestCert?: boolean;
  /** With requestCert: refuse clients whose certificate is missing or does not verify against `ca` (default true, as node:tls). */
  rejectUnauthorized?: boolean;
  /** Trust anchors for client certificates (PEM, DER or X509Certificate); Node's root store when absent. */
  ca?: string | Buffer | X509Certificate | readonly (string | Buffer | X509Certificate)[];
}

function toCertifiedKey(c: CertificateWithKey | CertifiedKey): CertifiedKey {
  return 'chain' in c ? c : certifiedKey(c.cert, c.key, { names: c.names, ...(c.delegatedCredentials ? { delegatedCredentials: c.delegatedCredentials } : {}) });
}

/** Builds the engine configuration from server options. */
export function serverConfigFrom(options: KeywardServerOptions): ServerConfig {
  const { certificates, ALPNProtocols, handshakeTimeout: _t, allowHalfOpen: _h, requestCert, rejectUnauthorized: _r, ca, ...rest } = options;
  return resolveServerConfig({
    ...rest,
    certificates: certificates.map(toCertifiedKey),
    alpnProtocols: ALPNProtocols,
    // Resumption is on by default, as in node:tls: tickets under keys made in memory by this
    // server (rotated hourly), TLS 1.2 session ids in a bounded cache.
    ticketKeys: rest.ticketKeys ?? new TicketKeyRing(),
    sessionCache12: rest.sessionCache12 ?? new SessionCache12(),
    // certificate_authorities names the configured anchors (not Node's whole root store).
    clientAuth: requestCert ? { certificateAuthorities: ca === undefined ? [] : trustAnchors(ca).map((c) => subjectNameDer(c.raw)) } : undefined,
  } as ServerConfigInput);
}

/** The acceptor for a set of options: engine configuration plus per-socket options. */
export function tlsAcceptorFrom(options: KeywardServerOptions): TlsAcceptor {
  const clientAuth = options.requestCert
    ? { ca: options.ca === undefined ? undefined : trustAnchors(options.ca), rejectUnauthorized: options.rejectUnauthorized !== false }
    : undefined;
  return new TlsAcceptor(serverConfigFrom(options), { handshakeTimeout: options.handshakeTimeout, allowHalfOpen: options.allowHalfOpen, clientAuth });
}

/**
 * A TLS server whose private keys stay behind `KeyOperations`. Like `tls.Server` it is a
 * `net.Server` that emits `secureConnection` with a TLS socket and `tlsClientError`
 * (error, socket) when a handshake fails. `close()` is graceful, as net.Server's: it
 * stops accepting and calls back once every connection has closed.
 */
export class KeywardServer extends NetServer {
  readonly acceptor: TlsAcceptor;

  constructor(options: KeywardServerOptions, secureConnectionListener?: (socket: KeywardTLSSocket) => void) {
    // TCP half-close is left to the TLS socket, which decides by its own allowHalfOpen.
    super({ allowHalfOpen: true });
    this.acceptor = tlsAcceptorFrom(options);
    if (secureConnectionListener) this.on('secureConnection', secureConnectionListener);
    this.acceptor.on('secureConnection', (socket: KeywardTLSSocket) => this.emit('secureConnection', socket));
    this.acceptor.on('tlsClientError', (err: TlsHandshakeError, socket: KeywardTLSSocket) => this.emit('tlsClientError', err, socket));
    this.on('connection', (raw: Socket) => this.acceptor.accept(raw, this));
  }

  get config(): ServerConfig {
    return this.acceptor.config;
  }

  /** Open TLS connections (handshaking or established). */
  get tlsConnections(): ReadonlySet<KeywardTLSSocket> {
    return this.acceptor.connections;
  }

  /** Destroys every open connection (after `close()`, for a hard stop). */
  closeAllConnections(): void {
    this.acceptor.destroyAll();
  }
}

/** `tls.createServer` for keyward: the listener gets each established TLS socket. */
export function createServer(options: KeywardServerOptions, secureConnectionListener?: (socket: KeywardTLSSocket) => void): KeywardServer {
  return new KeywardServer(options, secureConnectionListener);
}
