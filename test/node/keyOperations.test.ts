/**
 * Key operations through the Node adapter: a slow sign stalls no other connection, a
 * failed sign fails only its own handshake (internal_error), a client that goes away
 * aborts its pending sign, and 2000 handshakes can wait on the key at once.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { before, describe, it } from 'node:test';
import type { KeyOperations, OperationContext } from '../../src/keys/keyOperations.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { createServer, type KeywardServerOptions } from '../../src/node/server.js';
import type { KeywardTLSSocket, TlsHandshakeError } from '../../src/node/tlsSocket.js';
import type { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { clientHelloRecord, defaultExtensions, ext, nextRecord } from '../support/clientHelloBuilder.js';
import { LOOPBACK, nodeTlsClient } from '../support/peers.js';
import { caPem, ControlledKey, listen, serverCertificate, sleep, stopServer, withTimeout } from './helpers.js';

interface Fixture {
  key: ControlledKey;
  port: number;
  clientErrors: { err: TlsHandshakeError; socket: KeywardTLSSocket }[];
  stop: () => Promise<void>;
}

/** An echo server whose key is wrapped by a ControlledKey. */
async function fixture(behaviour: ConstructorParameters<typeof ControlledKey>[1], extra: Partial<KeywardServerOptions> = {}): Promise<Fixture> {
  let key!: ControlledKey;
  const cert = await serverCertificate('ecdsa-p256', (k) => (key = new ControlledKey(k, behaviour)));
  const clientErrors: Fixture['clientErrors'] = [];
  const server = createServer({ certificates: [cert], ...extra }, (socket) => {
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  server.on('tlsClientError', (err: TlsHandshakeError, socket: KeywardTLSSocket) => clientErrors.push({ err, socket }));
  const port = await listen(server);
  return { key, port, clientErrors, stop: () => stopServer(server) };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!cond()) await sleep(2);
    })(),
    ms,
    what,
  );
}

function connect(port: number, opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOOPBACK, port, ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

function roundTrip(socket: tls.TLSSocket, text: string): Promise<void> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.write(text);
  });
}

