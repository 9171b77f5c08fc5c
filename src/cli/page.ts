import type http from 'node:http';
import type http2 from 'node:http2';
import { tlsSocketOf } from '../node/http.js';
import { groupName } from '../tls/crypto/groups.js';
import { schemeName } from '../tls/crypto/signatureSchemes.js';

/** Escapes text for HTML. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The small page `keyward serve` shows: what this very connection negotiated, and
 * where the key that authenticated it lives. Plain text for curl, HTML for browsers.
 *
 * @param keyDescription where the key lives: a fixed text, or one chosen per connection
 *   (by the TLS socket's connection id, when the server serves several certificates).
 */
export function demoPage(keyDescription: string | ((connectionId: string | undefined) => string)) {
  const describe = typeof keyDescription === 'string' ? () => keyDescription : keyDescription;
  return (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    const socket = tlsSocketOf(req);
    const tls = socket?.negotiated ?? {};
    const facts: [string, string][] = [
      ['protocol', tls.version ?? '?'],
      ['cipher', tls.cipherName ?? '?'],
      ['group', tls.group !== undefined ? groupName(tls.group) : '?'],
      ['signature', tls.signatureScheme !== undefined ? schemeName(tls.signatureScheme) : '?'],
      ['alpn', tls.alpnProtocol ?? 'none'],
      ['http', `HTTP/${req.httpVersion}`],
      ['sni', tls.serverName ?? 'none'],
      ['hello retry', tls.helloRetry ? 'yes' : 'no'],
      ['private key', describe(socket?.connectionId)],
    ];
    if (tls.delegatedCredential) facts.push(['signed by', 'a delegated credential (RFC 9345): a short-lived key in this process that the private key above certified; no key-holder call']);
    // Mutual TLS: who the client is, and whether its certificate verified.
    const client = socket?.getPeerX509Certificate();
    if (client) facts.push(['client', `${client.subject.split('\n').reverse().join(',')} (${socket?.authorized ? 'verified' : 'not verified'})`]);
    const wantsHtml = String(req.headers.accept ?? '').includes('text/html');
    if (wantsHtml) {
      const rows = facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
      (res as http.ServerResponse).writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>keyward</title><h1>keyward</h1><p>This TLS connection was terminated by keyward. Where its private key lives is shown below: unless it says &ldquo;in this process&rdquo;, the server you are talking to never held it.</p><table>${rows}</table>`);
      return;
    }
    (res as http.ServerResponse).writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`keyward: hello over TLS\n${facts.map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
  };
}
