/**
 * The key holder dies under load. keyd (a child process) killed with SIGKILL while a
 * `keyward serve --keyd` front handles 200 handshakes (node:tls clients, 20 at a time):
 * handshakes that need keyd while it is gone fail with an internal_error alert within the
 * keyd client's deadline, the front keeps running, and once keyd is back on the same Unix
 * socket handshakes succeed again within seconds. The same for a key process killed under
 * `serve --key-process`, which the front restarts by itself.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { keydConfigJson, spawnKeyd, tempDir, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';
import { runPool, startServe, tlsHandshake, type HandshakeResult, type KeywardChild } from '../support/keywardCli.js';
import { curl, curlResolve } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const DEADLINE_MS = 2_000;
/** Slack on top of the deadline for the alert to reach a client on a busy 2-core machine. */
const SLACK_MS = 1_500;

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
const keyds: KeydChild[] = [];
const servers: KeywardChild[] = [];

interface Timed extends HandshakeResult {
  start: number;
  end: number;
}

before(async () => {
  root = await tempDir('keyward-killed-');
  pki = await getPki();
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const k of keyds) await k.kill();
  await root?.cleanup();
});

/**
 * 200 handshakes, 20 at a time; when the 60th has finished `kill` runs (not awaited by
 * the load, which carries on meanwhile).
 */
async function loadWithKill(port: number, kill: () => Promise<void>): Promise<{ results: Timed[]; killedAt: number; killDone: Promise<void> }> {
  let finished = 0;
  let killedAt = 0;
  let killDone: Promise<void> = Promise.resolve();
  const results = await runPool(200, 20, async () => {
    const start = performance.now();
    const r = await tlsHandshake(port, { ca: pki.ca.certPem, timeoutMs: 15_000 });
    const end = performance.now();
    if (++finished === 60) {
      killedAt = performance.now();
      killDone = kill();
    }
    return { ...r, start, end };
  });
  return { results, killedAt, killDone };
}

/** Every failure is an internal_error alert that came within the deadline. */
function assertFailuresAreAlerts(results: Timed[]): void {
  for (const r of results.filter((x) => !x.ok)) {
    assert.equal(r.errorCode, 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', `a failed handshake did not get internal_error: ${JSON.stringify(r)}`);
    assert.ok(r.ms < DEADLINE_MS + SLACK_MS, `a failed handshake took ${Math.round(r.ms)} ms (deadline ${DEADLINE_MS} ms)`);
  }
}

/** Polls with handshakes until one succeeds; returns when (performance.now()) it did. */
async function firstSuccess(port: number, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if ((await tlsHandshake(port, { ca: pki.ca.certPem, timeoutMs: 5_000 })).ok) return performance.now();
    await sleep(50);
  }
  throw new Error(`no successful handshake within ${limitMs} ms`);
}

async function assertFrontServes(s: KeywardChild, n: number): Promise<void> {
  assert.ok(s.alive(), `the front exited: ${s.stderr()}`);
  const batch = await runPool(n, 10, () => tlsHandshake(s.port, { ca: pki.ca.certPem }));
  assert.ok(batch.every((r) => r.ok), `after recovery: ${JSON.stringify(batch.filter((r) => !r.ok).slice(0, 3))}`);
  const c = await curl(`https://localhost:${s.port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', s.port)] });
  assert.equal(c.status, 200, c.stderr);
}

describe('key holder killed under load', { timeout: 120_000 }, () => {
  test('keyd SIGKILLed under 200 handshakes: alerts within the deadline, front survives, recovery after restart', async (t) => {
    const cert = pki.server['ecdsa-p256'];
    const socketPath = join(root.dir, 'keyd.sock');
    const configPath = await writeKeydConfig(root.dir, keydConfigJson(root.dir, undefined, { listen: { unix: socketPath } }));
    const first = await spawnKeyd(configPath);
    keyds.push(first);
    const admin = await connectKeydAdmin({ addresses: [`unix:${socketPath}`] });
    try {
      await admin.putKey(createPrivateKey(cert.keyPem), ['localhost']);
    } finally {
      admin.close();
    }
    const s = await startServe(['--cert', cert.chainPath, '--keyd', `unix:${socketPath}`, '--keyd-deadline', String(DEADLINE_MS)]);
    servers.push(s);

    let second: KeydChild | undefined;
    let readyAt = 0;
    const { results, killedAt, killDone } = await loadWithKill(s.port, async () => {
      await first.kill('SIGKILL');
      // keyd stays down a moment, long enough for handshakes to need it while it is gone.
      await sleep(500);
      second = await spawnKeyd(configPath);
      keyds.push(second);
      readyAt = performance.now();
    });
    await killDone;
    assert.ok(second, 'keyd restarted');

    assert.ok(results.filter((r) => r.end <= killedAt).every((r) => r.ok), 'handshakes before the kill succeeded');
    const failed = results.filter((r) => !r.ok);
    assert.ok(failed.length > 0, 'with keyd gone, some handshakes must have failed');
    assertFailuresAreAlerts(results);
    assert.ok(s.alive(), `the front exited: ${s.stderr()}`);
    assert.match(s.stderr(), /key operation failed/);

    // The keyd client reconnects with a backoff of at most 2 s: back within seconds of keyd.
    const backAt = await firstSuccess(s.port, 8_000);
    assert.ok(backAt - readyAt < 5_000, `first success ${Math.round(backAt - readyAt)} ms after keyd was ready again`);
    t.diagnostic(`${failed.length}/200 handshakes failed while keyd was down (slowest failure ${Math.round(Math.max(...failed.map((r) => r.ms)))} ms); back ${Math.round(backAt - readyAt)} ms after keyd was ready`);
    await assertFrontServes(s, 20);
  });

  test('key process SIGKILLed under 200 handshakes: alerts, front survives, the key process is restarted', async (t) => {
    // RSA: each signature takes a millisecond or more, so some are in the key process when it dies.
    const cert = pki.server['rsa-2048'];
    const s = await startServe(['--cert', cert.chainPath, '--key-process', '--key', cert.keyPath]);
    servers.push(s);
    const [keyPid] = s.keyProcessPids();
    assert.ok(keyPid, s.stdout());
    const { results, killDone } = await loadWithKill(s.port, async () => {
      process.kill(keyPid, 'SIGKILL');
    });
    await killDone;
    t.diagnostic(`${results.filter((r) => !r.ok).length}/200 handshakes failed around the key process's death`);
    assertFailuresAreAlerts(results);
    assert.ok(s.alive(), `the front exited: ${s.stderr()}`);
    await firstSuccess(s.port, 8_000);
    assert.match(s.stderr(), /key process exited/);
    assert.match(s.stderr(), /key process restarted/);
    await assertFrontServes(s, 20);
  });
});
