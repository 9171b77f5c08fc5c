/**
 * pkcs11Key under load: the event loop keeps running while the token works (and does not
 * with a plain synchronous C_Sign loop, so the check can fail), aborts reject at once and
 * leave the pool usable, hundreds of concurrent operations all complete, close() drains.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createHash, publicEncrypt, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pkcs11js from 'pkcs11js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { openPkcs11Key, type Pkcs11Key } from '../../src/keys/pkcs11Key.js';
import { acquirePkcs11Module } from '../../src/keys/pkcs11Module.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

const ctx: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify' };
const live = () => new AbortController().signal;
const PSS = SignatureScheme.rsa_pss_rsae_sha256;
const P256 = SignatureScheme.ecdsa_secp256r1_sha256;

function certificateVerifyInput(): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), Buffer.from([0]), randomBytes(32)]);
}

const isAbort = (e: unknown): boolean => e instanceof KeyOperationError && e.code === 'aborted';

/** Counts 1 ms timer ticks and the longest gap between two of them. */
function tickMonitor(): { stop(): { ticks: number; maxGapMs: number } } {
  let ticks = 0;
  let maxGapMs = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      maxGapMs = Math.max(maxGapMs, performance.now() - last);
      return { ticks, maxGapMs };
    },
  };
}

let token: SoftHsmToken;
let rsa: SoftHsmKey;
let ec: SoftHsmKey;

before(async () => {
  token = await createSoftHsmToken();
  rsa = await token.generateKey('rsa-2048', 'load-rsa');
  ec = await token.generateKey('ec-p256', 'load-ec');
});

after(() => token?.cleanup());

function open(k: SoftHsmKey, sessions = 2): Promise<Pkcs11Key> {
  return openPkcs11Key({ uri: k.uri, module: token.module, pin: token.pin, sessions });
}

/** A plain synchronous C_SignInit + C_Sign loop on the main thread: the baseline that blocks. */
function syncSignLoop(k: SoftHsmKey, mechanism: pkcs11js.Mechanism, data: Buffer, n: number): number {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === token.label)!;
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(k.id) },
    ]);
    const [obj] = lib.C_FindObjects(session, 1);
    lib.C_FindObjectsFinal(session);
    assert.ok(obj, 'the key is visible (the open Pkcs11Key keeps the token logged in)');
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      lib.C_SignInit(session, mechanism, obj);
      lib.C_Sign(session, data, Buffer.alloc(512));
    }
    return performance.now() - t0;
  } finally {
    lib.C_CloseSession(session);
    mod.release();
  }
}

test('200 RSA signs: the event loop keeps ticking with the pool, and stops with a synchronous C_Sign loop', async (t) => {
  const key = await open(rsa);
  try {
    const msg = certificateVerifyInput();
    await key.sign(PSS, msg, ctx, live()); // warm-up
    const mon = tickMonitor();
    const t0 = performance.now();
    const sigs = await Promise.all(Array.from({ length: 200 }, () => key.sign(PSS, msg, ctx, live())));
    const elapsed = performance.now() - t0;
    const m = mon.stop();
    for (const sig of sigs) assert.ok(verifySignature(rsa.publicKey, PSS, msg, sig));
    t.diagnostic(`pool (2 sessions): 200 RSA-2048 PSS signs in ${elapsed.toFixed(0)} ms = ${((200 / elapsed) * 1000).toFixed(0)}/s; ${m.ticks} timer ticks, longest gap ${m.maxGapMs.toFixed(1)} ms`);
    // At least one tick per 20 ms on average, and no stall anywhere near the whole run.
    assert.ok(m.ticks >= Math.floor(elapsed / 20), `only ${m.ticks} ticks in ${elapsed.toFixed(0)} ms`);
    assert.ok(m.maxGapMs < Math.max(60, elapsed / 3), `event loop stalled ${m.maxGapMs.toFixed(1)} ms`);

    // Baseline: the same work as a synchronous loop on the main thread blocks it throughout.
    const pss = { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 } };
    const mon2 = tickMonitor();
    const syncMs = syncSignLoop(rsa, pss, msg, 100);
    await new Promise((r) => setTimeout(r, 5));
    const m2 = mon2.stop();
    t.diagnostic(`synchronous C_Sign loop: 100 RSA-2048 PSS signs in ${syncMs.toFixed(0)} ms = ${((100 / syncMs) * 1000).toFixed(0)}/s; longest gap ${m2.maxGapMs.toFixed(1)} ms`);
    assert.ok(m2.maxGapMs >= syncMs * 0.9, 'the synchronous loop blocks the event loop for its whole run');
  } finally {
    await key.close();
  }
});

