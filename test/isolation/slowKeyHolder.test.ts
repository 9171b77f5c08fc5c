/**
 * A slow key holder (100 ms per signature, at most 25 at once in keyd, like an HSM with
 * few sessions) behind `keyward serve --keyd`, hit by 500 concurrent handshakes: all of
 * them complete, and a client that was already connected keeps getting its responses
 * while the batch is waiting on the key holder, because a handshake waiting for its
 * signature holds nothing but a promise.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Keyd } from '../../src/keyd/server.js';
import type { KeyOperations, OperationContext } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import type { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { startTestKeyd, tempDir } from '../support/keydFixture.js';
import { startServe, tlsHandshake, type HandshakeResult, type KeywardChild } from '../support/keywardCli.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const SIGN_DELAY_MS = 100;
const BATCH = 500;
/** Signatures the key holder makes at once: 500 of them take at least 20 x 100 ms. */
const SESSIONS = 25;

/** A sound key that takes 100 ms per signature; counts the signatures under way. */
class SlowKey implements KeyOperations {
  readonly publicKey;
  readonly schemes;
  readonly keyId;
  running = 0;
  done = 0;
  constructor(private readonly inner: LocalKey) {
    this.publicKey = inner.publicKey;
    this.schemes = inner.schemes;
    this.keyId = inner.keyId;
  }
  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    this.running++;
    try {
      await sleep(SIGN_DELAY_MS, undefined, { signal });
      return await this.inner.sign(scheme, message, ctx, signal);
    } finally {
      this.running--;
      this.done++;
    }
  }
}

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let keyd: Keyd;
let slow: SlowKey;
let front: KeywardChild;

before(async () => {
  root = await tempDir('keyward-slow-');
  pki = await getPki();
  slow = new SlowKey(new LocalKey(createPrivateKey(pki.server['ecdsa-p256'].keyPem)));
  ({ keyd } = await startTestKeyd(
    root.dir,
    undefined,
    { listen: { unix: join(root.dir, 'keyd.sock') }, limits: { maxConcurrentOps: SESSIONS } },
    { keys: [{ ops: slow, serverNames: ['localhost'] }] },
  ));
  // A generous deadline: this test is about waiting, not about the deadline.
  front = await startServe(['--cert', pki.server['ecdsa-p256'].chainPath, '--keyd', `unix:${keyd.unixPath}`, '--keyd-deadline', '30000']);
});

after(async () => {
  await front?.stop();
  await keyd?.close();
  await root?.cleanup();
});

interface RoundTrip {
  status: number;
  reused: boolean;
  /** Handshakes of the batch finished, and signatures under way, when the response arrived. */
  batchFinished: number;
  signing: number;
  ms: number;
}

describe('a slow key holder under 500 concurrent handshakes', { timeout: 120_000 }, () => {
  test('all complete; a connected client keeps being answered meanwhile', async (t) => {
    // The connected client: one keep-alive HTTP/1.1 connection, set up before the batch.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.certPem, servername: 'localhost' });
    let batchFinished = 0;
    const get = (): Promise<RoundTrip> =>
      new Promise((resolve, reject) => {
        const t0 = performance.now();
        const req = https.get({ host: '127.0.0.1', port: front.port, path: '/', agent, timeout: 30_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, batchFinished, signing: slow.running, ms: Math.round(performance.now() - t0) }));
        });
        req.on('timeout', () => req.destroy(new Error('round trip timed out')));
        req.on('error', reject);
      });
    try {
      const first = await get();
      assert.equal(first.status, 200);
      const signsBefore = slow.done;

      const tb = performance.now();
      const batch = Promise.all(
        Array.from({ length: BATCH }, async (): Promise<HandshakeResult> => {
          const r = await tlsHandshake(front.port, { ca: pki.ca.certPem, timeoutMs: 60_000 });
          batchFinished++;
          return r;
        }),
      );
      let batchDone = false;
      void batch.finally(() => (batchDone = true));

      // Round trips on the existing connection while the batch is in flight.
      const trips: RoundTrip[] = [];
      while (!batchDone) {
        trips.push(await get());
        await sleep(10);
      }
      const results = await batch;
      const batchMs = performance.now() - tb;

      const failed = results.filter((r) => !r.ok);
      assert.equal(failed.length, 0, `failed handshakes: ${JSON.stringify(failed.slice(0, 3))}`);
      assert.ok(slow.done - signsBefore >= BATCH, `the key holder signed ${slow.done - signsBefore} times`);
      assert.ok(trips.every((r) => r.status === 200 && r.reused), 'every round trip used the connection made before the batch');
      const during = trips.filter((r) => r.batchFinished < BATCH && r.signing > 0);
      t.diagnostic(`batch of ${BATCH} took ${Math.round(batchMs)} ms; ${during.length} of ${trips.length} round trips answered while signatures were under way (slowest ${Math.max(...trips.map((r) => r.ms))} ms)`);
      assert.ok(during.length >= 3, `round trips answered while the batch waited on the key holder: ${during.length} (${JSON.stringify(trips.slice(0, 10))})`);
    } finally {
      agent.destroy();
    }
  });
});
