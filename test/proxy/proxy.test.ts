/**
 * keyward proxy, in process: bytes both ways intact with backpressure and half-close,
 * PROXY protocol v2 toward a Unix-socket upstream, SNI routing, an unreachable upstream
 * answered at once, the handshake timeout, the connection limit, the key-operation limit,
 * the idle timeout, a reload while a connection stays open, and the metrics.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { KeyOperationError, signaturesVouchedFor, type KeyOperations } from '../../src/keys/keyOperations.js';
import { KeyOperationGate } from '../../src/proxy/keyGate.js';
import { localKey } from '../../src/keys/localKey.js';
import { decodeProxyV2, encodeProxyV2, ProxyHeaderError } from '../../src/proxy/proxyProtocol.js';
import { KeywardProxy } from '../../src/proxy/proxyServer.js';
import { pino } from 'pino';
import { groupWithNodeTlsClient } from '../support/expectedGroup.js';
import { heldElsewhere } from '../support/heldElsewhere.js';
import { metricValue } from '../support/keydFixture.js';
import { connectTls, echoHandler, freePort, makeProxyPki, readAll, sha256, startTestProxy, startUpstream, waitFor, type ProxyPki } from './harness.js';

let pki: ProxyPki;
before(async () => {
  pki = await makeProxyPki();
});
after(async () => {
  await pki.cleanup();
});

describe('keyward proxy (in process)', () => {
  test('64 MiB each way at once, then a half-close: both sides see every byte, and the upstream answers after the client ended', async () => {
    const SIZE = 64 << 20;
    const block = randomBytes(1 << 20);
    const pattern = (seed: number) => Buffer.concat(Array.from({ length: 64 }, (_, i) => Buffer.concat([Buffer.from([seed, i]), block.subarray(2)])));
    const fromClient = pattern(1);
    const fromUpstream = pattern(2);
    let upstreamGot: Buffer | undefined;
    const up = await startUpstream((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      // Sends its 64 MiB while reading the client's; after the client's FIN, a trailer.
      socket.write(fromUpstream);
      socket.once('end', () => {
        upstreamGot = Buffer.concat(chunks);
        socket.end(`\ntrailer after half-close: ${upstreamGot.length} bytes ${sha256(upstreamGot)}`);
      });
    });
    const { proxy, lines, port } = await startTestProxy(pki, { upstream: up.endpoint });
    try {
      const client = await connectTls(port, pki, 'localhost', { allowHalfOpen: true } as tls.ConnectionOptions);
      const received = readAll(client, 60_000);
      client.end(fromClient);
      const got = await received;
      assert.equal(upstreamGot?.length, SIZE);
      assert.equal(sha256(upstreamGot!), sha256(fromClient));
      const trailer = `\ntrailer after half-close: ${SIZE} bytes ${sha256(fromClient)}`;
      assert.equal(got.length, SIZE + Buffer.byteLength(trailer));
      assert.equal(sha256(got.subarray(0, SIZE)), sha256(fromUpstream));
      assert.equal(got.subarray(SIZE).toString(), trailer);
      await waitFor(() => lines.connections.length === 1, 'the access log line');
      const line = lines.connections[0];
      assert.equal(line.outcome, 'ok');
      assert.equal(line.bytesFromClient, SIZE);
      assert.equal(line.bytesToClient, SIZE + Buffer.byteLength(trailer));
      assert.equal(line.sni, 'localhost');
      assert.equal(line.version, 'TLSv1.3');
      assert.match(String(line.client), /^127\.0\.0\.1:\d+$/);
      assert.equal(typeof line.time, 'number');
      assert.equal(line.keyHolder, 'local');
      const text = await proxy.metrics.registry.metrics();
      assert.equal(metricValue(text, 'keyward_proxy_bytes_total', { direction: 'from_client' }), SIZE);
      assert.equal(metricValue(text, 'keyward_proxy_handshakes_total', { version: 'TLSv1.3', group: groupWithNodeTlsClient, key_holder: 'local', outcome: 'ok' }), 1);
      assert.equal(metricValue(text, 'keyward_proxy_key_operation_seconds_count', { key_holder: 'local', operation: 'sign', outcome: 'ok' }), 1);
      assert.equal(metricValue(text, 'keyward_proxy_open_connections'), 0);
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('PROXY v2 toward a Unix-socket upstream: client address, SNI, ALPN, TLS version and cipher, connection id', async () => {
    const up = await startUpstream((socket, header) => socket.end(JSON.stringify(header)), { expectProxyHeader: true, unixPath: join(pki.dir, 'app.sock') });
    const { proxy, lines, port } = await startTestProxy(pki, { upstream: up.endpoint, proxyProtocol: true, tls: { ALPNProtocols: ['http/1.1'] } });
    try {
      const client = await connectTls(port, pki, 'example.test', { ALPNProtocols: ['http/1.1'] });
      const clientPort = client.localPort;
      const body = (await readAll(client)).toString();
      const h = JSON.parse(body) as Record<string, unknown>;
      assert.equal(up.headers.length, 1);
      const header = up.headers[0];
      assert.equal(header.command, 'PROXY');
      assert.deepEqual(header.source, { address: '127.0.0.1', port: clientPort });
      assert.deepEqual(header.destination, { address: '127.0.0.1', port });
      assert.equal(header.authority, 'example.test');
      assert.equal(header.alpn, 'http/1.1');
      assert.equal(header.tls?.version, 'TLSv1.3');
      assert.equal(header.tls?.cipher, 'TLS_AES_128_GCM_SHA256');
      assert.equal(header.tls?.group, groupWithNodeTlsClient);
      assert.equal(header.tls?.signatureScheme, 'ecdsa_secp256r1_sha256');
      assert.equal(h.authority, 'example.test');
      await waitFor(() => lines.connections.length === 1, 'the access log line');
      assert.equal(header.uniqueId, lines.connections[0].connectionId);
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('mutual TLS toward clients: the verified client CN goes upstream in PROXY v2 and the access log; required refuses a client without one, optional lets it in', async () => {
    const up = await startUpstream((socket, header) => socket.end(header?.tls?.clientCn ?? '(none)'), { expectProxyHeader: true });
    const mtls = { requestCert: true, ca: pki.ca.certPem };
    const required = await startTestProxy(pki, { upstream: up.endpoint, proxyProtocol: true, tls: { ...mtls, rejectUnauthorized: true } });
    const optional = await startTestProxy(pki, { upstream: up.endpoint, proxyProtocol: true, tls: { ...mtls, rejectUnauthorized: false } });
    try {
      const withCert = { cert: pki.client.chainPem, key: pki.client.keyPem };
      assert.equal((await readAll(await connectTls(required.port, pki, 'localhost', withCert))).toString(), 'app-client');
      await waitFor(() => required.lines.connections.length === 1, 'the access log line');
      assert.equal(required.lines.connections[0].clientCn, 'app-client');
      // Without a certificate: TLS 1.3 clients learn of the refusal (certificate_required) after their Finished.
      const refused = await connectTls(required.port, pki).then(readAll).then(
        () => 'relayed',
        (err: Error) => err.message,
      );
      assert.match(refused, /certificate required|alert number 116|ECONNRESET|socket hang up/i);
      assert.equal(up.headers.length, 1, 'the refused client never reached the upstream');
      assert.equal((await readAll(await connectTls(optional.port, pki))).toString(), '(none)');
      assert.equal((await readAll(await connectTls(optional.port, pki, 'localhost', withCert))).toString(), 'app-client');
    } finally {
      await required.proxy.stop(0);
      await optional.proxy.stop(0);
      await up.close();
    }
  });

  test('listening on a Unix socket, over a socket file a dead process left behind', async () => {
    const path = join(pki.dir, 'front.sock');
    // bind() creates the file; the process exits without removing it, as a crashed proxy would.
    const r = spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`]);
    assert.equal(r.status, 0, String(r.stderr));
    const up = await startUpstream(echoHandler);
    const proxy = new KeywardProxy(
      { listen: { kind: 'unix', path }, logger: pino({ level: 'silent' }) },
      { upstream: up.endpoint, certificates: [{ cert: pki.localhost.chainPem, key: localKey(pki.localhost.keyPem), holder: 'local' }] },
    );
    try {
      assert.equal((await proxy.listen()).address, path);
      const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const c = tls.connect({ path, servername: 'localhost', ca: pki.ca.certPem }, () => resolve(c));
        c.once('error', reject);
      });
      s.write('over a unix socket');
      assert.equal(await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString()))), 'over a unix socket');
      s.destroy();
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('SNI routing: exact names and *.domain to their upstreams, others to the default', async () => {
    const named = (name: string) => startUpstream((s) => s.end(name));
    const [def, exact, wild] = await Promise.all([named('default'), named('exact'), named('wild')]);
    const { proxy, port } = await startTestProxy(pki, { upstream: def.endpoint, routes: { 'example.test': exact.endpoint, '*.wild.test': wild.endpoint } });
    try {
      const via = async (sni: string) => (await readAll(await connectTls(port, pki, sni))).toString();
      assert.equal(await via('localhost'), 'default');
      assert.equal(await via('example.test'), 'exact');
      assert.equal(await via('EXAMPLE.test'), 'exact');
      assert.equal(await via('a.wild.test'), 'wild');
    } finally {
      await proxy.stop(0);
      await Promise.all([def.close(), exact.close(), wild.close()]);
    }
  });

  test('an upstream that is down: the client connection is closed at once, logged and counted', async () => {
    const port0 = await freePort();
    const { proxy, lines, port } = await startTestProxy(pki, { upstream: { kind: 'tcp', host: '127.0.0.1', port: port0 } });
    try {
      const client = await connectTls(port, pki);
      const t0 = Date.now();
      const got = await readAll(client, 5_000);
      assert.equal(got.length, 0);
      assert.ok(Date.now() - t0 < 1_000, `closed after ${Date.now() - t0} ms`);
      await waitFor(() => lines.connections.length === 1, 'the access log line');
      assert.equal(lines.connections[0].outcome, 'upstream-unreachable');
      const text = await proxy.metrics.registry.metrics();
      assert.equal(metricValue(text, 'keyward_proxy_upstream_errors_total', { reason: 'ECONNREFUSED' }), 1);
    } finally {
      await proxy.stop(0);
    }
  });

  test('an upstream that does not answer the connect: the client is closed at the upstream connect timeout', async () => {
    // A listener with a full accept queue that never accepts: further SYNs get no answer.
    const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(20)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const fillers: Socket[] = [];
    try {
      const upstreamPort = Number(await new Promise<string>((resolve) => py.stdout!.once('data', (d: Buffer) => resolve(d.toString()))));
      for (let i = 0; i < 3; i++) fillers.push(netConnect(upstreamPort, '127.0.0.1').on('error', () => undefined));
      await new Promise((r) => setTimeout(r, 200));
      const { proxy, lines, port } = await startTestProxy(pki, { upstream: { kind: 'tcp', host: '127.0.0.1', port: upstreamPort }, limits: { upstreamConnectTimeoutMs: 400 } });
      try {
        const client = await connectTls(port, pki);
        const t0 = Date.now();
        assert.equal((await readAll(client, 5_000)).length, 0);
        const took = Date.now() - t0;
        assert.ok(took >= 300 && took < 2_500, `closed after ${took} ms`);
        await waitFor(() => lines.connections.length === 1, 'the access log line');
        assert.equal(lines.connections[0].outcome, 'upstream-unreachable');
        assert.equal(metricValue(await proxy.metrics.registry.metrics(), 'keyward_proxy_upstream_errors_total', { reason: 'ETIMEDOUT' }), 1);
      } finally {
        await proxy.stop(0);
      }
    } finally {
      for (const f of fillers) f.destroy();
      py.kill('SIGKILL');
    }
  });

  test('a client that never finishes its handshake is dropped at the handshake timeout', async () => {
    const up = await startUpstream(echoHandler);
    const { proxy, lines, port } = await startTestProxy(pki, { upstream: up.endpoint, limits: { handshakeTimeoutMs: 300 } });
    try {
      const raw = netConnect(port, '127.0.0.1');
      raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01])); // the start of a ClientHello, then silence
      const t0 = Date.now();
      await new Promise<void>((resolve) => raw.once('close', () => resolve()).resume());
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 3_000, `closed after ${took} ms`);
      await waitFor(() => lines.connections.length === 1, 'the access log line');
      assert.equal(lines.connections[0].outcome, 'ERR_TLS_HANDSHAKE_TIMEOUT');
      assert.equal(metricValue(await proxy.metrics.registry.metrics(), 'keyward_proxy_handshakes_total', { outcome: 'ERR_TLS_HANDSHAKE_TIMEOUT' }), 1);
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('the connection limit: beyond it new connections are closed at accept; a freed slot is reused', async () => {
    const up = await startUpstream(echoHandler);
    const { proxy, port } = await startTestProxy(pki, { upstream: up.endpoint, limits: { maxConnections: 2 } });
    const open: Socket[] = [];
    try {
      const a = await connectTls(port, pki);
      const b = await connectTls(port, pki);
      await waitFor(() => proxy.connectionCount === 2, 'two connections');
      const third = netConnect(port, '127.0.0.1');
      open.push(third);
      await new Promise<void>((resolve) => third.once('close', () => resolve()).resume());
      assert.equal(metricValue(await proxy.metrics.registry.metrics(), 'keyward_proxy_connections_refused_total', { reason: 'max-connections' }), 1);
      a.end();
      await waitFor(() => proxy.connectionCount === 1, 'a freed slot');
      const c = await connectTls(port, pki);
      c.write('still served');
      const echoed = await new Promise<string>((resolve) => c.once('data', (d: Buffer) => resolve(d.toString())));
      assert.equal(echoed, 'still served');
      b.destroy();
      c.destroy();
    } finally {
      for (const s of open) s.destroy();
      await proxy.stop(0);
      await up.close();
    }
  });

  test('the key-operation limit: one runs, one waits, the next handshake is refused at once', async () => {
    const up = await startUpstream((s) => s.end('ok'));
    const inner = localKey(pki.localhost.keyPem);
    let started = 0;
    const slow: KeyOperations = {
      publicKey: inner.publicKey,
      schemes: inner.schemes,
      keyId: inner.keyId,
      async sign(scheme, message, ctx, signal) {
        started++;
        await new Promise((r) => setTimeout(r, 400));
        if (signal.aborted) throw new KeyOperationError('aborted', 'aborted');
        return inner.sign(scheme, message, ctx, signal);
      },
    };
    const { proxy, port } = await startTestProxy(pki, { upstream: up.endpoint, certificates: [{ cert: pki.localhost.chainPem, key: slow, holder: 'slow' }], limits: { maxPendingKeyOps: 1, maxQueuedKeyOps: 1 } });
    try {
      const results = await Promise.allSettled([0, 1, 2].map((i) => new Promise((r) => setTimeout(r, i * 50)).then(() => connectTls(port, pki).then(readAll))));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const failed = results.filter((r) => r.status === 'rejected');
      assert.equal(ok.length, 2, JSON.stringify(results.map((r) => r.status)));
      assert.equal(failed.length, 1);
      assert.match(String((failed[0] as PromiseRejectedResult).reason), /internal error|alert number 80/i);
      assert.equal(started, 2, 'the refused one never reached the key holder');
      const text = await proxy.metrics.registry.metrics();
      assert.equal(metricValue(text, 'keyward_proxy_key_operation_seconds_count', { key_holder: 'slow', outcome: 'refused-busy' }), 1);
      assert.equal(metricValue(text, 'keyward_proxy_key_operation_seconds_count', { key_holder: 'slow', outcome: 'ok' }), 2);
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('the key gate passes on what the holder vouches for: an in-process key\'s signatures are not checked twice, any other holder\'s are', () => {
    const gate = new KeyOperationGate(1, 1, () => {});
    const inner = localKey(pki.localhost.keyPem);
    assert.equal(signaturesVouchedFor(gate.wrapKey(inner, 'local')), true);
    assert.equal(signaturesVouchedFor(gate.wrapKey(heldElsewhere(inner), 'elsewhere')), false);
  });

  test('the idle timeout closes a relayed connection with no traffic', async () => {
    const up = await startUpstream(echoHandler);
    const { proxy, lines, port } = await startTestProxy(pki, { upstream: up.endpoint, limits: { idleTimeoutMs: 300 } });
    try {
      const client = await connectTls(port, pki);
      client.write('ping');
      await new Promise((r) => client.once('data', r));
      const t0 = Date.now();
      await new Promise<void>((resolve) => client.once('close', () => resolve()).on('error', () => undefined).resume());
      assert.ok(Date.now() - t0 < 3_000);
      await waitFor(() => lines.connections.length === 1, 'the access log line');
      assert.equal(lines.connections[0].outcome, 'idle-timeout');
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });

  test('reload: new connections get the new certificate while an open one keeps relaying; the old key holders are released once their handshakes are over', async () => {
    const up = await startUpstream(echoHandler);
    let oldReleased = 0;
    const { proxy, port } = await startTestProxy(pki, {
      upstream: up.endpoint,
      certificates: [{ cert: pki.localhost.chainPem, key: localKey(pki.localhost.keyPem), holder: 'local' }],
      release: async () => void oldReleased++,
    });
    try {
      const before = await connectTls(port, pki, 'localhost', { checkServerIdentity: () => undefined });
      assert.match(before.getPeerX509Certificate()!.subject, /CN=localhost/);
      let released = false;
      proxy.reload({ upstream: up.endpoint, certificates: [{ cert: pki.example.chainPem, key: localKey(pki.example.keyPem), holder: 'local' }], release: async () => void (released = true) });
      const afterConn = await connectTls(port, pki, 'localhost', { checkServerIdentity: () => undefined });
      assert.match(afterConn.getPeerX509Certificate()!.subject, /CN=example\.test/);
      before.write('old connection still works');
      const echoed = await new Promise<string>((resolve) => before.once('data', (d: Buffer) => resolve(d.toString())));
      assert.equal(echoed, 'old connection still works');
      assert.equal(released, false, 'the new generation is in use');
      await waitFor(() => oldReleased === 1, 'the old generation released');
      before.destroy();
      afterConn.destroy();
    } finally {
      await proxy.stop(0);
      await up.close();
    }
    assert.equal(oldReleased, 1, 'released once');
  });

  test('PROXY v2 encoding of IPv6 and mapped addresses, and the decoder refusing malformed headers', () => {
    const v6 = encodeProxyV2({ source: { address: '2001:db8::1', port: 1 }, destination: { address: '::ffff:127.0.0.1', port: 2 } });
    assert.equal(v6[13], 0x21);
    const mapped = encodeProxyV2({ source: { address: '::ffff:10.0.0.1', port: 1 }, destination: { address: '::ffff:127.0.0.1', port: 2 } });
    assert.equal(mapped[13], 0x11, 'both sides IPv4-mapped: written as IPv4');
    const local = encodeProxyV2({});
    assert.equal(local[12], 0x20);
    const d = decodeProxyV2(v6)!;
    assert.deepEqual(d.source, { address: '2001:db8::1', port: 1 });
    assert.deepEqual(d.destination, { address: '::ffff:127.0.0.1', port: 2 });
    assert.equal(decodeProxyV2(v6.subarray(0, 20)), undefined, 'incomplete: wait for more');
    assert.throws(() => decodeProxyV2(Buffer.from('GET / HTTP/1.1\r\n')), ProxyHeaderError);
    const withTlv = encodeProxyV2({ source: { address: '127.0.0.1', port: 1 }, destination: { address: '127.0.0.1', port: 2 }, authority: 'example.test' });
    const bad = Buffer.from(withTlv);
    bad.writeUInt16BE(200, 16 + 12 + 1); // the TLV claims more bytes than the header holds
    assert.throws(() => decodeProxyV2(bad), /runs past the header/);
    const badFamily = Buffer.from(withTlv);
    badFamily[13] = 0x41;
    assert.throws(() => decodeProxyV2(badFamily), /unknown PROXY v2 address family/);
  });
});
