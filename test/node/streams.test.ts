/**
 * Stream behaviour of KeywardTLSSocket: write backpressure against a slow reader (memory
 * stays bounded, every byte arrives), read backpressure against a fast writer, and what
 * half-close means over TLS 1.3.
 *
 * Half-close, as tested here: RFC 8446 6.1 makes close_notify close only the sender's
 * direction. A client's `end()` sends close_notify (then FIN); the server socket emits
 * 'end' and can still write. With the default allowHalfOpen: false the server socket
 * ends its own side right after the 'end' listeners ran, so a reply must be written in
 * (or before) the 'end' listener; with allowHalfOpen: true it stays writable until the
 * application calls end(), however long it takes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { before, describe, it } from 'node:test';
import { createServer, type KeywardServerOptions } from '../../src/node/server.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { LOOPBACK } from '../support/peers.js';
import { caPem, listen, liveArrayBufferBytes, once, patternBytes, serverCertificate, sha256, sleep, stopServer, withTimeout } from './helpers.js';

const MiB = 1024 * 1024;

async function server(onSocket: (s: KeywardTLSSocket) => void, extra: Partial<KeywardServerOptions> = {}) {
  const srv = createServer({ certificates: [await serverCertificate('ecdsa-p256')], ...extra }, onSocket);
  const port = await listen(srv);
  return { srv, port };
}

function connect(port: number, ca: string, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: LOOPBACK, port, ca, ...opts }, () => resolve(s));
      s.once('error', reject);
    }),
    10_000,
    'connect',
  );
}

/** Reads until 'end', pausing `napMs` after every `napEvery` bytes; the byte count and SHA-256 of what came. */
async function readSlowly(client: tls.TLSSocket, napEvery: number, napMs: number): Promise<{ received: number; hash: string }> {
  const hash = createHash('sha256');
  let received = 0;
  let sinceNap = 0;
  client.on('data', (d: Buffer) => {
    hash.update(d);
    received += d.length;
    sinceNap += d.length;
    if (sinceNap >= napEvery) {
      sinceNap = 0;
      client.pause();
      setTimeout(() => client.resume(), napMs);
    }
  });
  await withTimeout(once(client, 'end', 60_000), 60_000, 'all data');
  return { received, hash: hash.digest('hex') };
}

