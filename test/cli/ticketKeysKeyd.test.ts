/**
 * `--ticket-keys-keyd` on the real `keyward serve` and `keyward proxy`: the front fetches the
 * fleet's ticket keys from keyd over its mutual-TLS link at start (audited in keyd) and
 * serves; the combinations that cannot work are refused with one clear line.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, type KeydPki } from '../support/keydFixture.js';
import { runKeyward, startKeyward, startServe, tlsHandshake } from '../support/keywardCli.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { freePort } from '../proxy/harness.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let linkPki: KeydPki;
let keyd: Awaited<ReturnType<typeof startTestKeyd>>;

before(async () => {
  root = await tempDir('keyward-ticketkeys-');
  pki = await getPki();
  linkPki = await makeKeydPki(root.dir, ['front', 'other']);
  keyd = await startTestKeyd(root.dir, linkPki, {
    clients: [
      { id: 'cn:front', keys: ['*'], ticketKeys: true },
      { id: 'cn:other', keys: ['*'] },
      { id: 'unix', keys: ['*'] },
    ],
  });
});

after(async () => {
  await keyd?.keyd.close();
  await root?.cleanup();
});

function link(client: string): string[] {
  const c = linkPki.clients[client];
  return ['--keyd', `tls://127.0.0.1:${keyd.keyd.tlsAddress!.port}`, '--keyd-ca', linkPki.caPath, '--keyd-cert', c.certPath, '--keyd-key', c.keyPath];
}

describe('keyward serve/proxy --ticket-keys-keyd', { timeout: 120_000 }, () => {
  const cert = () => ['--cert', pki.server['ecdsa-p256'].chainPath, '--key', pki.server['ecdsa-p256'].keyPath];

  test('serve takes its ticket keys from keyd (audited there) and serves', async () => {
    const front = await startServe([...cert(), ...link('front'), '--ticket-keys-keyd']);
    try {
      assert.match(front.stdout(), /session ticket keys from keyd \(2 key\(s\)\); this front keeps them in memory only/);
      const hs = await tlsHandshake(front.port, { ca: pki.ca.certPem });
      assert.ok(hs.ok, hs.error);
      const fetches = (await readAudit(join(root.dir, 'audit.log'))).filter((l) => l.op === 'ticket-keys' && l.client === 'cn:front' && l.outcome === 'ok');
      assert.equal(fetches.length, 1);
      assert.equal(String(fetches[0].ticketKeys).split(',').length, 2);
    } finally {
      await front.stop();
    }
  });

  test('proxy takes them too; client mode refuses the flag', async () => {
    const port = await freePort();
    const ready = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;
    const before = (await readAudit(join(root.dir, 'audit.log'))).filter((l) => l.op === 'ticket-keys').length;
    const proxy = await startKeyward(['proxy', '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', ...cert(), ...link('front'), '--ticket-keys-keyd'], { ready });
    try {
      const hs = await tlsHandshake(port, { ca: pki.ca.certPem });
      assert.ok(hs.ok, hs.error);
      assert.equal((await readAudit(join(root.dir, 'audit.log'))).filter((l) => l.op === 'ticket-keys' && l.outcome === 'ok').length, before + 1);
    } finally {
      await proxy.stop();
    }
    const r = await runKeyward(['proxy', '--client', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', ...link('front'), '--ticket-keys-keyd']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /client mode relays to --target: --ticket-keys-keyd \(keyd.ticketKeys\) belong to server mode/);
  });

  test('clear errors: no keyd, a Unix-socket keyd, a front keyd does not grant them', async () => {
    const fails = async (args: string[], message: RegExp): Promise<void> => {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...args]);
      assert.equal(r.timedOut, false);
      assert.equal(r.code, 2, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    };
    await fails([...cert(), '--ticket-keys-keyd'], /^keyward: --ticket-keys-keyd needs --keyd/);
    await fails([...cert(), '--keyd', `unix:${keyd.keyd.unixPath!}`, '--ticket-keys-keyd'], /needs a tls:\/\/ --keyd address: keyd serves ticket keys over mutual TLS only/);
    await fails([...cert(), ...link('other'), '--ticket-keys-keyd'], /keyd refused this front the ticket keys: keyd: identity cn:other may not fetch ticket keys \(its rule lacks "ticketKeys": true\)/);
    const audit = await readAudit(join(root.dir, 'audit.log'));
    assert.ok(audit.some((l) => l.op === 'ticket-keys' && l.client === 'cn:other' && l.outcome === 'refused'));
  });
});
