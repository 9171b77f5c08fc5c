/**
 * http.Server over keyward (createHttpsServer): bodies of several sizes both ways with
 * integrity checked by SHA-256, keep-alive, chunked responses, with node:https and curl.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createHttpsServer } from '../../src/node/http.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { curl, curlResolve } from '../support/peers.js';
import { httpsRequest } from './httpClient.js';
import { caPath, caPem, listen, patternBytes, serverCertificate, sha256, stopServer } from './helpers.js';

const SIZES = [0, 1, 16 * 1024 + 1, 5 * 1024 * 1024];

/** GET /bytes/N: N pattern bytes; GET /chunked/N: same bytes in 7 chunked writes; POST /hash: length and hash of the body. */
function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://x');
  const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
  const chunked = /^\/chunked\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && bytes) {
    const body = patternBytes(Number(bytes[1]));
    res.writeHead(200, { 'content-length': body.length, 'x-sha256': sha256(body) });
    res.end(body);
    return;
  }
  if (req.method === 'GET' && chunked) {
    const body = patternBytes(Number(chunked[1]));
    res.writeHead(200, { 'x-sha256': sha256(body), trailer: 'x-parts' });
    const step = Math.ceil(body.length / 7) || 1;
    let parts = 0;
    for (let off = 0; off < body.length; off += step, parts++) res.write(body.subarray(off, off + step));
    res.addTrailers({ 'x-parts': String(parts) });
    res.end();
    return;
  }
  if (req.method === 'POST' && url.pathname === '/hash') {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const socket = req.socket as unknown as KeywardTLSSocket;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ length: body.length, sha256: sha256(body), protocol: socket.getProtocol(), cipher: socket.getCipher()?.standardName }));
    });
    return;
  }
  res.writeHead(404).end('not found\n');
}

describe('createHttpsServer: http.Server over keyward', () => {
  let server: ReturnType<typeof createHttpsServer>;
  let port: number;
  let ca: string;
  let caFile: string;
  let tmp: string;
  const secureConnections: KeywardTLSSocket[] = [];

  before(async () => {
    ca = await caPem();
    caFile = await caPath();
    tmp = mkdtempSync(join(tmpdir(), 'keyward-https-'));
    server = createHttpsServer({ certificates: [await serverCertificate('ecdsa-p256')] }, handler);
    server.on('secureConnection', (s: KeywardTLSSocket) => secureConnections.push(s));
    port = await listen(server);
  });

  after(async () => {
    await stopServer(server);
    rmSync(tmp, { recursive: true, force: true });
  });

  for (const size of SIZES) {
    it(`node:https GET and POST a ${size}-byte body`, async () => {
      const expected = patternBytes(size);
      const get = await httpsRequest({ port, ca, path: `/bytes/${size}` });
      assert.equal(get.status, 200);
      assert.equal(get.body.length, size);
      assert.equal(sha256(get.body), sha256(expected));
      assert.equal(get.headers['x-sha256'], sha256(expected));

      const post = await httpsRequest({ port, ca, method: 'POST', path: '/hash', body: expected, headers: { 'content-length': size } });
      assert.equal(post.status, 200);
      const report = JSON.parse(post.body.toString()) as { length: number; sha256: string; protocol: string; cipher: string };
      assert.deepEqual(report, { length: size, sha256: sha256(expected), protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' });
    });
  }

  it('node:https chunked responses arrive whole, with trailers', async () => {
    for (const size of [1, 16 * 1024 + 1, 5 * 1024 * 1024]) {
      const res = await httpsRequest({ port, ca, path: `/chunked/${size}` });
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      assert.equal(res.headers['content-length'], undefined);
      assert.equal(sha256(res.body), sha256(patternBytes(size)));
      assert.equal(res.trailers['x-parts'], String(Math.min(7, size)));
    }
  });

  it('keep-alive: several requests share one TLS connection', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = secureConnections.length;
      const results = [];
      for (let i = 0; i < 6; i++) {
        const method = i % 2 === 0 ? 'GET' : 'POST';
        const body = i % 2 === 0 ? undefined : patternBytes(1000 * i, i);
        results.push(await httpsRequest({ port, ca, agent, method, path: method === 'GET' ? `/bytes/${1000 * i}` : '/hash', body }));
      }
      assert.ok(results.every((r) => r.status === 200));
      assert.deepEqual(
        results.map((r) => r.reusedSocket),
        [false, true, true, true, true, true],
      );
      assert.equal(new Set(results.map((r) => r.localPort)).size, 1, 'one TCP connection');
      assert.equal(secureConnections.length - before, 1, 'one TLS handshake');
    } finally {
      agent.destroy();
    }
  });

  it('curl: GET and POST of every size, integrity by SHA-256', async () => {
    for (const size of SIZES) {
      const out = join(tmp, `get-${size}`);
      const r = await curl(`https://127.0.0.1:${port}/bytes/${size}`, { cacert: caFile, args: ['-o', out] });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.status, 200);
      assert.equal(r.tlsVersion, 'TLSv1.3');
      assert.equal(sha256(readFileSync(out)), sha256(patternBytes(size)));

      const upload = join(tmp, `upload-${size}`);
      const body = patternBytes(size, 7);
      writeFileSync(upload, body);
      const post = await curl(`https://127.0.0.1:${port}/hash`, { cacert: caFile, args: ['--data-binary', `@${upload}`, '-H', 'content-type: application/octet-stream'] });
      assert.equal(post.code, 0, post.stderr);
      assert.equal(post.status, 200);
      assert.deepEqual(JSON.parse(post.body), { length: size, sha256: sha256(body), protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' });
    }
  });

  it('curl: keep-alive across three URLs with SNI, and a chunked response', async () => {
    const out1 = join(tmp, 'ka1');
    const out2 = join(tmp, 'ka2');
    const out3 = join(tmp, 'ka3');
    const url = (p: string) => `https://localhost:${port}${p}`;
    const r = await curl(url('/chunked/100000'), {
      cacert: caFile,
      resolve: [curlResolve('localhost', port)],
      args: ['-o', out1, url('/bytes/1'), '-o', out2, url('/bytes/16385'), '-o', out3],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(readFileSync(out1)), sha256(patternBytes(1)));
    assert.equal(sha256(readFileSync(out2)), sha256(patternBytes(16385)));
    assert.equal(sha256(readFileSync(out3)), sha256(patternBytes(100000)));
    assert.match(r.stderr, /Re-using existing connection/);
    assert.equal((r.stderr.match(/SSL connection using TLSv1\.3/g) ?? []).length, 1, 'one handshake for three requests');
    assert.match(r.stderr, /transfer-encoding: chunked/i);
  });

  it('a client that vanishes mid-response: the server cleans up and keeps serving', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: `/bytes/${5 * 1024 * 1024}`, ca, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ECONNRESET') reject(e);
      });
    });
    const deadline = Date.now() + 5_000;
    while (server.tlsAcceptor.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.tlsAcceptor.connections.size, 0, 'the abandoned connection was closed');
    const r = await httpsRequest({ port, ca, path: '/bytes/10' });
    assert.equal(r.status, 200);
  });
});
