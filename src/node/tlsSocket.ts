import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { AlertDescription } from '../tls/wire/alerts.js';
import type { ServerConfig } from '../tls/engine/config.js';
import type { PeerVerdict, PeerVerificationRequest } from '../tls/engine/events.js';
import { TlsServerConnection } from '../tls/engine/serverConnection.js';
import { EngineSocket, TlsHandshakeError, type CipherInfo, type EngineSocketOptions } from './engineSocket.js';
import { CertificateVerificationError, judgeChain } from './peerVerification.js';

export { TlsHandshakeError, type CipherInfo };

/** Per-socket options; `createServer` passes its own. */
export interface KeywardTLSSocketOptions extends EngineSocketOptions {
  /** Mutual TLS: how the client's chain is judged (the engine asks for it when its config has clientAuth). */
  clientAuth?: { ca?: X509Certificate[]; rejectUnauthorized: boolean };
}

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

  constructor(
    rawSocket: Socket,
    config: ServerConfig,
    private readonly opts: KeywardTLSSocketOptions = {},
  ) {
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
    // Resumed with mutual TLS: the ticket's client chain, judged again for `authorized`
    // (it was accepted when the session began; a refusal then left no ticket).
    if (this.isSessionReused() && this.opts.clientAuth && this.peerChain.length > 0) {
      const r = judgeChain(this.peerChain, { ca: this.opts.clientAuth.ca, purpose: 'clientAuth' }, false);
      this.authorized = r.authorized;
      this.authorizationError = r.authorizationError;
    }
    this.emit('secure');
  }

  protected onHandshakeFailure(err: TlsHandshakeError): void {
    // As node:tls: no 'error' event; the server reports it as tlsClientError.
    this.emit('tlsClientError', err);
  }

  /**
   * Mutual TLS, as node:tls: the client's chain against `ca` for clientAuth; a missing or
   * failing one is refused when rejectUnauthorized (certificate_required in TLS 1.3,
   * handshake_failure in 1.2 for a missing one), else accepted with `authorized` false.
   */
  protected judgePeer(_req: PeerVerificationRequest): PeerVerdict {
    const policy = this.opts.clientAuth ?? { rejectUnauthorized: true };
    if (this.peerChain.length === 0) {
      this.authorized = false;
      this.authorizationError = new CertificateVerificationError('ERR_TLS_NO_CLIENT_CERTIFICATE', 'the client sent no certificate', AlertDescription.certificate_required);
      if (!policy.rejectUnauthorized) return { ok: true };
      const alert = this.engine.info.version === 'TLSv1.2' ? AlertDescription.handshake_failure : AlertDescription.certificate_required;
      return { ok: false, alert, reason: 'the client sent no certificate' };
    }
    const r = judgeChain(this.peerChain, { ca: policy.ca, purpose: 'clientAuth' }, policy.rejectUnauthorized);
    this.authorized = r.authorized;
    this.authorizationError = r.authorizationError;
    return r.verdict;
  }
}
