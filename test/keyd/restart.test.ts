/**
 * keyd in a child process, killed with SIGKILL under load: pending operations fail at
 * once with 'unavailable', the front keeps going, and after keyd is restarted operations
 * succeed again within seconds through the client's reconnect.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAuditLog } from '../../src/keyd/audit.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { connectKeydAdmin, connectRemoteKey } from '../../src/keys/remoteKey.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, keydConfigJson, spawnKeyd, tempDir, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';

let root: { dir: string; cleanup: () => Promise<void> };
const children: KeydChild[] = [];

before(async () => {
  root = await tempDir('keyd-restart-');
});
after(async () => {
  for (const c of children) await c.kill();
  await root.cleanup();
});

test('keyd killed under load: pending operations fail fast, reconnect after restart', async (t) => {
  // The Unix socket keeps its path across the restart (a TCP listener would need a fixed port).
  const json = keydConfigJson(root.dir, undefined, { listen: { unix: `${root.dir}/keyd.sock` }, log: { level: 'info' } });
  const configPath = await writeKeydConfig(root.dir, json);
  const first = await spawnKeyd(configPath);
  children.push(first);
  const address = `unix:${first.unix}`;

  const admin = await connectKeydAdmin({ addresses: [address] });
  const info = await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['www.example']);
  admin.close();

  const rk = await connectRemoteKey({ addresses: [address], keyId: info.keyId, deadlineMs: 5_000, backoff: { initialMs: 50, maxMs: 500 } });
  const events: Array<{ start: number; end: number; ok: boolean; code?: string }> = [];
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const start = performance.now();
      const msg = certificateVerifyInput();
      try {
        const sig = await rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, msg, { tlsVersion: 'TLSv1.3' }, new AbortController().signal);
        assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, msg, sig));
        events.push({ start, end: performance.now(), ok: true });
      } catch (e) {
        events.push({ start, end: performance.now(), ok: false, code: (e as KeyOperationError).code });
        await sleep(20);
      }
    }
  };
  // Bounded load: 32 operations in flight at any time.
  const workers = Array.from({ length: 32 }, () => worker());
  try {
    await sleep(400);
    const killAt = performance.now();
    await first.kill('SIGKILL');
    await sleep(500);

    const second = await spawnKeyd(configPath);
    children.push(second);
    const readyAt = performance.now();
    // Wait for the first success after the restart.
    while (!events.some((e) => e.ok && e.start > readyAt) && performance.now() - readyAt < 5_000) await sleep(25);
    const firstOk = events.find((e) => e.ok && e.start > readyAt);
    assert.ok(firstOk, 'operations succeed again after the restart');
    assert.ok(firstOk.end - readyAt < 3_000, `back after ${Math.round(firstOk.end - readyAt)} ms`);
    await sleep(200);
    stop = true;
    await Promise.all(workers);

    const beforeKill = events.filter((e) => e.end < killAt);
    assert.ok(beforeKill.filter((e) => e.ok).length > 100, 'the load ran before the kill');
    // Operations in flight when keyd died failed at once, with 'unavailable', not at their deadline.
    const caught = events.filter((e) => e.start < killAt && e.end >= killAt);
    assert.ok(caught.length > 0, 'some operations were in flight at the kill');
    for (const e of caught) {
      if (e.ok) continue;
      assert.equal(e.code, 'unavailable');
      assert.ok(e.end - killAt < 1_000, `failed ${Math.round(e.end - killAt)} ms after the kill`);
    }
    assert.ok(events.filter((e) => !e.ok).every((e) => e.code === 'unavailable'), `codes: ${[...new Set(events.filter((e) => !e.ok).map((e) => e.code))].join(',')}`);
    assert.ok(events.some((e) => !e.ok));
    const worst = Math.max(...caught.map((e) => e.end - killAt));
    t.diagnostic(`${beforeKill.length} ok before the kill; ${caught.length} in flight at the kill, all settled within ${Math.round(worst)} ms; back ${Math.round(firstOk.end - readyAt)} ms after restart`);
    assert.ok((await rk.health()).healthy);

    // A graceful stop, and an audit chain that survived the crash.
    await rk.close();
    await second.kill('SIGTERM');
    const exit = await second.exited;
    assert.equal(exit.code, 0, second.stderr());
    const audit = await verifyAuditLog(`${root.dir}/audit.log`);
    assert.equal(audit.ok, true, JSON.stringify(audit.problem));
    assert.ok(audit.lines > 100);
  } finally {
    stop = true;
    await Promise.all(workers);
    await rk.close();
  }
});