describe('backpressure', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  it('50 MiB to a slow reader: write() reports backpressure, buffers stay bounded, every byte arrives', async () => {
    const TOTAL = 50 * MiB;
    const CHUNK = 64 * 1024;
    const chunk = patternBytes(CHUNK, 3);
    const stats = { falseWrites: 0, maxWritable: 0, maxRawWritable: 0, maxArrayBuffersDelta: 0, sent: 0 };
    const baseline = await liveArrayBufferBytes();
    let sampledAt = -Infinity;
    let serverDone!: Promise<void>;
    const { srv, port } = await server((socket) => {
      serverDone = (async () => {
        while (stats.sent < TOTAL) {
          const ok = socket.write(chunk);
          stats.sent += CHUNK;
          stats.maxWritable = Math.max(stats.maxWritable, socket.writableLength);
          stats.maxRawWritable = Math.max(stats.maxRawWritable, socket.rawSocket.writableLength);
          if (ok) continue;
          stats.falseWrites++;
          // Listen before anything else is awaited: the 'drain' may come during the sampling.
          // Generous: on a loaded 2-core machine the slow reader can fall far behind.
          const drained = once(socket, 'drain', 60_000);
          // Buffers still referenced, sampled (at most every 2 MiB) while the writer is blocked,
          // when both ends hold the most: what they really keep.
          if (stats.sent - sampledAt >= 2 * MiB) {
            sampledAt = stats.sent;
            stats.maxArrayBuffersDelta = Math.max(stats.maxArrayBuffersDelta, (await liveArrayBufferBytes()) - baseline);
          }
          await drained;
        }
        socket.end();
      })();
    });
    try {
      const client = await connect(port, ca);
      const { received, hash } = await readSlowly(client, 512 * 1024, 20);
      await withTimeout(serverDone, 5_000, 'server writer');
      client.destroy();

      let expected = createHash('sha256');
      for (let off = 0; off < TOTAL; off += CHUNK) expected = expected.update(chunk);
      assert.equal(received, TOTAL);
      assert.equal(hash, expected.digest('hex'));
      assert.ok(stats.falseWrites > 10, `write() returned false ${stats.falseWrites} times: backpressure was exercised`);
      // The TLS socket holds at most its highWaterMark plus the chunk being encrypted;
      // the TCP socket at most one encrypted batch (its write waits for 'drain').
      assert.ok(stats.maxWritable <= 16 * 1024 + CHUNK, `TLS writableLength peaked at ${stats.maxWritable}`);
      assert.ok(stats.maxRawWritable <= 2 * CHUNK, `TCP writableLength peaked at ${stats.maxRawWritable}`);
      // Nothing close to the 50 MiB was held in memory by either side.
      assert.ok(stats.maxArrayBuffersDelta < 8 * MiB, `arrayBuffers grew by ${(stats.maxArrayBuffersDelta / MiB).toFixed(1)} MiB`);
      console.log(
        `# 50 MiB: write() false ${stats.falseWrites} times; peak TLS writableLength ${stats.maxWritable}, TCP ${stats.maxRawWritable}; live buffers +${(stats.maxArrayBuffersDelta / MiB).toFixed(1)} MiB`,
      );
    } finally {
      await stopServer(srv);
    }
  });

  it('write() and drain per write, for writes of 1 B to 1 MiB: false is followed by exactly one drain, true leaves nothing to wait for, buffers stay bounded', async () => {
    // Sizes around one record (16 KiB), the Writable high-water marks (16 KiB on Node 20,
    // 64 KiB on Node 24) and many records in one write, so that single, joined and
    // gathered socket writes all occur, both while the kernel takes them at once and
    // while it does not.
    const sizes = [1, 700, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 40_000, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 150_000, MiB];
    const TOTAL = 24 * MiB;
    const RECORD = 16 * 1024;
    /** Bytes on the wire for `n` bytes of application data: TLS 1.3 records of 16 KiB, 22 bytes each over. */
    const sealed = (n: number): number => n + Math.ceil(n / RECORD) * 22;
    const stats = { writes: 0, falseWrites: 0, drains: 0, callbacks: 0, maxOver: -Infinity, maxRawOver: -Infinity };
    const problems: string[] = [];
    const expected = createHash('sha256');
    let serverDone!: Promise<void>;
    const { srv, port } = await server((socket) => {
      socket.on('drain', () => stats.drains++);
      serverDone = (async () => {
        let sent = 0;
        for (let i = 0; sent < TOTAL; i++) {
          const chunk = patternBytes(Math.min(sizes[i % sizes.length], TOTAL - sent), i);
          expected.update(chunk);
          sent += chunk.length;
          const n = stats.writes++;
          const ok = socket.write(chunk, (err) => {
            if (err) problems.push(`write ${n}: ${err.message}`);
            else if (stats.callbacks++ !== n) problems.push(`write ${n}: callback out of order`);
          });
          // Writable's own bound: what it held below its mark, plus this chunk. The TCP
          // socket's: what it held below its mark, plus the records of one batch of what
          // the TLS socket holds (at most its mark plus the largest write).
          stats.maxOver = Math.max(stats.maxOver, socket.writableLength - (socket.writableHighWaterMark + chunk.length));
          const raw = socket.rawSocket;
          stats.maxRawOver = Math.max(stats.maxRawOver, raw.writableLength - (raw.writableHighWaterMark + sealed(socket.writableHighWaterMark + MiB)));
          if (ok) {
            if (socket.writableNeedDrain) problems.push(`write ${n} of ${chunk.length} returned true but a drain is pending`);
            // Passed down at once and reported done: the TCP socket must be below its mark too.
            if (socket.writableLength === 0 && raw.writableLength >= raw.writableHighWaterMark) {
              problems.push(`write ${n} of ${chunk.length} returned true with ${raw.writableLength} bytes held by the TCP socket`);
            }
            continue;
          }
          stats.falseWrites++;
          const before = stats.drains;
          await once(socket, 'drain', 30_000);
          if (stats.drains !== before + 1) problems.push(`write ${n} of ${chunk.length}: ${stats.drains - before} drains`);
        }
        await new Promise<void>((resolve) => socket.end(resolve));
      })();
    });
    try {
      const client = await connect(port, ca);
      // Slower than the writer.
      const { received, hash } = await readSlowly(client, 256 * 1024, 10);
      await withTimeout(serverDone, 10_000, 'server writer');
      client.destroy();
      assert.deepEqual(problems, []);
      assert.equal(received, TOTAL);
      assert.equal(hash, expected.digest('hex'));
      assert.equal(stats.callbacks, stats.writes, 'every write callback ran');
      assert.equal(stats.drains, stats.falseWrites, "one 'drain' per write that returned false, none otherwise");
      assert.ok(stats.falseWrites > 0 && stats.falseWrites < stats.writes, `write() returned false ${stats.falseWrites} of ${stats.writes} times`);
      assert.ok(stats.maxOver <= 0, `TLS writableLength went ${stats.maxOver} bytes over its high-water mark plus the write`);
      assert.ok(stats.maxRawOver <= 0, `TCP writableLength went ${stats.maxRawOver} bytes over its high-water mark plus one batch`);
      console.log(`# per-write backpressure: ${stats.writes} writes, ${stats.falseWrites} returned false, ${stats.drains} drains`);
    } finally {
      await stopServer(srv);
    }
  });

  it('a client writing 20 MiB to a server that reads slowly: the server socket pauses TCP reads, all bytes arrive', async () => {
    const TOTAL = 20 * MiB;
    const hash = createHash('sha256');
    let received = 0;
    let maxReadable = 0;
    let serverSocket: KeywardTLSSocket | undefined;
    const baseline = await liveArrayBufferBytes();
    let maxArrayBuffersDelta = 0;
    let gotAll!: () => void;
    const allReceived = new Promise<void>((r) => (gotAll = r));
    const { srv, port } = await server((socket) => {
      serverSocket = socket;
      socket.on('data', (d: Buffer) => {
        hash.update(d);
        received += d.length;
        maxReadable = Math.max(maxReadable, socket.readableLength);
        socket.pause();
        if (received % (2 * MiB) < d.length) {
          void liveArrayBufferBytes().then((live) => {
            maxArrayBuffersDelta = Math.max(maxArrayBuffersDelta, live - baseline);
            socket.resume();
          });
        } else {
          setTimeout(() => socket.resume(), 1);
        }
        if (received >= TOTAL) gotAll();
      });
    });
    try {
      const client = await connect(port, ca);
      const chunk = patternBytes(256 * 1024, 9);
      let expected = createHash('sha256');
      for (let sent = 0; sent < TOTAL; sent += chunk.length) {
        expected = expected.update(chunk);
        if (!client.write(chunk)) await once(client, 'drain', 20_000);
      }
      await withTimeout(allReceived, 60_000, 'server received everything');
      assert.equal(received, TOTAL);
      assert.equal(hash.digest('hex'), expected.digest('hex'));
      assert.ok(serverSocket);
      assert.ok(maxReadable <= 256 * 1024, `server readableLength peaked at ${maxReadable}`);
      assert.ok(maxArrayBuffersDelta < 8 * MiB, `arrayBuffers grew by ${(maxArrayBuffersDelta / MiB).toFixed(1)} MiB`);
      client.destroy();
    } finally {
      await stopServer(srv);
    }
  });
});