test('P-256 throughput: pool vs synchronous loop (reported, both complete)', async (t) => {
  const key = await open(ec);
  try {
    const msg = certificateVerifyInput();
    const t0 = performance.now();
    const sigs = await Promise.all(Array.from({ length: 500 }, () => key.sign(P256, msg, ctx, live())));
    const elapsed = performance.now() - t0;
    for (const sig of sigs) assert.ok(verifySignature(ec.publicKey, P256, msg, sig));
    const digest = createHash('sha256').update(msg).digest();
    const syncMs = syncSignLoop(ec, { mechanism: pkcs11js.CKM_ECDSA }, digest, 500);
    t.diagnostic(`P-256: pool (2 sessions) 500 signs in ${elapsed.toFixed(0)} ms = ${((500 / elapsed) * 1000).toFixed(0)}/s; synchronous loop ${((500 / syncMs) * 1000).toFixed(0)}/s`);
    assert.deepEqual(key.poolStats(), { workers: 2, busy: 0, queued: 0 });
  } finally {
    await key.close();
  }
});

test('500 concurrent P-256 signs and 100 concurrent RSA signs of every scheme all complete and verify', async () => {
  const [k1, k2] = await Promise.all([open(ec, 3), open(rsa, 2)]);
  try {
    const msgs = Array.from({ length: 500 }, () => certificateVerifyInput());
    const rsaSchemes = k2.schemes;
    const [ecSigs, rsaSigs] = await Promise.all([
      Promise.all(msgs.map((m) => k1.sign(P256, m, ctx, live()))),
      Promise.all(msgs.slice(0, 100).map((m, i) => k2.sign(rsaSchemes[i % rsaSchemes.length]!, m, ctx, live()))),
    ]);
    ecSigs.forEach((sig, i) => assert.ok(verifySignature(ec.publicKey, P256, msgs[i]!, sig), `P-256 #${i}`));
    rsaSigs.forEach((sig, i) => assert.ok(verifySignature(rsa.publicKey, rsaSchemes[i % rsaSchemes.length]!, msgs[i]!, sig), `RSA #${i}`));
    assert.deepEqual(k1.poolStats(), { workers: 3, busy: 0, queued: 0 });
    assert.deepEqual(k2.poolStats(), { workers: 2, busy: 0, queued: 0 });
  } finally {
    await Promise.all([k1.close(), k2.close()]);
  }
});

