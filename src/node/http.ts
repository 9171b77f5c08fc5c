import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TlsAcceptor } from './acceptor.js';
import { tlsAcceptorFrom, type KeywardServerOptions } from './server.js';
import { KeywardTLSSocket, type TlsHandshakeError } from './tlsSocket.js';

/** The TLS socket under each HTTP/2 session (http2 wraps it in a stream of its own). */
const sessionSockets = new WeakMap<http2.Http2Session, KeywardTLSSocket>();

/** Options of `createHttpsServer`: the TLS options plus http.Server's own. */
export interface KeywardHttpsServerOptions extends KeywardServerOptions {
  /** Passed to `http.createServer` (timeouts, keepAlive, maxHeaderSize, ...). */
  http?: http.ServerOptions;
}

/** Options of `createHttp2SecureServer`: the TLS options plus http2's server options. */
export interface KeywardHttp2ServerOptions extends KeywardServerOptions {
  /** Passed to `http2.createServer` (settings, maxSessionMemory, ...). */
  http2?: http2.ServerOptions;
  /** Passed to the `http.createServer` that serves the HTTP/1.1 fallback (timeouts, maxHeaderSize, ...). */
  http1?: http.ServerOptions;
}

/** What the keyward http servers add to node's: the acceptor with the TLS configuration and connections. */
export interface WithTlsAcceptor {
  readonly tlsAcceptor: TlsAcceptor;
}

/**
 * Puts TLS under a server that accepts TCP itself: its `connection` listeners (the
 * HTTP machinery) get the TLS socket once the handshake is done, as with https.Server.
 * Like https.Server it then emits `secureConnection` and, for failed handshakes,
 * `tlsClientError`; `connection` listeners added later see the raw TCP sockets. With
 * `http1`, sockets that did not negotiate h2 go to that server instead.
 */
function tlsUnder<T extends http.Server | http2.Http2Server>(server: T, options: KeywardServerOptions, http1?: http.Server): T & WithTlsAcceptor {
  const serve = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  const acceptor = tlsAcceptorFrom(options);
  // http2 makes its session synchronously in its connection listener; remember whose it is.
  let serving: KeywardTLSSocket | undefined;
  server.on('session', (session: http2.Http2Session) => {
    if (serving) sessionSockets.set(session, serving);
  });
  acceptor.on('secureConnection', (socket: KeywardTLSSocket) => {
    serving = socket;
    try {
      if (http1 && socket.alpnProtocol !== 'h2') http1.emit('connection', socket);
      else for (const l of serve) l.call(server, socket as unknown as Socket);
    } finally {
      serving = undefined;
    }
    server.emit('secureConnection', socket);
  });
  acceptor.on('tlsClientError', (err: TlsHandshakeError, socket: KeywardTLSSocket) => server.emit('tlsClientError', err, socket));
  server.on('connection', (raw: Socket) => {
    acceptor.accept(raw, server);
  });
  return Object.assign(server, { tlsAcceptor: acceptor });
}

/**
 * `https.createServer` for keyward: a real `http.Server` (so Express apps, `ws` and
 * anything that takes an http.Server work unchanged) whose connections are TLS
 * terminated by the engine, with the key behind KeyOperations. ALPN defaults to
 * `http/1.1`.
 */
export function createHttpsServer(options: KeywardHttpsServerOptions, requestListener?: http.RequestListener): http.Server & WithTlsAcceptor {
  const { http: httpOptions, ...tlsOptions } = options;
  const server = requestListener ? http.createServer(httpOptions ?? {}, requestListener) : http.createServer(httpOptions ?? {});
  return tlsUnder(server, { ...tlsOptions, ALPNProtocols: tlsOptions.ALPNProtocols ?? ['http/1.1'] });
}

/** A request handler that serves both HTTP/2 and the HTTP/1.1 fallback. */
export type DualRequestListener = (
  req: http2.Http2ServerRequest | http.IncomingMessage,
  res: http2.Http2ServerResponse | http.ServerResponse,
) => void;

/**
 * `http2.createSecureServer({ allowHTTP1: true })` for keyward: h2 when ALPN selects
 * it, HTTP/1.1 otherwise (a client offering only http/1.1, or no ALPN). Requests of
 * both kinds reach `onRequest` and the server's `request` listeners (HTTP/1.1 `upgrade`
 * and `checkContinue` too, as with allowHTTP1); `stream` and `session` events are
 * http2's. ALPN defaults to `h2, http/1.1`.
 */
export function createHttp2SecureServer(options: KeywardHttp2ServerOptions, onRequest?: DualRequestListener): http2.Http2Server & WithTlsAcceptor {
  const { http2: h2Options, http1: h1Options, ...tlsOptions } = options;
  // allowHTTP1 is documented for secure servers only (Node 24's plain Http2Server cannot
  // fall back), so HTTP/1.1 sockets go to an http.Server of their own by ALPN, and its
  // events are re-emitted here: 'connection' is the documented way to hand a server a socket.
  const server = http2.createServer(h2Options ?? {});
  const http1 = http.createServer(h1Options ?? {});
  http1.on('request', (req, res) => server.emit('request', req, res));
  http1.on('upgrade', (req, socket, head) => {
    if (server.listenerCount('upgrade') > 0) server.emit('upgrade', req, socket, head);
    else socket.destroy();
  });
  http1.on('checkContinue', (req, res: http.ServerResponse) => {
    if (server.listenerCount('checkContinue') > 0) {
      server.emit('checkContinue', req, res);
    } else {
      res.writeContinue();
      server.emit('request', req, res);
    }
  });
  if (onRequest) server.on('request', onRequest as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  closeSessionsOnClose(server, http1);
  return tlsUnder(server, { ...tlsOptions, ALPNProtocols: tlsOptions.ALPNProtocols ?? ['h2', 'http/1.1'] }, http1);
}

/**
 * Makes `close()` graceful for HTTP/2 too: node 20's Http2Server.close only stops
 * listening, so an idle client session would hold the close callback back forever.
 * Each session gets `session.close()`: GOAWAY, streams in flight finish, then it closes;
 * idle HTTP/1.1 fallback connections are closed as http.Server.close does.
 */
function closeSessionsOnClose(server: http2.Http2Server, http1: http.Server): void {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const close = server.close.bind(server);
  server.close = (callback?: (err?: Error) => void) => {
    close(callback);
    for (const session of sessions) if (!session.closed) session.close();
    http1.closeIdleConnections();
    return server;
  };
}

/**
 * The keyward TLS socket a request, stream or session arrived on. For HTTP/1.1 that is
 * `req.socket`; for HTTP/2 `req.socket` is http2's own wrapper, so this is the way to
 * reach `getProtocol()`, `getCipher()`, `negotiated`, `exportKeyingMaterial()`...
 */
export function tlsSocketOf(
  from: http.IncomingMessage | http2.Http2ServerRequest | http2.Http2Stream | http2.Http2Session,
): KeywardTLSSocket | undefined {
  if (from instanceof http2.Http2ServerRequest) return sessionSockets.get(from.stream.session as http2.Http2Session);
  if ('session' in from && from.session) return sessionSockets.get(from.session);
  if ('socket' in from && from.socket instanceof KeywardTLSSocket) return from.socket;
  return sessionSockets.get(from as http2.Http2Session);
}