describe('half-close (close_notify closes one direction)', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  /** Client sends a request and end()s; resolves with what it then receives until the server ends. */
  async function requestThenEnd(port: number, request: string): Promise<{ reply: string; clientSawEnd: boolean }> {
    const client = await connect(port, ca);
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    const ended = once(client, 'end', 10_000).then(
      () => true,
      () => false,
    );
    client.end(request);
    const clientSawEnd = await ended;
    client.destroy();
    return { reply, clientSawEnd };
  }

  it('default (allowHalfOpen false): the server gets end, replies in its end listener, then its side ends', async () => {
    const events: string[] = [];
    const { srv, port } = await server((socket) => {
      let request = '';
      socket.on('data', (d: Buffer) => (request += d.toString()));
      socket.on('end', () => {
        events.push('end');
        socket.write(`reply to ${request} (${sha256(request).slice(0, 8)})`);
      });
      socket.on('finish', () => events.push('finish'));
      socket.on('close', () => events.push('close'));
    });
    try {
      const r = await requestThenEnd(port, 'question');
      assert.equal(r.reply, `reply to question (${sha256('question').slice(0, 8)})`);
      assert.equal(r.clientSawEnd, true, "the server's own close_notify/FIN ends the client's read side");
      await withTimeout(
        (async () => {
          while (!events.includes('close')) await sleep(10);
        })(),
        5_000,
        'server socket close',
      );
      assert.deepEqual(events, ['end', 'finish', 'close']);
    } finally {
      await stopServer(srv);
    }
  });

  it('allowHalfOpen: true: the server can reply long after the client ended its side', async () => {
    const { srv, port } = await server(
      (socket) => {
        let request = '';
        socket.on('data', (d: Buffer) => (request += d.toString()));
        socket.on('end', () => {
          setTimeout(() => {
            assert.equal(socket.writable, true);
            socket.write('late ');
            socket.end(`reply to ${request}`);
          }, 300);
        });
      },
      { allowHalfOpen: true },
    );
    try {
      const start = performance.now();
      const r = await requestThenEnd(port, 'question');
      assert.equal(r.reply, 'late reply to question');
      assert.equal(r.clientSawEnd, true);
      assert.ok(performance.now() - start >= 250);
    } finally {
      await stopServer(srv);
    }
  });
});
