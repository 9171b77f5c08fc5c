import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { createServer, type KeywardServer, type KeywardServerOptions } from './server.js';
import type { KeywardTLSSocket } from './tlsSocket.js';

/** Moves the server's own `connection` handling behind a keyward TLS server. */
function tlsUnder<T extends http.Server | http2.Http2Server>(server: T, options: KeywardServerOptions, route: (socket: KeywardTLSSocket, serve: (s: Socket) => void) => void): T & { tlsServer: KeywardServer } {
  const listeners = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  const serve = (s: Socket) => {
    for (const l of listeners) l.call(server, s);
  };
  const tlsServer = createServer(options, (socket) => route(socket, serve));
  tlsServer.on('tlsClientError', (err, socket) => server.emit('tlsClientError', err, socket));
  // Raw TCP connections accepted by `server.listen` go through TLS first.
  server.on('connection', (raw: Socket) => tlsServer.emit('connection', raw));
  return Object.assign(server, { tlsServer });
}

/**
 * `https.createServer` for keyward: a real `http.Server` (so Express apps, `ws` and
 * anything that takes an http.Server work unchanged) whose connections are TLS
 * terminated by the engine, with the key behind KeyOperations.
 */
export function createHttpsServer(options: KeywardServerOptions, requestListener?: http.RequestListener): http.Server & { tlsServer: KeywardServer } {
  const server = http.createServer(requestListener);
  const opts = { ...options, ALPNProtocols: options.ALPNProtocols ?? ['http/1.1'] };
  return tlsUnder(server, opts, (socket, serve) => serve(socket as unknown as Socket));
}

/**
 * `http2.createSecureServer` for keyward: h2 when ALPN selects it, HTTP/1.1 otherwise
 * (as with `allowHTTP1`). Requests of both kinds reach `onRequest`.
 */
export function createHttp2SecureServer(
  options: KeywardServerOptions,
  onRequest?: (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse) => void,
): http2.Http2Server & { tlsServer: KeywardServer; http1: http.Server } {
  const h2 = http2.createServer(onRequest as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const h1 = http.createServer(onRequest as http.RequestListener);
  const opts = { ...options, ALPNProtocols: options.ALPNProtocols ?? ['h2', 'http/1.1'] };
  const server = tlsUnder(h2, opts, (socket, serve) => {
    if (socket.alpnProtocol === 'h2') serve(socket as unknown as Socket);
    else h1.emit('connection', socket);
  });
  return Object.assign(server, { http1: h1 });
}
