/**
 * The tls.TLSSocket-like surface of KeywardTLSSocket as a `secureConnection` listener
 * sees it; `tlsClientError` for garbage, TLS 1.2-only clients and handshake timeouts
 * (the server keeps serving after each); graceful `close()`.
 */
import assert from 'node:assert/strict';
import { groupWithNodeTlsClient } from '../support/expectedGroup.js';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { createHttpsServer } from '../../src/node/http.js';
import { createServer, type KeywardServer, type KeywardServerOptions } from '../../src/node/server.js';
import type { KeywardTLSSocket, TlsHandshakeError } from '../../src/node/tlsSocket.js';
import { LOOPBACK, nodeTlsClient } from '../support/peers.js';
import { httpsRequest } from './httpClient.js';
import { caPem, listen, once, patternBytes, serverCertificate, sleep, stopServer, withTimeout } from './helpers.js';

/** An echo server that records its sockets and client errors. */
async function echoServer(extra: Partial<KeywardServerOptions> = {}) {
  const sockets: KeywardTLSSocket[] = [];
  const clientErrors: { err: TlsHandshakeError; socket: KeywardTLSSocket; at: number }[] = [];
  const server = createServer({ certificates: [await serverCertificate('ecdsa-p256')], ...extra }, (socket) => {
    sockets.push(socket);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  server.on('tlsClientError', (err: TlsHandshakeError, socket: KeywardTLSSocket) => clientErrors.push({ err, socket, at: performance.now() }));
  const port = await listen(server);
  return { server, port, sockets, clientErrors };
}

/** Connects with node:tls and waits for the handshake. */
function tlsConnect(port: number, opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: LOOPBACK, port, ...opts }, () => resolve(s));
      s.once('error', reject);
    }),
    10_000,
    'tls connect',
  );
}

/** Writes `text` and resolves with the first `expect.length` bytes echoed back. */
function roundTrip(socket: tls.TLSSocket, text: string): Promise<string> {
  return withTimeout(
    new Promise((resolve) => {
      let got = '';
      const onData = (d: Buffer) => {
        got += d.toString();
        if (got.length >= text.length) {
          socket.off('data', onData);
          resolve(got);
        }
      };
      socket.on('data', onData);
      socket.write(text);
    }),
    10_000,
    'echo',
  );
}

/** Sends raw bytes over TCP and collects everything the server sends until it closes. */
function rawExchange(port: number, bytes: Buffer | null): Promise<{ received: Buffer; closedAfterMs: number }> {
  return withTimeout(
    new Promise((resolve) => {
      const start = performance.now();
      const chunks: Buffer[] = [];
      const s = net.connect(port, LOOPBACK, () => {
        if (bytes) s.write(bytes);
      });
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ received: Buffer.concat(chunks), closedAfterMs: performance.now() - start }));
    }),
    10_000,
    'raw exchange',
  );
}

/** Parses a plaintext TLS alert record: [level, description], or null. */
function alertOf(received: Buffer): [number, number] | null {
  if (received.length < 7 || received[0] !== 0x15 || received[1] !== 3 || received.readUInt16BE(3) !== 2) return null;
  return [received[5], received[6]];
}

