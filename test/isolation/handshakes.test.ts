/**
 * `keyward serve` (the real command, as a child process) with each key backend, reached
 * by real peers: openssl s_client and curl complete verified TLS 1.3 handshakes and the
 * page says where the key lives. Backends: key process, keyd over mutual TLS, keyd over
 * a Unix socket, keyd serving a SoftHSM2 key, in-process PKCS#11 (SoftHSM2), and several
 * certificates each with its own key source.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lookupUser } from '../../src/keys/keyProcess.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import type { Keyd } from '../../src/keyd/server.js';
import { makeKeydPki, startTestKeyd, tempDir, type KeydPki } from '../support/keydFixture.js';
import { issueCertificateFor, runKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { curl, curlResolve, opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let kpki: KeydPki;
let token: SoftHsmToken;
let keydHsmKey: SoftHsmKey;
let frontHsmKey: SoftHsmKey;
let keydHsmChain: string;
let frontHsmChain: string;
let keyd: Keyd;

const servers: KeywardChild[] = [];

/** Starts `keyward serve ARGS`; stopped in after() even when the test fails. */
async function serve(args: string[], env?: Record<string, string>): Promise<KeywardChild> {
  const s = await startServe(args, env ? { env } : {});
  servers.push(s);
  return s;
}

/** openssl s_client and curl both complete a verified handshake; the page matches `page`. */
async function assertPeersSucceed(s: KeywardChild, page: RegExp): Promise<void> {
  const o = await opensslClient(s.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-verify_return_error'] });
  const sum = parseOpensslOutput(o);
  assert.ok(sum.handshakeOk, `openssl handshake failed:\n${o.stdout}\n${o.stderr}\nserver stderr: ${s.stderr()}`);
  assert.equal(sum.protocol, 'TLSv1.3');
  assert.equal(sum.verifyCode, 0, sum.verifyMessage);

  const c = await curl(`https://localhost:${s.port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', s.port)] });
  assert.equal(c.code, 0, `curl failed: ${c.stderr}\nserver stderr: ${s.stderr()}`);
  assert.equal(c.status, 200);
  assert.equal(c.tlsVersion, 'TLSv1.3');
  assert.match(c.body, page);
}

before(async () => {
  root = await tempDir('keyward-isolation-');
  pki = await getPki();
  // Tokens and token keys first: SoftHSM sees only tokens that exist when it is initialized.
  token = await createSoftHsmToken();
  keydHsmKey = await token.generateKey('ec-p256', 'keyd-served');
  frontHsmKey = await token.generateKey('ec-p256', 'front-served');
  keydHsmChain = join(root.dir, 'hsm-keyd-chain.pem');
  frontHsmChain = join(root.dir, 'hsm-front-chain.pem');
  writeFileSync(keydHsmChain, await issueCertificateFor(pki.ca, keydHsmKey.publicKey));
  writeFileSync(frontHsmChain, await issueCertificateFor(pki.ca, frontHsmKey.publicKey));

  kpki = await makeKeydPki(root.dir, ['front']);
  ({ keyd } = await startTestKeyd(root.dir, kpki, {
    pkcs11: [{ module: token.module, uri: keydHsmKey.uri, pinFile: token.pinFile, serverNames: ['localhost'] }],
  }));
  const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
  try {
    for (const t of ['ecdsa-p256', 'ecdsa-p384'] as const) await admin.putKey(createPrivateKey(pki.server[t].keyPem), ['localhost']);
  } finally {
    admin.close();
  }
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await keyd?.close();
  token?.cleanup();
  await root?.cleanup();
});

describe('keyward serve: real peers with each key backend', { timeout: 120_000 }, () => {
  test('key process (--key-process --key): openssl and curl', async () => {
    const f = pki.server['rsa-2048'];
    const s = await serve(['--cert', f.chainPath, '--key-process', '--key', f.keyPath]);
    assert.equal(s.keyProcessPids().length, 1, s.stdout());
    await assertPeersSucceed(s, /^private key: in a separate key process \(pid \d+\); this process never read .*; protection: non-dumpable; /m);
  });

  test('key process, TLS 1.2: ECDHE-RSA signatures and RSA key exchange (premaster decrypted in the key process)', async () => {
    const f = pki.server['rsa-2048'];
    const s = await serve(['--cert', f.chainPath, '--key-process', '--key', f.keyPath, '--rsa-key-exchange']);
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'AES128-GCM-SHA256']) {
      const o = await opensslClient(s.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-verify_return_error', '-tls1_2', '-cipher', cipher] });
      const sum = parseOpensslOutput(o);
      assert.equal(sum.protocol, 'TLSv1.2', `${cipher}: ${o.stdout}\n${o.stderr}\nserver: ${s.stderr()}`);
      assert.equal(sum.cipher, cipher);
      assert.equal(sum.verifyCode, 0);
    }
    const c = await curl(`https://localhost:${s.port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', s.port)], args: ['--tls-max', '1.2', '--ciphers', 'AES128-GCM-SHA256'] });
    assert.equal(c.status, 200, c.stderr);
    assert.equal(c.tlsVersion, 'TLSv1.2');
    assert.match(c.body, /^private key: in a separate key process/m);
  });

  test('--min-version TLSv1.3 refuses a TLS 1.2 client', async () => {
    const f = pki.server['ecdsa-p256'];
    const s = await serve(['--cert', f.chainPath, '--key-process', '--key', f.keyPath, '--min-version', 'TLSv1.3']);
    const o = await opensslClient(s.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-tls1_2'] });
    assert.match(`${o.stdout}\n${o.stderr}`, /alert protocol version/);
    await assertPeersSucceed(s, /^protocol: TLSv1\.3$/m);
  });

  test('keyd over mutual TLS, the key found by the certificate\'s key id', async () => {
    const f = pki.server['ecdsa-p256'];
    const front = kpki.clients.front;
    const s = await serve([
      '--cert', f.chainPath,
      '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`,
      '--keyd-ca', kpki.caPath, '--keyd-cert', front.certPath, '--keyd-key', front.keyPath,
    ]);
    await assertPeersSucceed(s, /^private key: in keyd \(tls:\/\/127\.0\.0\.1:\d+\), key id [0-9a-f]{16}…; this process holds only the public key$/m);
  });

  test('keyd over a Unix socket', async () => {
    const f = pki.server['ecdsa-p384'];
    const s = await serve(['--cert', f.chainPath, '--keyd', `unix:${keyd.unixPath}`]);
    await assertPeersSucceed(s, /^private key: in keyd \(unix:/m);
  });

  test('keyd serving a SoftHSM2 token key (over mutual TLS, chosen with --keyd-key-id)', async () => {
    const front = kpki.clients.front;
    const id = keyIdOf(keydHsmKey.publicKey);
    assert.equal(keyd.registry.get(id)?.source, 'pkcs11');
    const s = await serve([
      '--cert', keydHsmChain,
      '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`,
      '--keyd-ca', kpki.caPath, '--keyd-cert', front.certPath, '--keyd-key', front.keyPath,
      '--keyd-key-id', id,
    ]);
    await assertPeersSucceed(s, new RegExp(`^private key: in keyd .*key id ${id.slice(0, 16)}`, 'm'));
  });

  test('in-process PKCS#11 (SoftHSM2), PIN from a file', async () => {
    const s = await serve(['--cert', frontHsmChain, '--pkcs11', frontHsmKey.uri, '--pkcs11-module', token.module, '--pkcs11-pin-file', token.pinFile], token.env);
    await assertPeersSucceed(s, /^private key: in PKCS#11 token ".+", object "front-served", sensitive and not extractable/m);
  });

  test('in-process PKCS#11, PIN and module in the URI', async () => {
    const uri = `${frontHsmKey.uri}?module-path=${token.module}&pin-value=${token.pin}`;
    const s = await serve(['--cert', frontHsmChain, '--pkcs11', uri], token.env);
    await assertPeersSucceed(s, /^private key: in PKCS#11 token/m);
    assert.ok(!s.stdout().includes(token.pin) && !s.stderr().includes(token.pin), 'the PIN never appears in the output');
  });

  test('several certificates, each with its own key source; the page names the one used', async () => {
    const rsa = pki.server['rsa-2048'];
    const ec = pki.server['ecdsa-p256'];
    // RSA from a key process (the first key option goes with the first --cert), ECDSA from keyd.
    const s = await serve(['--cert', rsa.chainPath, '--key-process', '--key', rsa.keyPath, '--cert', ec.chainPath, '--keyd', `unix:${keyd.unixPath}`]);
    const get = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
    for (const [sigalgs, where] of [
      ['rsa_pss_rsae_sha256', /private key: in a separate key process/],
      ['ecdsa_secp256r1_sha256', /private key: in keyd \(unix:/],
    ] as const) {
      const o = await opensslClient(s.port, {
        servername: 'localhost',
        cafile: pki.ca.certPath,
        args: ['-verify_return_error', '-sigalgs', sigalgs, '-alpn', 'http/1.1'],
        input: get,
        waitFor: /private key: .*\n/,
        timeoutMs: 10_000,
      });
      const sum = parseOpensslOutput(o);
      assert.ok(sum.handshakeOk, `${sigalgs}: ${o.stdout}\n${o.stderr}`);
      assert.match(o.stdout, where, `${sigalgs}: page does not name its key:\n${o.stdout}`);
    }
  });

  test(process.getuid?.() === 0 ? '--key-user: the key process runs as nobody' : '--key-user without root is refused clearly', async () => {
    const f = pki.server['ecdsa-p256'];
    if (process.getuid?.() !== 0) {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', '--cert', f.chainPath, '--key-process', '--key', f.keyPath, '--key-user', 'nobody']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /needs root/);
      return;
    }
    const nobody = lookupUser('nobody');
    // The key file is nobody's alone; its folder only lets nobody through.
    const keyPath = join(root.dir, 'nobody-key.pem');
    writeFileSync(keyPath, f.keyPem, { mode: 0o400 });
    chownSync(keyPath, nobody.uid, nobody.gid);
    chmodSync(root.dir, 0o711);
    const s = await serve(['--cert', f.chainPath, '--key-process', '--key', keyPath, '--key-user', 'nobody']);
    const [keyPid] = s.keyProcessPids();
    const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${keyPid}/status`, 'utf8'))?.[1].split(/\s+/).map(Number);
    assert.deepEqual(uids, [nobody.uid, nobody.uid, nobody.uid, nobody.uid]);
    await assertPeersSucceed(s, /^private key: in a separate key process \(pid \d+, user nobody\)/m);
  });
});
