/**
 * An HTTPS page server for the browser tests: keyward's createHttpsServer on 127.0.0.1:0
 * that records what every connection negotiated (server side) and serves a page naming its
 * own connection's group, so a test can compare what the browser rendered with what the
 * server saw.
 */
import { groupName } from '../../src/tls/crypto/groups.js';
import type { NegotiatedInfo } from '../../src/tls/engine/events.js';
import { createHttpsServer, tlsSocketOf } from '../../src/node/http.js';
import type { KeywardServerOptions } from '../../src/node/server.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { closeServer, listen } from './keywardServer.js';

export interface PageServer {
  port: number;
  /** `https://localhost:PORT/` (the test certificates name localhost). */
  url: string;
  /** What each established connection negotiated, in order (browsers may open more than one). */
  sessions: NegotiatedInfo[];
  /** Failed handshakes' messages. */
  errors: string[];
  close(): Promise<void>;
}

/** Starts the page server; `options` are the TLS options (certificates, groups, ...). */
export function startPageServer(options: KeywardServerOptions): Promise<PageServer> {
  const sessions: NegotiatedInfo[] = [];
  const errors: string[] = [];
  const server = createHttpsServer({ handshakeTimeout: 10_000, ...options }, (req, res) => {
    const info = tlsSocketOf(req)?.negotiated;
    const group = info?.group === undefined ? 'none' : groupName(info.group);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', connection: 'close' });
    res.end(`<!doctype html><title>keyward</title><p id="tls">${info?.version ?? '?'} ${group}</p>`);
  });
  server.on('secureConnection', (socket: KeywardTLSSocket) => sessions.push({ ...socket.negotiated }));
  server.on('tlsClientError', (err: Error) => errors.push(err.message));
  return listen(server).then((port) => ({
    port,
    url: `https://localhost:${port}/`,
    sessions,
    errors,
    close: () =>
      closeServer(server, () => {
        server.closeAllConnections();
        server.tlsAcceptor.destroyAll();
      }),
  }));
}
