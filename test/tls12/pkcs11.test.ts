// TLS 1.2 with the server keys inside a SoftHSM2 token: ECDHE_ECDSA and ECDHE_RSA
// ServerKeyExchange signatures and the RSA key exchange premaster decryption (CKM_RSA_PKCS,
// implicit rejection) done by the token, through `keyward serve --pkcs11 ... --rsa-key-exchange`
// with openssl s_client -tls1_2, and through openPkcs11Key directly.
import assert from 'node:assert/strict';
import { constants, publicEncrypt, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openPkcs11Key, type Pkcs11Key } from '../../src/keys/pkcs11Key.js';
import { SignatureScheme, verifySignature12 } from '../../src/tls/crypto/signatureSchemes.js';
import { tempDir } from '../support/keydFixture.js';
import { issueCertificateFor, startServe, type KeywardChild } from '../support/keywardCli.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../support/softhsm.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let token: SoftHsmToken;
let keys: Record<'ec-p256' | 'ec-p384' | 'rsa-2048', SoftHsmKey>;
let server: KeywardChild;

before(async () => {
  root = await tempDir('tls12-pkcs11-');
  pki = await getPki();
  // Token and keys first: SoftHSM sees only tokens that exist when it is initialized.
  token = await createSoftHsmToken();
  keys = {
    'ec-p256': await token.generateKey('ec-p256', 'tls12-p256'),
    'ec-p384': await token.generateKey('ec-p384', 'tls12-p384'),
    'rsa-2048': await token.generateKey('rsa-2048', 'tls12-rsa'),
  };
  const args: string[] = ['--rsa-key-exchange', '--pkcs11-module', token.module, '--pkcs11-pin-file', token.pinFile];
  for (const [kind, key] of Object.entries(keys)) {
    const chain = join(root.dir, `${kind}-chain.pem`);
    writeFileSync(chain, await issueCertificateFor(pki.ca, key.publicKey));
    args.push('--cert', chain, '--pkcs11', key.uri);
  }
  server = await startServe(args, { env: token.env, timeoutMs: 30_000 });
});

after(async () => {
  await server?.stop();
  token?.cleanup();
  await root?.cleanup();
});

describe('TLS 1.2 with keys in a SoftHSM2 token', { timeout: 120_000 }, () => {
  const cases: { cipher: string; groups?: string; sigalgs?: string; sig?: RegExp }[] = [
    { cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', groups: 'X25519:P-256', sigalgs: 'ECDSA+SHA256', sig: /ECDSA/ },
    { cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384', groups: 'P-384', sigalgs: 'ECDSA+SHA384', sig: /ECDSA/ },
    { cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305', groups: 'P-256', sigalgs: 'ECDSA+SHA256', sig: /ECDSA/ },
    // No P-521 key: a token EC key signs with SHA-512 (TLS 1.2 ECDSA schemes name only the hash).
    { cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', groups: 'P-256', sigalgs: 'ECDSA+SHA512', sig: /ECDSA/ },
    { cipher: 'ECDHE-RSA-AES128-GCM-SHA256', sigalgs: 'RSA-PSS+SHA256', sig: /RSA-PSS/ },
    { cipher: 'ECDHE-RSA-AES256-GCM-SHA384', sigalgs: 'RSA+SHA384', sig: /^RSA$/ },
    { cipher: 'ECDHE-RSA-CHACHA20-POLY1305', groups: 'P-256' },
    { cipher: 'AES128-GCM-SHA256' },
    { cipher: 'AES256-GCM-SHA384' },
  ];
  for (const c of cases) {
    it(`openssl s_client -tls1_2 -cipher ${c.cipher}${c.sigalgs ? ` -sigalgs ${c.sigalgs}` : ''}`, async () => {
      const args = ['-tls1_2', '-cipher', c.cipher, '-verify_return_error'];
      if (c.groups) args.push('-groups', c.groups);
      if (c.sigalgs) args.push('-sigalgs', c.sigalgs);
      const r = await opensslClient(server.port, {
        servername: 'localhost',
        cafile: pki.ca.certPath,
        args: [...args, '-alpn', 'http/1.1'],
        input: 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
        waitFor: /HTTP\/1\.1 200/,
        timeoutMs: 15_000,
      });
      const sum = parseOpensslOutput(r);
      assert.ok(sum.handshakeOk, `${r.stdout}\n${r.stderr}\nserver: ${server.stderr()}`);
      assert.equal(sum.protocol, 'TLSv1.2');
      assert.equal(sum.cipher, c.cipher);
      assert.equal(sum.verifyCode, 0, sum.verifyMessage);
      if (c.sig) assert.match(sum.peerSignatureType ?? '', c.sig);
      assert.match(r.stdout, /HTTP\/1\.1 200/);
      // The page says where the key is.
      assert.match(r.stdout, /PKCS#11 token/);
    });
  }

  it('openPkcs11Key: decryptPremaster (CKM_RSA_PKCS) returns the premaster, and 48 random bytes for bad padding, length or version', async () => {
    const key: Pkcs11Key = await openPkcs11Key({ uri: keys['rsa-2048'].uri, module: token.module, pinFile: token.pinFile });
    try {
      assert.ok(key.decryptPremaster, 'an RSA token key with CKA_DECRYPT offers decryptPremaster');
      const ctx = { tlsVersion: 'TLSv1.2' as const };
      const signal = new AbortController().signal;
      const premaster = Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
      const enc = (m: Buffer): Buffer => publicEncrypt({ key: keys['rsa-2048'].publicKey, padding: constants.RSA_PKCS1_PADDING }, m);
      assert.deepEqual(Buffer.from(await key.decryptPremaster(enc(premaster), 0x0303, ctx, signal)), premaster);
      const bad = [
        enc(randomBytes(47)), // wrong length
        enc(Buffer.concat([Buffer.of(3, 1), randomBytes(46)])), // wrong version
        randomBytes(256), // wrong padding (almost surely)
        randomBytes(100), // wrong ciphertext length
      ];
      const outs: Buffer[] = [];
      for (const ct of bad) {
        const out: Buffer = Buffer.from(await key.decryptPremaster(ct, 0x0303, ctx, signal));
        assert.equal(out.length, 48);
        outs.push(out);
      }
      assert.equal(new Set(outs.map((o) => o.toString('hex'))).size, outs.length, 'each bad ciphertext gets its own random premaster');
      assert.ok(!outs.some((o) => o.equals(premaster)));
    } finally {
      await key.close();
    }
  });

  it('openPkcs11Key: a P-256 key signs ecdsa_secp384r1_sha384 in TLS 1.2 and refuses it in TLS 1.3', async () => {
    const key: Pkcs11Key = await openPkcs11Key({ uri: keys['ec-p256'].uri, module: token.module, pinFile: token.pinFile });
    try {
      const message = randomBytes(100);
      const signal = new AbortController().signal;
      const sig = await key.sign(SignatureScheme.ecdsa_secp384r1_sha384, message, { tlsVersion: 'TLSv1.2' }, signal);
      assert.ok(verifySignature12(key.publicKey, SignatureScheme.ecdsa_secp384r1_sha384, message, sig));
      assert.ok(!key.schemes.includes(SignatureScheme.ecdsa_secp384r1_sha384), 'the key offers only its own curve');
      await assert.rejects(key.sign(SignatureScheme.ecdsa_secp384r1_sha384, message, { tlsVersion: 'TLSv1.3' }, signal), (e: Error & { code?: string }) => e.code === 'unsupported');
    } finally {
      await key.close();
    }
  });
});