describe('key operations through the adapter', () => {
  let ca: string;
  before(async () => {
    ca = await caPem();
  });

  it('a sign that takes 200 ms stalls no other connection', async () => {
    const f = await fixture({ delayMs: 0 });
    try {
      const a = await connect(f.port, { ca });
      await roundTrip(a, 'warm-up');
      f.key.delayMs = 200;
      const bStart = performance.now();
      const b = connect(f.port, { ca }).then((s) => ({ s, at: performance.now() }));
      await until(() => f.key.pendingCount === 1, 5_000, 'slow sign started');
      const rtts: number[] = [];
      let lastDone = 0;
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        await roundTrip(a, `ping ${i}`);
        lastDone = performance.now();
        rtts.push(lastDone - t);
      }
      assert.equal(f.key.pendingCount, 1, 'the slow sign is still pending after 20 round trips on the other connection');
      const { s: bSocket, at: bDone } = await withTimeout(b, 10_000, 'slow handshake');
      const slowSignDone = f.key.log.resolvedAt[1];
      assert.ok(lastDone < slowSignDone, `round trips finished at ${lastDone.toFixed(1)}, the slow sign at ${slowSignDone.toFixed(1)}`);
      assert.ok(bDone - bStart >= 190, `slow handshake took ${(bDone - bStart).toFixed(0)} ms`);
      await roundTrip(bSocket, 'b works');
      a.destroy();
      bSocket.destroy();
    } finally {
      await f.stop();
    }
  });

  it('a rejected sign fails only its own handshake, with internal_error', async () => {
    const f = await fixture({ delayMs: 30, fail: (ctx: OperationContext) => ctx.serverName === 'fail.test' });
    try {
      const good = Array.from({ length: 20 }, (_, i) => nodeTlsClient(f.port, { ca, servername: 'localhost', send: `hello ${i}`, until: `hello ${i}`, timeoutMs: 15_000 }));
      const bad = Array.from({ length: 5 }, () => nodeTlsClient(f.port, { ca, servername: 'fail.test', timeoutMs: 15_000 }));
      const [goodResults, badResults] = await Promise.all([Promise.all(good), Promise.all(bad)]);
      goodResults.forEach((r, i) => {
        assert.equal(r.connected, true, r.error);
        assert.equal(r.received, `hello ${i}`);
      });
      for (const r of badResults) {
        assert.equal(r.connected, false);
        assert.equal(r.errorCode, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', r.error);
      }
      assert.equal(f.clientErrors.length, 5);
      for (const { err, socket } of f.clientErrors) {
        assert.equal(err.code, 'ERR_TLS_ALERT_SENT_INTERNAL_ERROR');
        assert.match(err.message, /key operation failed: test key holder refused/);
        assert.equal(socket.negotiated.serverName, 'fail.test');
      }
    } finally {
      await f.stop();
    }
  });

  it('a sign that throws instead of rejecting, or returns a bad signature, fails only that handshake', async () => {
    let mode: 'throw' | 'garbage' | 'ok' = 'ok';
    let inner!: KeyOperations;
    const cert = await serverCertificate('ecdsa-p256', (k) => {
      inner = k;
      const wrapper: KeyOperations = {
        publicKey: k.publicKey,
        schemes: k.schemes,
        keyId: k.keyId,
        sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal) {
          if (mode === 'throw') throw new KeyOperationError('internal', 'backend threw');
          if (mode === 'garbage') return Promise.resolve(new Uint8Array(72).fill(7));
          return inner.sign(scheme, message, ctx, signal);
        },
      };
      return wrapper;
    });
    const errors: TlsHandshakeError[] = [];
    const server = createServer({ certificates: [cert] }, (s) => s.end('ok'));
    server.on('tlsClientError', (e: TlsHandshakeError) => errors.push(e));
    const port = await listen(server);
    try {
      mode = 'throw';
      const thrown = await nodeTlsClient(port, { ca, timeoutMs: 10_000 });
      assert.equal(thrown.errorCode, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', thrown.error);
      mode = 'garbage';
      const garbage = await nodeTlsClient(port, { ca, timeoutMs: 10_000 });
      assert.equal(garbage.errorCode, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', garbage.error);
      mode = 'ok';
      const ok = await nodeTlsClient(port, { ca, timeoutMs: 10_000 });
      assert.equal(ok.connected, true, ok.error);
      assert.equal(ok.received, 'ok');
      assert.equal(errors.length, 2);
      assert.match(errors[0].message, /backend threw/);
      assert.match(errors[1].message, /does not verify/);
    } finally {
      await stopServer(server);
    }
  });

  it('a client that disconnects while its sign is pending aborts the sign', async () => {
    const f = await fixture({ delayMs: 10_000 });
    try {
      const client = tls.connect({ host: LOOPBACK, port: f.port, ca });
      client.on('error', () => undefined);
      await until(() => f.key.pendingCount === 1, 5_000, 'sign started');
      const signal = f.key.log.signals[0];
      assert.equal(signal.aborted, false);
      const disconnectedAt = performance.now();
      client.destroy();
      await until(() => signal.aborted, 2_000, 'abort');
      assert.ok(performance.now() - disconnectedAt < 1_000);
      assert.ok(signal.reason instanceof KeyOperationError);
      assert.equal((signal.reason as KeyOperationError).code, 'aborted');
      await until(() => f.key.log.aborted === 1 && f.key.pendingCount === 0, 2_000, 'sign settled');
      await until(() => f.clientErrors.length === 1, 2_000, 'tlsClientError');
      assert.equal(f.clientErrors[0].err.code, 'ECONNRESET');
      assert.equal(f.clientErrors[0].socket.pendingKeyOperationCount, 0);
    } finally {
      await f.stop();
    }
  });

  it('a bad key share found while the sign is pending gets illegal_parameter alone and aborts the sign', async () => {
    // The signature is asked for before the key exchange is computed (so the two overlap);
    // the all-zero x25519 share fails that computation while the sign is still pending.
    const f = await fixture({ delayMs: 10_000 });
    try {
      const raw = net.connect({ host: LOOPBACK, port: f.port });
      const chunks: Buffer[] = [];
      raw.on('data', (d: Buffer) => chunks.push(d));
      raw.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
      raw.write(clientHelloRecord({ extensions: [...defaultExtensions().filter((e) => e.type !== 51), ext.keyShare([{ group: 29, key: new Uint8Array(32) }])] }));
      await withTimeout(closed, 5_000, 'server closes the connection');
      let rest = Buffer.concat(chunks);
      const types: number[] = [];
      let last: Buffer | undefined;
      for (let r = nextRecord(rest); r; r = nextRecord(rest)) {
        types.push(r.type);
        last = r.body;
        rest = r.rest;
      }
      assert.deepEqual(types, [21], 'only an alert, no ServerHello before it');
      assert.deepEqual([...last!], [2, 47]);
      assert.equal(f.key.log.started, 1);
      await until(() => f.key.log.signals[0].aborted, 2_000, 'the pending sign is aborted');
      await until(() => f.clientErrors.length === 1, 2_000, 'tlsClientError');
      assert.equal(f.clientErrors[0].err.code, 'ERR_TLS_ALERT_SENT_ILLEGAL_PARAMETER');
    } finally {
      await f.stop();
    }
  });

  it('a handshake timeout while the sign is pending aborts the sign too', async () => {
    const f = await fixture({ delayMs: 10_000 }, { handshakeTimeout: 300 });
    try {
      const r = nodeTlsClient(f.port, { ca, timeoutMs: 10_000 });
      await until(() => f.key.pendingCount === 1, 5_000, 'sign started');
      await until(() => f.key.log.signals[0].aborted, 3_000, 'abort after the handshake timeout');
      const result = await r;
      assert.equal(result.connected, false);
      assert.equal(f.clientErrors[0].err.code, 'ERR_TLS_HANDSHAKE_TIMEOUT');
    } finally {
      await f.stop();
    }
  });
});

/** N node:tls clients at once; each handshakes, does one round trip and closes. Resolves with each outcome. */
function handshakeStorm(port: number, n: number, secureContext: tls.SecureContext): Promise<string[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<string>((resolve) => {
          // A round trip after the handshake shows the server finished it too.
          const s = tls.connect({ host: LOOPBACK, port, secureContext }, () => {
            if (s.getProtocol() !== 'TLSv1.3' || !s.authorized) {
              s.destroy();
              resolve(`unexpected: ${s.getProtocol()} ${String(s.authorizationError)}`);
              return;
            }
            s.write('x');
          });
          s.once('data', () => {
            s.destroy();
            resolve('ok');
          });
          s.on('error', (e) => resolve(e.message));
          s.on('close', () => resolve('closed early'));
        }),
    ),
  );
}