test('abort: an already-aborted signal never reaches the token; an in-flight sign rejects at once and its session comes back', async () => {
  const key = await open(rsa, 1);
  try {
    const msg = certificateVerifyInput();
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(key.sign(PSS, msg, ctx, aborted.signal), isAbort);
    assert.deepEqual(key.poolStats(), { workers: 1, busy: 0, queued: 0 });

    const ac = new AbortController();
    const inFlight = key.sign(PSS, msg, ctx, ac.signal);
    assert.equal(key.poolStats().busy, 1, 'the sign is in the token');
    ac.abort();
    await assert.rejects(inFlight, isAbort);
    // Rejected before the token answered: the worker is still busy with the discarded sign.
    assert.equal(key.poolStats().busy, 1);
    // The session returns to the pool and works.
    const sig = await key.sign(PSS, msg, ctx, live());
    assert.ok(verifySignature(rsa.publicKey, PSS, msg, sig));
    assert.deepEqual(key.poolStats(), { workers: 1, busy: 0, queued: 0 });

    // The same for a premaster decryption.
    const premaster = Buffer.concat([Buffer.from([3, 3]), randomBytes(46)]);
    const ct = publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_PADDING }, premaster);
    const ac2 = new AbortController();
    const dec = key.decryptPremaster!(ct, 0x0303, { tlsVersion: 'TLSv1.2' }, ac2.signal);
    ac2.abort();
    await assert.rejects(dec, isAbort);
    assert.deepEqual(Buffer.from(await key.decryptPremaster!(ct, 0x0303, { tlsVersion: 'TLSv1.2' }, live())), premaster);
  } finally {
    await key.close();
  }
});

test('abort: a queued sign rejects promptly while the others keep their places and complete', async () => {
  const key = await open(rsa, 1);
  try {
    const msg = certificateVerifyInput();
    let done = 0;
    const others = Array.from({ length: 40 }, () =>
      key.sign(PSS, msg, ctx, live()).then((sig) => {
        done++;
        return sig;
      }),
    );
    const ac = new AbortController();
    const target = key.sign(PSS, msg, ctx, ac.signal);
    const more = Array.from({ length: 10 }, () => key.sign(PSS, msg, ctx, live()));
    assert.equal(key.poolStats().queued + key.poolStats().busy, 51);
    await new Promise((r) => setTimeout(r, 2));
    const t0 = performance.now();
    ac.abort();
    await assert.rejects(target, isAbort);
    const latency = performance.now() - t0;
    assert.ok(latency < 20, `abort took ${latency.toFixed(1)} ms`);
    assert.ok(done < 40, 'rejected while signs queued ahead of it were still waiting');
    assert.equal(key.poolStats().queued + key.poolStats().busy, 50 - done, 'only the aborted job left the queue');
    for (const sig of await Promise.all([...others, ...more])) assert.ok(verifySignature(rsa.publicKey, PSS, msg, sig));
    assert.deepEqual(key.poolStats(), { workers: 1, busy: 0, queued: 0 });
  } finally {
    await key.close();
  }
});

test('close(): signs handed to the token finish, queued ones fail as unavailable, later calls fail, close is idempotent', async () => {
  const key = await open(rsa, 1);
  const other = await open(ec, 1);
  const msg = certificateVerifyInput();
  const all = Promise.allSettled(Array.from({ length: 6 }, () => key.sign(PSS, msg, ctx, live())));
  const { busy, queued } = key.poolStats();
  assert.ok(busy >= 1 && busy + queued === 6);
  const closing = key.close();
  const results = await all;
  results.slice(0, busy).forEach((r, i) => {
    assert.equal(r.status, 'fulfilled', `sign #${i} was in the worker: it completes`);
    assert.ok(r.status === 'fulfilled' && verifySignature(rsa.publicKey, PSS, msg, r.value));
  });
  for (const r of results.slice(busy)) {
    assert.ok(r.status === 'rejected' && r.reason instanceof KeyOperationError && r.reason.code === 'unavailable', 'queued signs fail');
  }
  await closing;
  await key.close();
  await assert.rejects(key.sign(PSS, msg, ctx, live()), (e: unknown) => e instanceof KeyOperationError && e.code === 'unavailable');
  // Another key on the same module and token is unaffected: the module stays initialized for it.
  try {
    const sig = await other.sign(P256, msg, ctx, live());
    assert.ok(verifySignature(ec.publicKey, P256, msg, sig));
  } finally {
    await other.close();
  }
  // And once both are closed, opening again initializes the module afresh.
  const again = await open(ec, 1);
  try {
    assert.ok(verifySignature(ec.publicKey, P256, msg, await again.sign(P256, msg, ctx, live())));
  } finally {
    await again.close();
  }
});