describe('KeywardTLSSocket API on secureConnection', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  it('alpnProtocol, servername, getProtocol, getCipher, addresses, authorized, getPeerCertificate, exporter', async () => {
    const { server, port, sockets } = await echoServer({ ALPNProtocols: ['x-keyward-test', 'h2'] });
    try {
      const client = await tlsConnect(port, { ca, servername: 'localhost', ALPNProtocols: ['h2', 'x-keyward-test'] });
      assert.equal(await roundTrip(client, 'ping'), 'ping');
      const s = sockets[0];
      assert.ok(s, 'secureConnection fired');
      assert.equal(s.encrypted, true);
      assert.equal(s.getProtocol(), 'TLSv1.3');
      assert.equal(client.getProtocol(), 'TLSv1.3');
      assert.equal(s.alpnProtocol, 'x-keyward-test', 'server preference order');
      assert.equal(client.alpnProtocol, 'x-keyward-test');
      assert.equal(s.servername, 'localhost');
      assert.deepEqual(s.getCipher(), { name: 'TLS_AES_128_GCM_SHA256', standardName: 'TLS_AES_128_GCM_SHA256', version: 'TLSv1.3' });
      assert.equal(client.getCipher().standardName, s.getCipher()?.standardName);
      assert.equal(s.remoteAddress, '127.0.0.1');
      assert.equal(s.remotePort, client.localPort);
      assert.equal(s.remoteFamily, 'IPv4');
      assert.equal(s.localPort, port);
      assert.equal(s.authorized, false);
      assert.deepEqual(s.getPeerCertificate(), {});
      // node:tls on Node 24 (OpenSSL 3.5) sends an X25519MLKEM768 share first, which keyward
      // prefers where node:crypto has ML-KEM; Node 20's sends X25519.
      assert.deepEqual(s.getEphemeralKeyInfo(), groupWithNodeTlsClient === 'X25519MLKEM768' ? { type: 'TLSGroup', name: 'X25519MLKEM768', size: 0 } : { type: 'ECDH', name: 'X25519', size: 253 });
      assert.equal(s.isSessionReused(), false);
      assert.equal(s.negotiated.helloRetry, undefined);
      // RFC 5705/8446 exporter: both ends derive the same bytes.
      const context = Buffer.from('keyward context');
      assert.deepEqual(s.exportKeyingMaterial(48, 'EXPORTER-keyward-test', context), client.exportKeyingMaterial(48, 'EXPORTER-keyward-test', context));
      assert.notDeepEqual(s.exportKeyingMaterial(32, 'EXPORTER-keyward-test'), s.exportKeyingMaterial(32, 'EXPORTER-keyward-other'));
      client.destroy();
    } finally {
      await stopServer(server);
    }
  });

  it('no SNI and no ALPN: servername and alpnProtocol are false', async () => {
    const { server, port, sockets } = await echoServer({ ALPNProtocols: ['h2'] });
    try {
      const client = await tlsConnect(port, { ca });
      assert.equal(await roundTrip(client, 'x'), 'x');
      assert.equal(sockets[0].servername, false);
      assert.equal(sockets[0].alpnProtocol, false);
      client.destroy();
    } finally {
      await stopServer(server);
    }
  });

  it('configured suites and groups show in getCipher, getEphemeralKeyInfo and negotiated (with HelloRetryRequest)', async () => {
    const { server, port, sockets } = await echoServer({ tls13CipherSuites: [CipherSuite.TLS_CHACHA20_POLY1305_SHA256], groups: [NamedGroup.secp384r1] });
    try {
      const client = await tlsConnect(port, { ca });
      assert.equal(await roundTrip(client, 'x'), 'x');
      const s = sockets[0];
      assert.equal(s.getCipher()?.standardName, 'TLS_CHACHA20_POLY1305_SHA256');
      assert.equal(client.getCipher().standardName, 'TLS_CHACHA20_POLY1305_SHA256');
      assert.equal(s.getEphemeralKeyInfo()?.name, 'secp384r1');
      // node's client sends an X25519 share first, so P-384 needs a retry.
      assert.equal(s.negotiated.helloRetry, true);
      client.destroy();
    } finally {
      await stopServer(server);
    }
  });

  it('keyUpdate(): data keeps flowing both ways after the server updates and asks the client to', async () => {
    const { server, port, sockets } = await echoServer();
    try {
      const client = await tlsConnect(port, { ca });
      assert.equal(await roundTrip(client, 'before'), 'before');
      sockets[0].keyUpdate(true);
      assert.equal(await roundTrip(client, 'after one'), 'after one');
      sockets[0].keyUpdate(false);
      const big = patternBytes(200_000).toString('base64');
      assert.equal(await roundTrip(client, big), big);
      client.destroy();
    } finally {
      await stopServer(server);
    }
  });

  it('setTimeout, setNoDelay, setKeepAlive and a timeout event on an idle socket', async () => {
    const { server, port, sockets } = await echoServer();
    try {
      const client = await tlsConnect(port, { ca });
      assert.equal(await roundTrip(client, 'x'), 'x');
      const s = sockets[0];
      assert.equal(s.setNoDelay(true), s);
      assert.equal(s.setKeepAlive(true, 1000), s);
      const start = performance.now();
      let fired = 0;
      s.setTimeout(150, () => fired++);
      await once(s, 'timeout', 3_000);
      assert.ok(performance.now() - start >= 100);
      assert.equal(fired, 1);
      s.setTimeout(0);
      client.destroy();
    } finally {
      await stopServer(server);
    }
  });
});

