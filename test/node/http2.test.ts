/**
 * http2 over keyward (createHttp2SecureServer): h2 chosen by ALPN for curl --http2 and
 * node's http2.connect, many concurrent streams, large bodies both ways; HTTP/1.1
 * fallback for clients that offer only http/1.1 or no ALPN.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { createHttp2SecureServer, tlsSocketOf, type DualRequestListener } from '../../src/node/http.js';
import net from 'node:net';
import { curl, LOOPBACK } from '../support/peers.js';
import { httpsRequest } from './httpClient.js';
import { caPath, caPem, listen, patternBytes, serverCertificate, sha256, stopServer, withTimeout } from './helpers.js';

/** GET /bytes/N?seed=S: pattern bytes; POST /hash: the body's length and hash; both say which HTTP and ALPN served them. */
const handler: DualRequestListener = (req, res) => {
  const url = new URL(req.url ?? '/', 'https://x');
  // For h2, req.socket is http2's wrapper; tlsSocketOf reaches the TLS socket for both versions.
  const socket = tlsSocketOf(req);
  const about = { httpVersion: req.httpVersion, alpn: socket?.alpnProtocol, protocol: socket?.getProtocol() };
  const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && bytes) {
    const body = patternBytes(Number(bytes[1]), Number(url.searchParams.get('seed') ?? 1));
    (res as http.ServerResponse).writeHead(200, { 'content-length': String(body.length), 'x-about': JSON.stringify(about) });
    res.end(body);
    return;
  }
  if (req.method === 'POST' && url.pathname === '/hash') {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      (res as http.ServerResponse).writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...about, length: body.length, sha256: sha256(body) }));
    });
    return;
  }
  (res as http.ServerResponse).writeHead(404);
  res.end();
};

interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let resHeaders: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (resHeaders = h));
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => resolve({ status: Number(resHeaders[':status']), headers: resHeaders, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function h2Connect(port: number, ca: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

function closeSession(session: http2.ClientHttp2Session): Promise<void> {
  return withTimeout(new Promise<void>((resolve) => session.close(() => resolve())), 5_000, 'http2 session close');
}

describe('createHttp2SecureServer: http2 over keyward', () => {
  let server: ReturnType<typeof createHttp2SecureServer>;
  let port: number;
  let ca: string;
  let caFile: string;

  before(async () => {
    ca = await caPem();
    caFile = await caPath();
    server = createHttp2SecureServer({ certificates: [await serverCertificate('ecdsa-p256')] }, handler);
    port = await listen(server);
  });

  after(() => stopServer(server));

  it('curl --http2 negotiates h2 by ALPN', async () => {
    const r = await curl(`https://127.0.0.1:${port}/bytes/100000`, { cacert: caFile, http: '2', args: ['-o', '/dev/null'] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.alpn, 'h2');
    assert.equal(r.httpVersion, '2');
    assert.equal(r.status, 200);
    assert.match(r.stderr, /x-about: \{"httpVersion":"2.0","alpn":"h2","protocol":"TLSv1.3"\}/);
  });

  it('node http2.connect: 100 concurrent streams with bodies, all verified', async () => {
    const session = await h2Connect(port, ca);
    try {
      assert.equal(session.alpnProtocol, 'h2');
      const jobs = [];
      for (let i = 0; i < 100; i++) {
        if (i % 2 === 0) {
          const size = 1000 + i * 997;
          jobs.push(
            h2Request(session, { ':path': `/bytes/${size}?seed=${i + 1}` }).then((r) => {
              assert.equal(r.status, 200);
              assert.equal(sha256(r.body), sha256(patternBytes(size, i + 1)));
            }),
          );
        } else {
          const body = patternBytes(2000 + i * 501, i + 1);
          jobs.push(
            h2Request(session, { ':method': 'POST', ':path': '/hash' }, body).then((r) => {
              assert.equal(r.status, 200);
              const j = JSON.parse(r.body.toString()) as { length: number; sha256: string; httpVersion: string; alpn: string; protocol: string };
              assert.deepEqual(j, { httpVersion: '2.0', alpn: 'h2', protocol: 'TLSv1.3', length: body.length, sha256: sha256(body) });
            }),
          );
        }
      }
      await withTimeout(Promise.all(jobs), 30_000, '100 streams');
    } finally {
      await closeSession(session);
    }
  });

  it('node http2.connect: 8 MiB down and 8 MiB up on concurrent streams', async () => {
    const session = await h2Connect(port, ca);
    try {
      const size = 8 * 1024 * 1024;
      const up = patternBytes(size, 99);
      const [down, posted] = await withTimeout(
        Promise.all([h2Request(session, { ':path': `/bytes/${size}?seed=42` }), h2Request(session, { ':method': 'POST', ':path': '/hash' }, up)]),
        30_000,
        'large bodies',
      );
      assert.equal(down.body.length, size);
      assert.equal(sha256(down.body), sha256(patternBytes(size, 42)));
      assert.deepEqual(JSON.parse(posted.body.toString()), { httpVersion: '2.0', alpn: 'h2', protocol: 'TLSv1.3', length: size, sha256: sha256(up) });
    } finally {
      await closeSession(session);
    }
  });

  it('HTTP/1.1 fallback: a client offering only http/1.1, and one offering no ALPN', async () => {
    const onlyH1 = await httpsRequest({ port, ca, path: '/bytes/20000', ALPNProtocols: ['http/1.1'] });
    assert.equal(onlyH1.status, 200);
    assert.equal(onlyH1.httpVersion, '1.1');
    assert.deepEqual(JSON.parse(String(onlyH1.headers['x-about'])), { httpVersion: '1.1', alpn: 'http/1.1', protocol: 'TLSv1.3' });
    assert.equal(sha256(onlyH1.body), sha256(patternBytes(20000)));

    const body = patternBytes(300_000, 5);
    const noAlpn = await httpsRequest({ port, ca, method: 'POST', path: '/hash', body });
    assert.deepEqual(JSON.parse(noAlpn.body.toString()), { httpVersion: '1.1', alpn: false, protocol: 'TLSv1.3', length: body.length, sha256: sha256(body) });

    const c = await curl(`https://127.0.0.1:${port}/bytes/10`, { cacert: caFile, http: '1.1' });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.httpVersion, '1.1');
    assert.equal(c.alpn, 'http/1.1');
  });

  it('graceful close(): an in-flight h2 stream completes, the idle session gets GOAWAY, then the callback fires', async () => {
    let entered!: () => void;
    const handlerEntered = new Promise<void>((r) => (entered = r));
    const slow = createHttp2SecureServer({ certificates: [await serverCertificate('ecdsa-p256')] }, (req, res) => {
      entered();
      setTimeout(() => res.end('finished after close'), 300);
    });
    const slowPort = await listen(slow);
    const session = await h2Connect(slowPort, ca);
    try {
      const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
      const response = h2Request(session, { ':path': '/slow' }).then((r) => ({ ...r, at: performance.now() }));
      await withTimeout(handlerEntered, 10_000, 'handler');
      const closed = new Promise<number>((resolve) => slow.close(() => resolve(performance.now())));
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(slowPort, LOOPBACK, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      assert.equal(refused, 'ECONNREFUSED');
      const r = await withTimeout(response, 10_000, 'in-flight stream');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'finished after close');
      await withTimeout(goaway, 5_000, 'GOAWAY');
      const closedAt = await withTimeout(closed, 5_000, 'close callback');
      assert.ok(closedAt >= r.at - 5);
    } finally {
      session.destroy();
      if (slow.listening) await stopServer(slow);
    }
  });
});
