/**
 * keyd's connection budgets: 1,200 TCP connections that never start a TLS handshake
 * (from 40 source addresses and from the front's own) neither lock a real front out nor
 * stay open past the handshake timeout, and they show in `keyd_connections`; an
 * authenticated connection that sends part of a frame (at once, or a byte at a time)
 * and then stalls is closed at the frame timeout, and an idle one at the idle timeout.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Keyd } from '../../src/keyd/server.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { KeydClient } from '../../src/keys/remoteKey.js';
import { fetchText, makeKeydPki, metricValue, readAudit, startTestKeyd, tempDir, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';
import { startEchoServer } from '../support/keywardServer.js';
import { nodeTlsClient } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const IDLE_CONNECTIONS = 1200;
const HANDSHAKE_TIMEOUT_MS = 3000;

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let sitePki: PkiFixtures;
let keyd: Keyd;
let auditPath: string;

before(async () => {
  root = await tempDir('keyd-limits-');
  pki = await makeKeydPki(root.dir, ['front']);
  sitePki = await getPki();
  const started = await startTestKeyd(
    root.dir,
    pki,
    { limits: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, frameTimeoutMs: 500, idleTimeoutMs: 1500 } },
    { keys: [{ ops: new LocalKey(sitePki.server['ecdsa-p256'].keyPem), serverNames: ['localhost'] }] },
  );
  keyd = started.keyd;
  auditPath = started.config.audit.file;
});

after(async () => {
  await keyd?.close();
  await root?.cleanup();
});

async function metrics(): Promise<string> {
  return (await fetchText(`http://127.0.0.1:${keyd.metricsAddress!.port}/metrics`)).text;
}

/** Opens a TCP connection that never says anything; resolves once connected (or failed). */
function idleConnection(port: number, localAddress: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = netConnect({ host: '127.0.0.1', port, localAddress });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined);
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('close', () => resolve({ socket, closed }));
  });
}

/** A TLS connection authenticated as the front, with nothing sent yet. */
async function frontConnection(): Promise<{ socket: TLSSocket; closed: Promise<number> }> {
  const c = pki.clients.front;
  const socket = tlsConnect({ host: '127.0.0.1', port: keyd.tlsAddress!.port, ca: pki.caPem, cert: c.certPem, key: c.keyPem, servername: 'localhost' });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
  // In TLS 1.3 keyd checks the client certificate after the client's handshake ends:
  // a PING answered means keyd counts it as an established front.
  socket.write(Buffer.from([0, 0, 0, 6, 1, 0x01, 0, 0, 0, 9]));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  const t0 = performance.now();
  return { socket, closed: new Promise((r) => socket.once('close', () => r(performance.now() - t0))) };
}