describe('failures after the handshake', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  it('a corrupted record: bad_record_mac alert to the client, an error event on the server socket', async () => {
    const serverErrors: TlsHandshakeError[] = [];
    let serverClosed!: () => void;
    const serverSocketClosed = new Promise<void>((r) => (serverClosed = r));
    const server = createServer({ certificates: [await serverCertificate('ecdsa-p256')] }, (socket) => {
      socket.on('close', () => serverClosed());
      socket.on('error', (e: TlsHandshakeError) => serverErrors.push(e));
      socket.on('data', (d: Buffer) => socket.write(d));
    });
    const port = await listen(server);
    try {
      const raw = net.connect(port, LOOPBACK);
      const client = tls.connect({ socket: raw, ca, servername: 'localhost' });
      await once(client, 'secureConnect');
      assert.equal(await roundTrip(client, 'fine'), 'fine');
      const clientError = once<NodeJS.ErrnoException>(client, 'error');
      // An application_data record the client's keys never sealed, written under the TLS layer.
      raw.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), patternBytes(32, 5)]));
      const err = await clientError;
      assert.match(String(err.code), /BAD_RECORD_MAC/);
      await withTimeout(serverSocketClosed, 5_000, 'server socket close');
      assert.equal(serverErrors.length, 1);
      assert.equal(serverErrors[0].code, 'ERR_TLS_ALERT_SENT_BAD_RECORD_MAC');
      client.destroy();
      const again = await nodeTlsClient(port, { ca, send: 'again', until: 'again', timeoutMs: 10_000 });
      assert.equal(again.received, 'again');
    } finally {
      await stopServer(server);
    }
  });

  it('a TCP reset while the server writes, with no error listener on the socket, does not crash the server', async () => {
    const closes: boolean[] = [];
    const server = createServer({ certificates: [await serverCertificate('ecdsa-p256')] }, (socket) => {
      // Deliberately no 'error' listener: node:tls servers survive this too.
      socket.on('close', (hadError: boolean) => closes.push(hadError));
      socket.on('data', () => {
        for (let i = 0; i < 64; i++) socket.write(patternBytes(64 * 1024, i));
      });
    });
    const port = await listen(server);
    try {
      const raw = net.connect(port, LOOPBACK);
      const client = tls.connect({ socket: raw, ca, servername: 'localhost' });
      client.on('error', () => undefined);
      await once(client, 'secureConnect');
      client.write('send me a lot');
      await once(client, 'data');
      raw.resetAndDestroy();
      await withTimeout(
        (async () => {
          while (closes.length === 0) await sleep(10);
        })(),
        5_000,
        'server socket close',
      );
      assert.equal(server.tlsConnections.size, 0);
      const again = await nodeTlsClient(port, { ca, send: 'x', until: 'x', closeAfterMs: 2_000, timeoutMs: 10_000 });
      assert.equal(again.connected, true, again.error);
    } finally {
      await stopServer(server);
    }
  });
});

