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
import { connectKeydAdmin, connectRemoteKey, type RemoteKey } from '../../src/keys/remoteKey.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, keydConfigJson, makeKeydPki, spawnKeyd, tempDir, tlsClientOptions, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';

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
  // The Unix socket keeps its path across the restart; the TLS listener gets a new port
  // (port 0), so the mTLS front lists the socket as its second address and fails over.
  const pki = await makeKeydPki(root.dir, ['front']);
  const json = keydConfigJson(root.dir, pki, { log: { level: 'info' } });
  const configPath = await writeKeydConfig(root.dir, json);
  const first = await spawnKeyd(configPath);
  children.push(first);
  const unixAddress = `unix:${first.unix}`;

  const admin = await connectKeydAdmin({ addresses: [unixAddress] });
  const info = await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['www.example']);
  admin.close();

  const common = { keyId: info.keyId, deadlineMs: 5_000, backoff: { initialMs: 50, maxMs: 500 } };
  const viaUnix = await connectRemoteKey({ addresses: [unixAddress], ...common });
  const tlsOpts = tlsClientOptions(pki, 'front', first.tls!);
  const viaTls = await connectRemoteKey({ ...tlsOpts, addresses: [...tlsOpts.addresses, unixAddress], ...common });
  type Event = { start: number; end: number; ok: boolean; code?: string };
  const events: Record<'unix' | 'tls', Event[]> = { unix: [], tls: [] };
  let stop = false;
  const worker = async (rk: RemoteKey, out: Event[]): Promise<void> => {
    while (!stop) {
      const start = performance.now();
      const msg = certificateVerifyInput();
      try {
        const sig = await rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, msg, { tlsVersion: 'TLSv1.3' }, new AbortController().signal);
        assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, msg, sig));
        out.push({ start, end: performance.now(), ok: true });
      } catch (e) {
        out.push({ start, end: performance.now(), ok: false, code: (e as KeyOperationError).code });
        await sleep(20);
      }
    }
  };
  // Bounded load: 16 operations in flight on each transport at any time.
  const workers = [...Array.from({ length: 16 }, () => worker(viaUnix, events.unix)), ...Array.from({ length: 16 }, () => worker(viaTls, events.tls))];
  try {
    await sleep(400);
    const killAt = performance.now();
    await first.kill('SIGKILL');
    await sleep(500);

    const second = await spawnKeyd(configPath);
    children.push(second);
    const readyAt = performance.now();
    const recovered = (list: Event[]): Event | undefined => list.find((e) => e.ok && e.start > readyAt);
    while ((!recovered(events.unix) || !recovered(events.tls)) && performance.now() - readyAt < 5_000) await sleep(25);
    await sleep(200);
    stop = true;
    await Promise.all(workers);

    for (const [name, list] of Object.entries(events)) {
      const back = recovered(list);
      assert.ok(back, `${name}: operations succeed again after the restart`);
      assert.ok(back.end - readyAt < 3_000, `${name}: back after ${Math.round(back.end - readyAt)} ms`);
      assert.ok(list.filter((e) => e.end < killAt && e.ok).length > 50, `${name}: the load ran before the kill`);
      // Operations in flight when keyd died failed at once, with 'unavailable', not at their deadline.
      const caught = list.filter((e) => e.start < killAt && e.end >= killAt);
      assert.ok(caught.length > 0, `${name}: some operations were in flight at the kill`);
      for (const e of caught) {
        if (e.ok) continue;
        assert.equal(e.code, 'unavailable');
        assert.ok(e.end - killAt < 1_000, `${name}: failed ${Math.round(e.end - killAt)} ms after the kill`);
      }
      const codes = [...new Set(list.filter((e) => !e.ok).map((e) => e.code))];
      assert.deepEqual(codes, ['unavailable'], `${name}: error codes`);
      const worst = Math.max(...caught.map((e) => e.end - killAt));
      t.diagnostic(`${name}: ${caught.length} in flight at the kill, all settled within ${Math.round(worst)} ms; back ${Math.round(back.end - readyAt)} ms after the restart`);
    }
    assert.ok((await viaUnix.health()).healthy);
    // A pool connection may still be between reconnect attempts on a loaded machine: give it time.
    let h = await viaTls.health();
    for (const until = performance.now() + 10_000; !h.connections.every((c) => c.address === unixAddress) && performance.now() < until; ) {
      await sleep(100);
      h = await viaTls.health();
    }
    assert.ok(h.healthy);
    assert.ok(h.connections.every((c) => c.address === unixAddress), 'the TLS front failed over to the socket');

    // A graceful stop, and an audit chain that survived the crash.
    await viaUnix.close();
    await viaTls.close();
    await second.kill('SIGTERM');
    const exit = await second.exited;
    assert.equal(exit.code, 0, second.stderr());
    const audit = await verifyAuditLog(`${root.dir}/audit.log`);
    assert.equal(audit.ok, true, JSON.stringify(audit.problem));
    assert.ok(audit.lines > 100);
  } finally {
    stop = true;
    await Promise.all(workers);
    await viaUnix.close();
    await viaTls.close();
  }
});
