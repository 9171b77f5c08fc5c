/**
 * A bounded node:https request for the adapter tests (not a test file): resolves with
 * status, headers and the whole body, or rejects on error or timeout.
 */
import type http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import { LOOPBACK } from '../support/peers.js';

export interface HttpsRequestOptions {
  port: number;
  ca: string;
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  agent?: https.Agent | false;
  /** ALPN protocols the client offers (default: node's, none). */
  ALPNProtocols?: string[];
  servername?: string;
  timeoutMs?: number;
}

export interface HttpsResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
  httpVersion: string;
  /** True when the agent reused a kept-alive connection. */
  reusedSocket: boolean;
  /** Local port of the client's TCP connection: equal ports mean one connection. */
  localPort: number | undefined;
}

export function httpsRequest(opts: HttpsRequestOptions): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions & tls.ConnectionOptions = {
        host: LOOPBACK,
        port: opts.port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        ca: opts.ca,
        agent: opts.agent ?? false,
        ALPNProtocols: opts.ALPNProtocols,
        servername: opts.servername,
        timeout: opts.timeoutMs ?? 15_000,
      };
    const req = https.request(
      options,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: Buffer.concat(chunks),
            httpVersion: res.httpVersion,
            reusedSocket: req.reusedSocket,
            localPort: res.socket?.localPort ?? localPort,
          }),
        );
      },
    );
    let localPort: number | undefined;
    req.on('socket', (s) => {
      const record = (): void => {
        localPort = s.localPort;
      };
      if (s.localPort) record();
      else s.once('connect', record);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}
