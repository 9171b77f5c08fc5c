import { parseClientHello } from '../wire/clientHello.js';
import { HandshakeType } from '../wire/constants.js';
import { unexpectedMessage } from '../wire/errors.js';
import type { ConnectionOptions, ServerConfig } from './config.js';
import { TlsConnection } from './connection.js';
import type { Handshake, HandshakeHost, HandshakeMessage, Wait } from './handshakeHost.js';
import { chooseVersion } from './negotiation.js';
import { Server12Handshake } from './server12.js';
import { Server13Handshake } from './server13.js';

/**
 * One server-side TLS connection, sans-IO (see {@link TlsConnection}): it waits for a
 * ClientHello, chooses the version and hands over to server13 or server12.
 */
export class TlsServerConnection extends TlsConnection {
  constructor(
    readonly config: ServerConfig,
    opts: ConnectionOptions = {},
  ) {
    super('server', config.maxHandshakeMessage, opts);
    this.start((host) => new AwaitClientHello(host, config));
  }
}

const EXPECT_CLIENT_HELLO: Wait = { on: 'message', expect: [HandshakeType.client_hello] };

/** The server's first step: read the ClientHello and start the version it negotiates (RFC 8446 4.2.1, RFC 5246 E.1). */
class AwaitClientHello implements Handshake {
  readonly wait = EXPECT_CLIENT_HELLO;
  readonly acceptsCompatCcs = false;

  constructor(
    private readonly host: HandshakeHost,
    private readonly config: ServerConfig,
  ) {}

  handleMessage(msg: HandshakeMessage): void {
    const ch = parseClientHello(msg.body);
    const version = chooseVersion(ch, this.config);
    // RFC 8446 5.1: the ClientHello must end at a record boundary before keys change.
    if (this.host.handshakeFragmentPending()) throw unexpectedMessage('data after ClientHello in the same flight');
    if (version === 'TLSv1.2') {
      this.host.useTls12();
      this.host.continueWith(new Server12Handshake(this.host, this.config, ch, msg.raw));
      return;
    }
    this.host.continueWith(new Server13Handshake(this.host, this.config, ch, msg.raw));
  }

  keyOperationResult(): void {
    throw unexpectedMessage('no key operation before the ClientHello');
  }
}
