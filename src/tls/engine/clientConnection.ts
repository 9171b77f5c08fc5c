import type { ClientConfig } from './clientConfig.js';
import { Client13Handshake } from './client13.js';
import type { ConnectionOptions } from './config.js';
import { TlsConnection } from './connection.js';

/**
 * One client-side TLS connection, sans-IO (see {@link TlsConnection}): the ClientHello is
 * in `takeOutput()` as soon as it is constructed; client13 continues, or hands a TLS 1.2
 * ServerHello to client12.
 */
export class TlsClientConnection extends TlsConnection {
  constructor(
    readonly config: ClientConfig,
    opts: ConnectionOptions = {},
  ) {
    super('client', config.maxHandshakeMessage, opts);
    this.start((host) => new Client13Handshake(host, config));
  }
}