test(`${IDLE_CONNECTIONS} idle pre-handshake connections: a real front is served within a second, and keyd closes them at the handshake timeout`, async (t) => {
  const port = keyd.tlsAddress!.port;
  const idle: Array<{ socket: Socket; closed: Promise<void> }> = [];
  try {
    // 40 other source addresses on the loopback network, and the front's own.
    for (let i = 0; i < IDLE_CONNECTIONS; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(IDLE_CONNECTIONS, i + 100); j++) batch.push(idleConnection(port, j % 41 === 0 ? '127.0.0.1' : `127.0.1.${(j % 41) + 1}`));
      idle.push(...(await Promise.all(batch)));
    }
    // 'connect' fires once the kernel has queued a connection; wait until keyd has taken them all.
    let pending = 0;
    let evicted = 0;
    for (let i = 0; i < 50 && pending + evicted < IDLE_CONNECTIONS; i++) {
      if (i > 0) await sleep(50);
      const text = await metrics();
      pending = metricValue(text, 'keyd_connections', { transport: 'tls', state: 'handshake' });
      evicted = metricValue(text, 'keyd_connections_closed_total', { reason: 'evicted' });
    }
    assert.ok(pending > 0 && pending <= 256, `pending handshakes counted and bounded: ${pending}`);
    assert.equal(pending + evicted, IDLE_CONNECTIONS, 'the budgets closed the oldest idle connections');
    const tAccepted = performance.now();

    // A real front: a new mTLS connection to keyd, its key, a signature, then a TLS client's handshake through it.
    const t0 = performance.now();
    const client = await KeydClient.connect({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), pingIntervalMs: 500, deadlineMs: 1000 });
    try {
      const key = await client.key({ serverName: 'localhost', keyType: 'ec-p256' });
      const server = await startEchoServer({ certificates: [{ cert: sitePki.server['ecdsa-p256'].chainPem, key }] });
      try {
        const r = await nodeTlsClient(server.port, { ca: sitePki.ca.certPem, servername: 'localhost', send: 'hi', until: 'hi', timeoutMs: 5000 });
        const ms = performance.now() - t0;
        assert.equal(r.connected, true, r.error);
        assert.equal(r.received, 'hi');
        t.diagnostic(`front served in ${ms.toFixed(0)} ms beside ${pending} pending connections`);
        assert.ok(ms < 1000, `front connected to keyd and served a TLS client in ${ms.toFixed(0)} ms`);
      } finally {
        await server.close();
      }
      const during = await metrics();
      assert.ok(metricValue(during, 'keyd_connections', { transport: 'tls', state: 'established' }) >= 1);

      // Every idle connection is closed by keyd by the handshake timeout after keyd took it (plus slack).
      const deadline = HANDSHAKE_TIMEOUT_MS + 3000 - (performance.now() - tAccepted);
      const allClosed = await Promise.race([Promise.all(idle.map((c) => c.closed)).then(() => true), sleep(Math.max(deadline, 100)).then(() => false)]);
      assert.equal(allClosed, true, 'keyd closed every idle pre-handshake connection');
      const afterText = await metrics();
      assert.equal(metricValue(afterText, 'keyd_connections', { transport: 'tls', state: 'handshake' }), 0);
      assert.ok(metricValue(afterText, 'keyd_connections_closed_total', { reason: 'handshake-timeout' }) > 0);
      // The authenticated front outlives them all.
      const k2 = await client.key({ serverName: 'localhost' });
      assert.equal(k2.keyId, key.keyId);
    } finally {
      client.close();
    }
  } finally {
    for (const c of idle) c.socket.destroy();
  }
});

test('an authenticated connection that sends part of a frame and stalls is closed at the frame timeout, and audited', async () => {
  const { socket, closed } = await frontConnection();
  // The first 5 bytes of a frame header, then nothing.
  socket.write(Buffer.from([0, 0, 0, 6, 1]));
  const ms = await Promise.race([closed, sleep(5000).then(() => -1)]);
  socket.destroy();
  assert.ok(ms >= 400 && ms < 3000, `closed ${ms.toFixed(0)} ms after the partial frame`);
  await keyd.audit.flush();
  const lines = await readAudit(auditPath);
  assert.ok(lines.some((l) => l.op === 'protocol' && l.outcome === 'timeout' && /not complete 500 ms after its first byte/.test(String(l.reason))));
  assert.ok(metricValue(await metrics(), 'keyd_connections_closed_total', { reason: 'frame-timeout' }) >= 1);
});

test('a frame trickled in a byte at a time does not reset the frame timeout', async () => {
  const { socket, closed } = await frontConnection();
  let stop = false;
  const trickle = (async () => {
    // A 1 KiB frame, one byte every 100 ms: it would take 100 s.
    const frame = Buffer.alloc(1024);
    frame.writeUInt32BE(1020);
    for (let i = 0; i < frame.length && !stop && !socket.destroyed; i++) {
      socket.write(frame.subarray(i, i + 1));
      await sleep(100);
    }
  })();
  const ms = await Promise.race([closed, sleep(5000).then(() => -1)]);
  stop = true;
  socket.destroy();
  await trickle;
  assert.ok(ms >= 300 && ms < 3000, `closed ${ms.toFixed(0)} ms after the first byte`);
});

test('an authenticated connection with nothing in flight is closed at the idle timeout; one that pings stays', async () => {
  const idle = await frontConnection();
  const busy = await frontConnection();
  const pinger = setInterval(() => busy.socket.write(Buffer.from([0, 0, 0, 6, 1, 0x01, 0, 0, 0, 9])), 500);
  try {
    const ms = await Promise.race([idle.closed, sleep(6000).then(() => -1)]);
    assert.ok(ms >= 1200 && ms < 4500, `idle connection closed after ${ms.toFixed(0)} ms`);
    assert.equal(busy.socket.destroyed, false, 'a connection in use stays open');
    assert.ok(metricValue(await metrics(), 'keyd_connections_closed_total', { reason: 'idle-timeout' }) >= 1);
  } finally {
    clearInterval(pinger);
    idle.socket.destroy();
    busy.socket.destroy();
  }
});