describe('many handshakes waiting on the key at once', () => {
  const N = 2000;
  let secureContext: tls.SecureContext;
  before(async () => {
    secureContext = tls.createSecureContext({ ca: await caPem() });
  });

  it(`${N} concurrent handshakes whose signs each take 300 ms all complete`, async () => {
    const f = await fixture({ delayMs: 300 });
    try {
      const start = performance.now();
      const outcomes = await withTimeout(handshakeStorm(f.port, N, secureContext), 45_000, `${N} handshakes`);
      const elapsed = performance.now() - start;
      const failures = outcomes.filter((o) => o !== 'ok');
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${N} failed`);
      assert.equal(f.key.log.started, N);
      assert.equal(f.key.log.aborted, 0);
      assert.equal(f.clientErrors.length, 0);
      // Every handshake waited 300 ms on the key; one after another they would take N * 300 ms = 600 s.
      assert.ok(elapsed < 45_000, `took ${elapsed.toFixed(0)} ms`);
      assert.ok(f.key.log.maxPending >= 100, `at most ${f.key.log.maxPending} signs were pending at once`);
      console.log(`# ${N} handshakes with a 300 ms sign in ${elapsed.toFixed(0)} ms; up to ${f.key.log.maxPending} waited on the key at once`);
    } finally {
      await f.stop();
    }
  });

  it(`${N} handshakes all waiting on the key at the same moment, then released`, async () => {
    const f = await fixture({ delayMs: 0 });
    let release!: () => void;
    f.key.hold = new Promise<void>((r) => (release = r));
    try {
      const start = performance.now();
      const outcomes = handshakeStorm(f.port, N, secureContext);
      await until(() => f.key.pendingCount === N, 45_000, `all ${N} signs pending`);
      const allWaitingAfter = performance.now() - start;
      // Everyone is parked on the key: nothing has failed or timed out meanwhile.
      assert.equal(f.clientErrors.length, 0);
      release();
      const results = await withTimeout(outcomes, 30_000, 'handshakes after release');
      const failures = results.filter((o) => o !== 'ok');
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${N} failed`);
      assert.equal(f.key.log.maxPending, N);
      console.log(`# ${N} handshakes parked on the key after ${allWaitingAfter.toFixed(0)} ms, all done ${(performance.now() - start).toFixed(0)} ms after the start`);
    } finally {
      release();
      await f.stop();
    }
  });
});
