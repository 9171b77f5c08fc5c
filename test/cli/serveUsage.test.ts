/**
 * `keyward serve` usage errors, run as the real command: each exits non-zero with one
 * clear line naming the file, address or URI and the problem (no stack trace, no key
 * bytes, no PIN); and `serve --help` documents every key backend.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { startTestKeyd, tempDir } from '../support/keydFixture.js';
import { issueCertificateFor, runKeyward } from '../support/keywardCli.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let keyd: Keyd;
let token: SoftHsmToken;
let hsmKey: SoftHsmKey;
let hsmChain: string;

before(async () => {
  root = await tempDir('keyward-usage-');
  pki = await getPki();
  token = await createSoftHsmToken();
  hsmKey = await token.generateKey('ec-p256', 'usage-key');
  hsmChain = join(root.dir, 'hsm-chain.pem');
  writeFileSync(hsmChain, await issueCertificateFor(pki.ca, hsmKey.publicKey));
  ({ keyd } = await startTestKeyd(root.dir, undefined, { listen: { unix: join(root.dir, 'keyd.sock') } }));
  const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
  try {
    // keyd holds the P-384 key only.
    await admin.putKey(createPrivateKey(pki.server['ecdsa-p384'].keyPem), ['localhost']);
  } finally {
    admin.close();
  }
});

after(async () => {
  await keyd?.close();
  token?.cleanup();
  await root?.cleanup();
});

/** Runs `keyward serve --listen 127.0.0.1:0 ARGS`, expects exit code 2 and one `keyward:` line matching `message`. */
async function fails(args: string[], message: RegExp, env?: Record<string, string>): Promise<string> {
  const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...args], { ...(env ? { env } : {}), timeoutMs: 20_000 });
  assert.equal(r.timedOut, false, 'it must not hang');
  assert.equal(r.code, 2, `exit code ${r.code}; stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, /^keyward: /);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(r.stdout, /listening/);
  for (const k of Object.values(pki.server)) {
    const body = k.keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
    assert.ok(!body.some((l) => r.stderr.includes(l)), 'no key text in the message');
  }
  return r.stderr;
}

describe('keyward serve: clear usage errors', { timeout: 120_000 }, () => {
  const p256 = () => pki.server['ecdsa-p256'];
  const p384 = () => pki.server['ecdsa-p384'];

  test('--help documents every key backend and the listening line', async () => {
    const r = await runKeyward(['serve', '--help']);
    assert.equal(r.code, 0);
    for (const opt of ['--key-process', '--key-user', '--keyd <address>', '--keyd-ca', '--keyd-cert', '--keyd-key <', '--keyd-key-id', '--keyd-deadline', '--pkcs11 <uri>', '--pkcs11-module', '--pkcs11-pin-file', '--rsa-key-exchange', '--min-version', '--max-version', '--groups <list>', '--cipher <list>', 'ffdhe2048', 'tls://HOST:PORT', 'unix:/', 'keyward listening on https://HOST:PORT/']) {
      assert.ok(r.stdout.includes(opt), `--help does not mention ${opt}`);
    }
  });

  test('no --cert', async () => {
    await fails([], /at least one --cert is required/);
  });

  test('a --cert without a key and without keyd', async () => {
    await fails(['--cert', p256().chainPath], /the certificate .*server-ecdsa-p256-chain\.pem has no key: give --key/);
  });

  test('more key options than certificates', async () => {
    await fails(['--cert', p256().chainPath, '--key', p256().keyPath, '--key', p384().keyPath], /more key options .* than certificates/);
  });

  test('unreadable certificate file', async () => {
    await fails(['--cert', join(root.dir, 'missing.pem'), '--key', p256().keyPath], /cannot read certificate file .*missing\.pem: ENOENT/);
  });

  test('a certificate file that is not a certificate', async () => {
    const junk = join(root.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    await fails(['--cert', junk, '--key', p256().keyPath], /junk\.pem holds no PEM certificate/);
  });

  test('unreadable key file: in-process and in a key process', async () => {
    await fails(['--cert', p256().chainPath, '--key', join(root.dir, 'nokey.pem')], /cannot read key file .*nokey\.pem: ENOENT/);
    await fails(['--cert', p256().chainPath, '--key-process', '--key', join(root.dir, 'nokey.pem')], /cannot read key file .*nokey\.pem: no such file/);
  });

  test('a key file that holds no key', async () => {
    await fails(['--cert', p256().chainPath, '--key', p256().chainPath], /is not a usable private key/);
    await fails(['--cert', p256().chainPath, '--key-process', '--key', p256().chainPath], /holds a certificate, not a private key/);
  });

  test('certificate and key do not match: --key, --key-process, --keyd-key-id, --pkcs11', async () => {
    const mismatch = /the certificate .*server-ecdsa-p256-chain\.pem and the key do not match/;
    await fails(['--cert', p256().chainPath, '--key', p384().keyPath], mismatch);
    await fails(['--cert', p256().chainPath, '--key-process', '--key', p384().keyPath], mismatch);
    const p384Id = keyIdOf(createPublicKey(p384().keyPem));
    await fails(['--cert', p256().chainPath, '--keyd', `unix:${keyd.unixPath}`, '--keyd-key-id', p384Id], mismatch);
    await fails(['--cert', p256().chainPath, '--pkcs11', hsmKey.uri, '--pkcs11-module', token.module, '--pkcs11-pin-file', token.pinFile], mismatch, token.env);
  });

  test('a certificate file that also holds a private key is refused in the isolated modes', async () => {
    const combined = join(root.dir, 'combined.pem');
    writeFileSync(combined, p256().chainPem + p256().keyPem);
    await fails(['--cert', combined, '--key-process', '--key', p256().keyPath], /combined\.pem holds a private key as well as the certificate/);
  });

  test('keyd unreachable: Unix socket and TCP', async () => {
    await fails(['--cert', p256().chainPath, '--keyd', `unix:${join(root.dir, 'no-keyd.sock')}`], /keyd is unreachable \(unix:.*no-keyd\.sock\): .*ENOENT/);
    // A port that was free a moment ago: nothing listens there.
    const closed: Server = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await fails(
      ['--cert', p256().chainPath, '--keyd', `tls://127.0.0.1:${port}`, '--keyd-ca', pki.ca.certPath, '--keyd-cert', pki.client.certPath, '--keyd-key', pki.client.keyPath],
      /keyd is unreachable \(tls:\/\/127\.0\.0\.1:\d+\): .*ECONNREFUSED/,
    );
  });

  test('keyd options: mutual TLS without a client certificate, a malformed address, a malformed key id', async () => {
    await fails(['--cert', p256().chainPath, '--keyd', 'tls://127.0.0.1:7443'], /uses mutual TLS: give --keyd-cert and --keyd-key/);
    await fails(['--cert', p256().chainPath, '--keyd', 'http://127.0.0.1:7443'], /--keyd keyd address "http:\/\/127\.0\.0\.1:7443": expected tls:\/\/HOST:PORT or unix:\/path/);
    await fails(['--cert', p256().chainPath, '--keyd', `unix:${keyd.unixPath}`, '--keyd-key-id', 'abc'], /--keyd-key-id abc: expected the 64 hex digits/);
  });

  test('keyd has no key for the certificate', async () => {
    const id = keyIdOf(createPublicKey(p256().keyPem));
    await fails(['--cert', p256().chainPath, '--keyd', `unix:${keyd.unixPath}`], new RegExp(`keyd has no key ${id} \\(for the certificate .*server-ecdsa-p256-chain\\.pem\\)`));
  });

  test('PKCS#11: object not found, wrong PIN, missing module; the PIN never shown', async () => {
    const base = hsmKey.uri.replace(/;object=[^;?]*/, '').replace(/;id=[^;?]*/, '');
    let err = await fails(['--cert', hsmChain, '--pkcs11', `${base};object=no-such-key`, '--pkcs11-module', token.module, '--pkcs11-pin-file', token.pinFile], /PKCS#11 key pkcs11:.*no private key matches object="no-such-key"/, token.env);
    assert.ok(!err.includes(token.pin));
    err = await fails(['--cert', hsmChain, '--pkcs11', `${hsmKey.uri}?pin-value=0000wrong`, '--pkcs11-module', token.module], /incorrect PIN/, token.env);
    assert.ok(!err.includes('0000wrong'), 'the PIN from the URI is redacted');
    await fails(['--cert', hsmChain, '--pkcs11', hsmKey.uri, '--pkcs11-module', join(root.dir, 'libnothing.so')], /PKCS#11 module not found: .*libnothing\.so/, token.env);
  });

  test('bad --listen, address in use, --key-user without --key-process', async () => {
    await fails(['--listen', 'nowhere', '--cert', p256().chainPath, '--key', p256().keyPath], /--listen must be HOST:PORT or PORT/);
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (busy.address() as { port: number }).port;
      await fails(['--listen', `127.0.0.1:${port}`, '--cert', p256().chainPath, '--key', p256().keyPath], /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
    await fails(['--cert', p256().chainPath, '--key', p256().keyPath, '--key-user', 'nobody'], /--key-user needs --key-process/);
  });
});
