/**
 * A front without permission for a key is refused and audited. keyd lets front "front"
 * use the keys serving localhost and front "stranger" only those of other.example:
 * `keyward serve` as "front" handshakes fine; as "stranger" it stops at start with a
 * clear message, keyd writes a `refused` audit line naming the stranger and the key, and
 * the audit chain still verifies.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { verifyAuditLog } from '../../src/keyd/audit.js';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, type KeydPki } from '../support/keydFixture.js';
import { runKeyward, startServe } from '../support/keywardCli.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let kpki: KeydPki;
let keyd: Keyd;
let auditFile: string;

before(async () => {
  root = await tempDir('keyward-perm-');
  pki = await getPki();
  kpki = await makeKeydPki(root.dir, ['front', 'stranger']);
  const started = await startTestKeyd(root.dir, kpki, {
    clients: [
      { id: 'cn:front', keys: ['localhost'] },
      { id: 'cn:stranger', keys: ['other.example'] },
      { id: 'unix', admin: true },
    ],
  });
  keyd = started.keyd;
  auditFile = started.config.audit.file;
  const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
  try {
    await admin.putKey(createPrivateKey(pki.server['ecdsa-p256'].keyPem), ['localhost']);
  } finally {
    admin.close();
  }
});

after(async () => {
  await keyd?.close();
  await root?.cleanup();
});

function keydArgs(client: 'front' | 'stranger'): string[] {
  const c = kpki.clients[client];
  return ['--cert', pki.server['ecdsa-p256'].chainPath, '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`, '--keyd-ca', kpki.caPath, '--keyd-cert', c.certPath, '--keyd-key', c.keyPath];
}

describe('per-front key permissions', { timeout: 60_000 }, () => {
  test('a permitted front serves handshakes', async () => {
    const s = await startServe(keydArgs('front'));
    try {
      const o = await opensslClient(s.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-verify_return_error'] });
      assert.ok(parseOpensslOutput(o).handshakeOk && /Verify return code: 0/.test(o.stdout), `${o.stdout}\n${o.stderr}`);
    } finally {
      await s.stop();
    }
  });

  test('a front without permission is refused at start, with a clear message, and audited', async () => {
    const keyId = keyIdOf(createPublicKey(pki.server['ecdsa-p256'].keyPem));
    const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...keydArgs('stranger')]);
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`keyward: keyd refused this front the key ${keyId} .*not permitted`));
    assert.doesNotMatch(r.stdout, /listening/);

    const lines = await readAudit(auditFile);
    const refused = lines.filter((l) => l.client === 'cn:stranger' && l.outcome === 'refused');
    assert.equal(refused.length, 1, JSON.stringify(lines));
    assert.equal(refused[0].op, 'get-key');
    assert.equal(refused[0].keyId, keyId);
    assert.match(String(refused[0].reason), /not permitted/);
    // The permitted front's use of the key is in the same log.
    assert.ok(lines.some((l) => l.client === 'cn:front' && l.op === 'sign' && l.outcome === 'ok' && l.keyId === keyId));
    const v = await verifyAuditLog(auditFile);
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});