describe('tlsClientError, and the server keeps serving', () => {
  let ca: string;
  let srv: Awaited<ReturnType<typeof echoServer>>;

  before(async () => {
    ca = await caPem();
    // TLS 1.3 only, so that a TLS 1.2 client is a refused handshake (TLS 1.2 is on by default).
    srv = await echoServer({ handshakeTimeout: 500, minVersion: 'TLSv1.3' });
  });
  after(() => stopServer(srv.server));

  async function stillServes(): Promise<void> {
    const ok = await nodeTlsClient(srv.port, { ca, send: 'still here', until: 'still here', timeoutMs: 10_000 });
    assert.equal(ok.connected, true, ok.error);
    assert.equal(ok.received, 'still here');
  }

  async function nextClientError(from: number): Promise<{ err: TlsHandshakeError; socket: KeywardTLSSocket; at: number }> {
    await withTimeout(
      (async () => {
        while (srv.clientErrors.length <= from) await sleep(10);
      })(),
      5_000,
      'tlsClientError',
    );
    return srv.clientErrors[from];
  }

  it('plaintext HTTP instead of TLS: unexpected_message alert', async () => {
    const n = srv.clientErrors.length;
    const { received } = await rawExchange(srv.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.deepEqual(alertOf(received), [2, 10]);
    const { err } = await nextClientError(n);
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_UNEXPECTED_MESSAGE');
    assert.equal(err.alertSent, 10);
    await stillServes();
  });

  it('a handshake record with a nonsense ClientHello, and random bytes: an alert each', async () => {
    const n = srv.clientErrors.length;
    const bogusHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xff, 0xff]);
    const a = await rawExchange(srv.port, bogusHello);
    const alertA = alertOf(a.received);
    assert.ok(alertA && alertA[0] === 2, `fatal alert expected, got ${a.received.toString('hex')}`);
    const b = await rawExchange(srv.port, patternBytes(3000, 77));
    assert.ok(alertOf(b.received), `alert expected, got ${b.received.subarray(0, 16).toString('hex')}`);
    await nextClientError(n + 1);
    for (const e of srv.clientErrors.slice(n)) assert.match(e.err.code, /^ERR_TLS_ALERT_SENT_/);
    await stillServes();
  });

  it('a client offering only TLS 1.2 to a TLS 1.3-only server gets protocol_version', async () => {
    const n = srv.clientErrors.length;
    const r = await nodeTlsClient(srv.port, { ca, maxVersion: 'TLSv1.2', timeoutMs: 10_000 });
    assert.equal(r.connected, false);
    assert.equal(r.errorCode, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    assert.match(r.error ?? '', /protocol version/i);
    const { err } = await nextClientError(n);
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_PROTOCOL_VERSION');
    assert.equal(err.alertSent, 70);
    await stillServes();
  });

  it('a TCP client that sends nothing: handshake timeout after handshakeTimeout', async () => {
    const n = srv.clientErrors.length;
    const start = performance.now();
    const { received, closedAfterMs } = await rawExchange(srv.port, null);
    const { err, at } = await nextClientError(n);
    assert.equal(err.code, 'ERR_TLS_HANDSHAKE_TIMEOUT');
    assert.ok(at - start >= 450, `timed out after ${at - start} ms`);
    assert.ok(closedAfterMs < 3_000, `closed after ${closedAfterMs} ms`);
    assert.equal(received.length, 0);
    await stillServes();
  });

  it('a client that disconnects mid-handshake', async () => {
    const n = srv.clientErrors.length;
    // The first bytes of a ClientHello record, then FIN.
    const raw = net.connect(srv.port, LOOPBACK, () => raw.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    raw.on('error', () => undefined);
    raw.resume();
    const { err } = await nextClientError(n);
    assert.equal(err.code, 'ECONNRESET');
    assert.match(err.message, /closed the connection during the TLS handshake/);
    await stillServes();
  });
});

describe('graceful close()', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  it('https: stops accepting, the in-flight request completes, then the close callback fires', async () => {
    let entered!: () => void;
    const handlerEntered = new Promise<void>((r) => (entered = r));
    const server = createHttpsServer({ certificates: [await serverCertificate('ecdsa-p256')] }, (req, res) => {
      entered();
      setTimeout(() => res.end('finished after close'), 300);
    });
    const port = await listen(server);
    try {
      const response = httpsRequest({ port, ca, path: '/slow' }).then((r) => ({ ...r, at: performance.now() }));
      await withTimeout(handlerEntered, 10_000, 'handler');
      const closed = new Promise<number>((resolve) => server.close(() => resolve(performance.now())));
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(port, LOOPBACK, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      assert.equal(refused, 'ECONNREFUSED');
      const r = await response;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'finished after close');
      const closedAt = await withTimeout(closed, 5_000, 'close callback');
      assert.ok(closedAt >= r.at - 5, 'close callback after the response');
    } finally {
      if (server.listening) await stopServer(server);
    }
  });

  it('KeywardServer: an established connection keeps working after close(); the callback fires when it ends', async () => {
    const { server, port } = await echoServer();
    let closedAt: number | undefined;
    const client = await tlsConnect(port, { ca });
    try {
      const closed = new Promise<void>((resolve) =>
        (server as KeywardServer).close(() => {
          closedAt = performance.now();
          resolve();
        }),
      );
      const refused = await nodeTlsClient(port, { ca, timeoutMs: 5_000 });
      assert.equal(refused.connected, false);
      assert.match(refused.error ?? '', /ECONNREFUSED/);
      assert.equal(await roundTrip(client, 'after close()'), 'after close()');
      await sleep(100);
      assert.equal(closedAt, undefined, 'the open connection holds the close back');
      const endedAt = performance.now();
      client.end();
      await withTimeout(closed, 5_000, 'close callback');
      assert.ok(closedAt! >= endedAt);
    } finally {
      client.destroy();
      if (server.listening) await stopServer(server);
    }
  });
});
