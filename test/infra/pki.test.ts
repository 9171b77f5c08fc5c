// The demo/test PKI: every key type verifies with OpenSSL and GnuTLS as a proper server
// or client certificate, completes a real node:tls handshake, and the demo directory is
// created once with tight permissions and reused.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createCa, ensureDemoPki, issueCertificate, KEY_TYPES } from '../../src/cli/pki.js';
import { nodeTlsClient } from '../support/peers.js';
import { getPki, SNI_NAMES, type PkiFixtures } from '../support/pki.js';
import { runProcess } from '../support/processes.js';

let pki: PkiFixtures;
const scratch = mkdtempSync(join(tmpdir(), 'keyward-pki-test-'));

before(async () => {
  pki = await getPki();
});

after(() => rmSync(scratch, { recursive: true, force: true }));

function opensslText(certPath: string): Promise<string> {
  return runProcess('openssl', ['x509', '-in', certPath, '-noout', '-text'], { timeoutMs: 10_000 }).then((r) => {
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  });
}

describe('certificates verify with OpenSSL and GnuTLS', () => {
  for (const kt of KEY_TYPES) {
    it(`${kt} server certificate: openssl verify -purpose sslserver, certtool --verify`, async () => {
      const v = await runProcess('openssl', ['verify', '-CAfile', pki.ca.certPath, '-purpose', 'sslserver', '-x509_strict', '-verify_hostname', 'localhost', pki.server[kt].certPath], { timeoutMs: 10_000 });
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /: OK$/m);
      const ip = await runProcess('openssl', ['verify', '-CAfile', pki.ca.certPath, '-purpose', 'sslserver', '-verify_ip', '127.0.0.1', pki.server[kt].certPath], { timeoutMs: 10_000 });
      assert.equal(ip.code, 0, ip.stdout + ip.stderr);
      const g = await runProcess(
        'certtool',
        ['--verify', '--load-ca-certificate', pki.ca.certPath, '--infile', pki.server[kt].chainPath, '--verify-hostname', 'localhost', '--verify-purpose', '1.3.6.1.5.5.7.3.1'],
        { timeoutMs: 10_000 },
      );
      assert.equal(g.code, 0, g.stdout + g.stderr);
      assert.match(g.stdout, /Chain verification output: Verified/);
    });

    it(`${kt} client certificate: openssl verify -purpose sslclient`, async () => {
      const v = await runProcess('openssl', ['verify', '-CAfile', pki.ca.certPath, '-purpose', 'sslclient', '-x509_strict', pki.clients[kt].certPath], { timeoutMs: 10_000 });
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const wrongPurpose = await runProcess('openssl', ['verify', '-CAfile', pki.ca.certPath, '-purpose', 'sslserver', pki.clients[kt].certPath], { timeoutMs: 10_000 });
      assert.notEqual(wrongPurpose.code, 0, 'a client-only certificate is not a server certificate');
    });

    it(`${kt} CA can issue (leaf verifies under a ${kt} CA)`, async () => {
      const ca = await createCa({ keyType: kt, commonName: `ca ${kt}` });
      const leaf = await issueCertificate(ca, { keyType: 'ed25519', commonName: 'leaf', dnsNames: ['leaf.test'], usage: 'both' });
      const caPath = join(scratch, `ca-${kt}.pem`);
      const leafPath = join(scratch, `leaf-under-${kt}.pem`);
      writeFileSync(caPath, ca.certPem);
      writeFileSync(leafPath, leaf.certPem);
      for (const purpose of ['sslserver', 'sslclient']) {
        const v = await runProcess('openssl', ['verify', '-CAfile', caPath, '-purpose', purpose, '-x509_strict', leafPath], { timeoutMs: 10_000 });
        assert.equal(v.code, 0, v.stdout + v.stderr);
      }
    });
  }

  it('the untrusted CA is not accepted', async () => {
    const v = await runProcess('openssl', ['verify', '-CAfile', pki.ca.certPath, pki.untrusted.server.certPath], { timeoutMs: 10_000 });
    assert.notEqual(v.code, 0);
  });

  it('SNI certificates carry the wildcard name', async () => {
    for (const kt of KEY_TYPES) {
      const cert = new X509Certificate(pki.sni[kt].certPem);
      assert.equal(cert.subjectAltName, SNI_NAMES.map((n) => `DNS:${n}`).join(', '));
      assert.equal(cert.checkHost('api.wild.test'), '*.wild.test');
      assert.equal(cert.checkHost('example.test'), 'example.test');
      assert.equal(cert.checkHost('localhost'), undefined);
    }
  });
});

