// Interop with curl (OpenSSL backend, nghttp2): HTTPS GET over createHttpsServer for every
// key type (each with another suite and group), a response large enough to span many
// records, and HTTP/2 chosen by ALPN over createHttp2SecureServer (with the HTTP/1.1 fallback).
import assert from 'node:assert/strict';
import type http from 'node:http';
import type http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { createHttp2SecureServer, createHttpsServer } from '../../src/node/http.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import type { NegotiatedInfo } from '../../src/tls/engine/events.js';
import { curl, curlResolve, type CurlResult } from '../support/peers.js';
import { getPki, type KeyType, type PkiFixtures } from '../support/pki.js';
import { certificate, closeServer, describeRun, GROUPS, KEY_TYPE_NAMES, listen, SUITES, type GroupNames, type SuiteNames } from '../support/keywardServer.js';

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

/** GET /size/N answers N bytes; anything else a line naming the request. */
function handler(req: AnyRequest, res: AnyResponse): void {
  const size = /^\/size\/(\d+)$/.exec(req.url ?? '');
  res.setHeader('content-type', 'text/plain');
  if (size) {
    res.end(Buffer.alloc(Number(size[1]), 'k'));
    return;
  }
  res.end(`hello ${req.method} ${req.url} over HTTP/${req.httpVersion}\n`);
}

/** What the TLS layer under an HTTP server negotiated, per connection. */
interface Seen {
  negotiated: NegotiatedInfo;
  alpn: string | false;
}

interface Running {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

/** The keyward http servers emit `secureConnection` with the TLS socket, as https.Server does. */
function watch(server: http.Server | http2.Http2Server, seen: Seen[]): void {
  server.on('secureConnection', (s: KeywardTLSSocket) => seen.push({ negotiated: { ...s.negotiated }, alpn: s.alpnProtocol }));
}

async function startHttps(kt: KeyType): Promise<Running> {
  const server = createHttpsServer({ certificates: [certificate(pki.server[kt])], handshakeTimeout: 10_000 }, handler);
  const seen: Seen[] = [];
  watch(server, seen);
  const port = await listen(server);
  return {
    port,
    seen,
    close: () =>
      closeServer(server, () => {
        server.closeAllConnections();
        server.tlsAcceptor.destroyAll();
      }),
  };
}

async function startH2(): Promise<Running> {
  const server = createHttp2SecureServer({ certificates: [certificate(pki.server['ecdsa-p256'])], handshakeTimeout: 10_000 }, handler);
  const seen: Seen[] = [];
  watch(server, seen);
  const port = await listen(server);
  return { port, seen, close: () => closeServer(server, () => server.tlsAcceptor.destroyAll()) };
}

let pki: PkiFixtures;
before(async () => {
  pki = await getPki();
});

function get(port: number, path: string, args: string[], http?: '1.1' | '2'): Promise<CurlResult> {
  return curl(`https://localhost:${port}${path}`, {
    cacert: pki.ca.certPath,
    resolve: [curlResolve('localhost', port)],
    http,
    args: ['--tlsv1.3', ...args],
    timeoutMs: 10_000,
  });
}

describe('curl: HTTPS over createHttpsServer', () => {
  const [AES128, AES256, CHACHA] = SUITES;
  const [X25519, P256, P384, X448] = GROUPS;
  const cases: [KeyType, SuiteNames, GroupNames][] = [
    ['ecdsa-p256', AES128, X25519],
    ['ecdsa-p384', AES256, P384],
    ['rsa-2048', CHACHA, P256],
    ['ed25519', AES256, X448],
  ];
  for (const [kt, suite, group] of cases) {
    it(`GET with ${kt}, ${suite.name}, ${group.openssl}`, async () => {
      const server = await startHttps(kt);
      try {
        const res = await get(server.port, '/hello?x=1', ['--tls13-ciphers', suite.name, '--curves', group.openssl]);
        const why = describeRun(res);
        assert.equal(res.code, 0, why);
        assert.equal(res.status, 200, why);
        assert.equal(res.body, 'hello GET /hello?x=1 over HTTP/1.1\n');
        assert.equal(res.tlsVersion, 'TLSv1.3', why);
        assert.equal(res.cipher, suite.name, why);
        assert.equal(res.alpn, 'http/1.1', why);
        assert.equal(server.seen.length, 1);
        const n = server.seen[0].negotiated;
        assert.equal(n.cipherName, suite.name);
        assert.equal(n.group, group.group);
        assert.equal(n.signatureScheme, KEY_TYPE_NAMES[kt].scheme);
        assert.equal(n.serverName, 'localhost', 'curl sends SNI for a host name');
        assert.equal(server.seen[0].alpn, 'http/1.1');
      } finally {
        await server.close();
      }
    });
  }

  it('a 1 MB response spans many records and arrives whole', async () => {
    const server = await startHttps('ecdsa-p256');
    try {
      const res = await get(server.port, '/size/1048576', []);
      assert.equal(res.status, 200, describeRun(res));
      assert.equal(res.body.length, 1_048_576);
      assert.ok(/^k+$/.test(res.body));
    } finally {
      await server.close();
    }
  });

  it('a certificate from an untrusted CA is refused by curl (the chain really is checked)', async () => {
    const server = createHttpsServer({ certificates: [certificate(pki.untrusted.server)], handshakeTimeout: 10_000 }, handler);
    const port = await listen(server);
    try {
      const res = await get(port, '/', []);
      assert.equal(res.code, 60, `curl exit 60 (peer certificate cannot be authenticated)\n${describeRun(res)}`);
    } finally {
      await closeServer(server, () => {
        server.closeAllConnections();
        server.tlsAcceptor.destroyAll();
      });
    }
  });
});

describe('curl: HTTP/2 via ALPN over createHttp2SecureServer', () => {
  let server: Running;
  before(async () => {
    server = await startH2();
  });
  after(() => server.close());

  it('--http2 negotiates h2 and gets an HTTP/2 response', async () => {
    const before = server.seen.length;
    const res = await get(server.port, '/h2?y=2', [], '2');
    const why = describeRun(res);
    assert.equal(res.code, 0, why);
    assert.equal(res.alpn, 'h2', why);
    assert.equal(res.httpVersion, '2', why);
    assert.equal(res.status, 200, why);
    assert.equal(res.body, 'hello GET /h2?y=2 over HTTP/2.0\n');
    assert.match(res.stderr, /^< HTTP\/2 200/m, why);
    assert.equal(server.seen.length, before + 1);
    assert.equal(server.seen.at(-1)?.alpn, 'h2');
  });

  it('--http2 with a 1 MB body (flow control over the TLS socket)', async () => {
    const res = await get(server.port, '/size/1048576', [], '2');
    assert.equal(res.httpVersion, '2', describeRun(res));
    assert.equal(res.body.length, 1_048_576);
  });

  it('--http1.1 to the same server falls back to HTTP/1.1', async () => {
    const res = await get(server.port, '/one', [], '1.1');
    const why = describeRun(res);
    assert.equal(res.alpn, 'http/1.1', why);
    assert.equal(res.httpVersion, '1.1', why);
    assert.equal(res.body, 'hello GET /one over HTTP/1.1\n');
    assert.equal(server.seen.at(-1)?.alpn, 'http/1.1');
  });
});