describe('extensions', () => {
  it('CA: CA:TRUE, keyCertSign, subject key identifier', async () => {
    const text = await opensslText(pki.ca.certPath);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    assert.match(text, /X509v3 Subject Key Identifier:/);
    assert.equal(new X509Certificate(pki.ca.certPem).ca, true);
  });

  for (const kt of KEY_TYPES) {
    it(`${kt} leaf: CA:FALSE, key usage, EKU, SAN, key identifiers, chain`, async () => {
      const text = await opensslText(pki.server[kt].certPath);
      assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
      const usage = kt === 'rsa-2048' ? 'Digital Signature, Key Encipherment' : 'Digital Signature';
      assert.match(text, new RegExp(`X509v3 Key Usage: critical\\s+${usage}\\n`));
      assert.match(text, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
      assert.match(text, /X509v3 Subject Alternative Name:\s+DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
      assert.match(text, /X509v3 Subject Key Identifier:/);
      const caSki = /X509v3 Subject Key Identifier:\s+(\S+)/.exec(await opensslText(pki.ca.certPath))?.[1];
      const aki = /X509v3 Authority Key Identifier:\s+(?:keyid:)?(\S+)/.exec(text)?.[1];
      assert.ok(caSki);
      assert.equal(aki, caSki);
      const leaf = new X509Certificate(pki.server[kt].certPem);
      const ca = new X509Certificate(pki.ca.certPem);
      assert.equal(leaf.ca, false);
      assert.ok(leaf.checkIssued(ca));
      assert.ok(leaf.verify(ca.publicKey));
      assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
      const chain = pki.server[kt].chainPem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
      assert.equal(chain.length, 2);
      assert.ok(pki.server[kt].keyPem.startsWith('-----BEGIN PRIVATE KEY-----'), 'PKCS#8');
    });
  }

  it('usage both gives serverAuth and clientAuth', async () => {
    const ca = await createCa();
    const both = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'both', dnsNames: ['both.test'], usage: 'both' });
    const p = join(scratch, 'both.pem');
    writeFileSync(p, both.certPem);
    assert.match(await opensslText(p), /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  });
});

describe('node:tls handshake with every key type', () => {
  for (const kt of KEY_TYPES) {
    it(`${kt}`, async () => {
      const server = tls.createServer({ key: pki.server[kt].keyPem, cert: pki.server[kt].chainPem }, (s) => s.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      try {
        const port = (server.address() as net.AddressInfo).port;
        for (const v of ['TLSv1.3', 'TLSv1.2'] as const) {
          const r = await nodeTlsClient(port, { ca: pki.ca.certPem, minVersion: v, maxVersion: v, servername: 'localhost' });
          assert.equal(r.authorized, true, r.authorizationError ?? r.error);
          assert.equal(r.protocol, v);
          assert.equal(r.received, 'ok');
        }
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }
});

describe('bad input', () => {
  it('rejects a server certificate without names, bad names, and bad days', async () => {
    const ca = await createCa();
    await assert.rejects(issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'x', usage: 'server' }), /needs dnsNames or ipAddresses/);
    await assert.rejects(issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'x', dnsNames: ['bad name'], usage: 'server' }), /not a DNS name/);
    await assert.rejects(issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'x', ipAddresses: ['300.1.1.1'], usage: 'server' }), /not an IP address/);
    await assert.rejects(issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'x', dnsNames: ['a.test'], usage: 'server', days: 0 }), RangeError);
    await assert.rejects(createCa({ keyType: 'dsa' as never }), /unknown key type/);
  });

  it('an unreadable issuer key fails without echoing key text', async () => {
    const ca = await createCa();
    const bogus = '-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n';
    await assert.rejects(issueCertificate({ certPem: ca.certPem, keyPem: bogus }, { keyType: 'ecdsa-p256', commonName: 'x', dnsNames: ['a.test'], usage: 'server' }), (e: Error) => {
      assert.match(e.message, /issuer key is not a readable PEM private key/);
      assert.doesNotMatch(e.message, /U0VDUkVU/);
      return true;
    });
  });
});

describe('ensureDemoPki', () => {
  it('creates the directory 0700 and keys 0600 once, then reuses them', async () => {
    const dir = join(scratch, 'demo');
    const first = await ensureDemoPki(dir);
    assert.equal(first.created, true);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(first.keyPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.equal(readFileSync(first.caPath, 'utf8'), first.caPem);

    const leaf = new X509Certificate(readFileSync(first.certPath));
    assert.equal(leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const v = await runProcess('openssl', ['verify', '-CAfile', first.caPath, '-purpose', 'sslserver', '-verify_hostname', 'localhost', first.certPath], { timeoutMs: 10_000 });
    assert.equal(v.code, 0, v.stdout + v.stderr);

    const second = await ensureDemoPki(dir);
    assert.equal(second.created, false);
    assert.equal(second.caPem, first.caPem);
    assert.equal(readFileSync(second.certPath, 'utf8'), readFileSync(first.certPath, 'utf8'));

    // A serving handshake with the demo files.
    const server = tls.createServer({ key: readFileSync(second.keyPath), cert: readFileSync(second.certPath) }, (s) => s.end('demo'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const r = await nodeTlsClient((server.address() as net.AddressInfo).port, { ca: second.caPem, servername: 'localhost' });
      assert.equal(r.authorized, true, r.authorizationError ?? r.error);
      assert.equal(r.received, 'demo');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('regenerates when a file is missing or does not match', async () => {
    const dir = join(scratch, 'demo2');
    const first = await ensureDemoPki(dir);
    unlinkSync(first.keyPath);
    const second = await ensureDemoPki(dir);
    assert.equal(second.created, true);
    assert.notEqual(second.caPem, first.caPem);

    // A key that is not the certificate's.
    const other = await createCa();
    writeFileSync(second.keyPath, other.keyPem, { mode: 0o600 });
    const third = await ensureDemoPki(dir);
    assert.equal(third.created, true);
    assert.equal((await ensureDemoPki(dir)).created, false);
  });
});
