/**
 * `keyward certs init` and `certs issue` make everything a keyd deployment needs without
 * any openssl command: keyd's server certificate, a front and an admin client certificate,
 * and a site certificate for a key generated inside keyd, a CSR's key or a public key file.
 * A front then serves with the key in keyd. Errors on the keyd link name their real cause
 * and the files involved.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCa } from '../../src/cli/pki.js';
import { runProcess } from '../support/processes.js';
import { parseKeydConfig } from '../../src/keyd/config.js';
import { startKeyd, type Keyd } from '../../src/keyd/server.js';
import { pino } from 'pino';
import { readAudit, tempDir } from '../support/keydFixture.js';
import { KEYWARD_BIN, runKeyward, startKeyward } from '../support/keywardCli.js';
import { connectTls, echoHandler, startUpstream, waitFor, type TestUpstream } from '../proxy/harness.js';

const READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;

let root: { dir: string; cleanup: () => Promise<void> };
let pkiDir: string;
let keyd: Keyd;
let keydAddr: string;
let up: TestUpstream;
const f = (name: string) => join(pkiDir, name);

before(async () => {
  root = await tempDir('keyward-certs-');
  pkiDir = join(root.dir, 'pki');
  const r = await runKeyward(['certs', 'init', pkiDir]);
  assert.equal(r.code, 0, r.stderr);
  const config = parseKeydConfig(
    {
      listen: { tls: '127.0.0.1:0' },
      tls: { cert: f('keyd-cert.pem'), key: f('keyd-key.pem'), clientCa: f('ca-cert.pem') },
      store: { dir: join(root.dir, 'store'), passphraseEnv: 'KEYD_CERTS_TEST', scrypt: { N: 1024, r: 8, p: 1 } },
      audit: { file: join(root.dir, 'audit.log') },
      clients: [
        { id: 'cn:front', keys: ['*'] },
        { id: 'cn:admin', admin: true },
      ],
    },
    root.dir,
  );
  keyd = await startKeyd(config, { logger: pino({ level: 'silent' }), env: { KEYD_CERTS_TEST: 'test passphrase, not a secret' } });
  keydAddr = `tls://127.0.0.1:${keyd.tlsAddress!.port}`;
  up = await startUpstream(echoHandler);
});
after(async () => {
  await up?.close();
  await keyd?.close();
  await root?.cleanup();
});

describe('keyward certs', () => {
  test('init: a CA, keyd server, front and admin client certificates; keys 0600; never overwrites', async () => {
    const ca = new X509Certificate(await readFile(f('ca-cert.pem')));
    assert.ok(ca.ca);
    const keydCert = new X509Certificate(await readFile(f('keyd-cert.pem')));
    assert.ok(keydCert.checkIssued(ca) && keydCert.verify(ca.publicKey));
    assert.ok(keydCert.checkHost('localhost') && keydCert.checkIP('127.0.0.1'));
    for (const who of ['front', 'admin']) {
      const c = new X509Certificate(await readFile(f(`${who}-cert.pem`)));
      assert.match(c.subject, new RegExp(`CN=${who}`));
      assert.ok(c.verify(ca.publicKey));
      assert.equal((await stat(f(`${who}-key.pem`))).mode & 0o777, 0o600);
    }
    assert.equal((await stat(f('ca-key.pem'))).mode & 0o777, 0o600);
    const again = await runKeyward(['certs', 'init', pkiDir]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /ca-cert\.pem exists already: certs init never overwrites/);
  });

  test('a key generated inside keyd, its certificate from certs issue --keyd-key, served by a proxy whose key is in keyd', async () => {
    const admin = ['--keyd', keydAddr, '--ca', f('ca-cert.pem'), '--cert', f('admin-cert.pem'), '--key', f('admin-key.pem')];
    const gen = await runKeyward(['keys', 'generate', '--type', 'ec-p256', '--name', 'localhost', '--json', ...admin]);
    assert.equal(gen.code, 0, gen.stderr);
    const keyId = (JSON.parse(gen.stdout) as { keyId: string }).keyId;
    const site = join(root.dir, 'site.pem');
    const issued = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--keyd', keydAddr, '--keyd-key', keyId, '--out', site]);
    assert.equal(issued.code, 0, issued.stderr);
    assert.match(issued.stdout, new RegExp(`wrote .*site\\.pem: certificate for key ${keyId} \\(server, CN localhost, names localhost\\)`));

    const front = ['--keyd', keydAddr, '--keyd-ca', f('ca-cert.pem'), '--keyd-cert', f('front-cert.pem'), '--keyd-key', f('front-key.pem')];
    const proxy = await startKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--cert', site, ...front], { ready: READY });
    try {
      const ca = await readFile(f('ca-cert.pem'), 'utf8');
      const s = await connectTls(proxy.port, { ca: { certPem: ca } } as never, 'localhost');
      s.write('through keyd');
      assert.equal(await new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString()))), 'through keyd');
      s.end();
      await waitFor(() => /"keyHolder":"keyd"/.test(proxy.stdout()), 'the access log line naming keyd');
      const audit = await readAudit(join(root.dir, 'audit.log'));
      assert.ok(audit.some((l) => l.keyId === keyId && l.outcome === 'ok' && l.client === 'cn:front'), 'keyd audited the front signing with the generated key');
    } finally {
      await proxy.stop();
    }
  });

  test('certs issue --csr and --public-key: the certificate carries the given public key', async () => {
    const keys = (await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=app.example',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'app.example' }])],
    });
    const csrPath = join(root.dir, 'app.csr');
    await writeFile(csrPath, csr.toString('pem'));
    const r = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--csr', csrPath]);
    assert.equal(r.code, 0, r.stderr);
    const leaf = new X509Certificate(r.stdout);
    assert.ok(leaf.checkHost('app.example'));
    const spki = Buffer.from(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey));
    assert.ok(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki));

    const pubPath = join(root.dir, 'pub.pem');
    await writeFile(pubPath, createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }));
    const client = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--public-key', pubPath, '--client', '--cn', 'front-2']);
    assert.equal(client.code, 0, client.stderr);
    const c = new X509Certificate(client.stdout);
    assert.match(c.subject, /CN=front-2/);
    assert.match(c.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.2/);

    const tampered = csr.toString('pem').replace(/[A-Za-z](?=[A-Za-z0-9+/=]*\n-----END)/, (ch) => (ch === 'A' ? 'B' : 'A'));
    await writeFile(csrPath, tampered);
    const bad = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--csr', csrPath]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /app\.csr(: the request's signature does not verify| is not a PEM certificate request)/);
    const none = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--public-key', f('front-key.pem'), '--name', 'x.example']);
    assert.match(none.stderr, /front-key\.pem holds a private key: give the public key alone/);
  });

  test('certs revoke: runs at once lose no revocation (a lock file); --ca writes next to the CA and prints absolute paths; --days, --serial, --out checked', async () => {
    const dir = join(root.dir, 'revoke');
    await mkdir(dir);
    const caFlags = ['--ca', f('ca-cert.pem'), '--ca-key', f('ca-key.pem')];
    const crl = f('crl.pem');
    // Run from another folder, as cron does.
    const first = await runProcess('/bin/sh', ['-c', 'cd "$1" && shift && exec "$@"', 'sh', dir, process.execPath, KEYWARD_BIN, 'certs', 'revoke', ...caFlags]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(first.stdout.includes(`(keyward certs revoke --ca ${f('ca-cert.pem')} --ca-key ${f('ca-key.pem')} --out ${crl} --days 30)`), first.stdout);
    assert.deepEqual(await readdir(dir), [], 'nothing written in the working folder');

    const serials = ['0a', '0b', '0c'];
    const runs = await Promise.all(serials.map((s) => runKeyward(['certs', 'revoke', '--dir', pkiDir, '--serial', s])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const listed = await runProcess('openssl', ['crl', '-in', crl, '-noout', '-text']);
    for (const s of serials) assert.match(listed.stdout, new RegExp(`Serial Number: ${s.toUpperCase()}\\n`), listed.stdout);
    assert.match(listed.stdout, /X509v3 CRL Number: *\n *4\n/);

    const lock = `${crl}.lock`;
    await writeFile(lock, '1\n');
    const locked = await runKeyward(['certs', 'revoke', '--dir', pkiDir]);
    assert.equal(locked.code, 2);
    assert.ok(locked.stderr.includes(`the CRL ${crl} is locked by another run (${lock})`), locked.stderr);
    await utimes(lock, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    // A 20-octet serial as GnuTLS prints it, with the DER sign octet.
    const stale = await runKeyward(['certs', 'revoke', '--dir', pkiDir, '--serial', '00' + 'f0'.repeat(20)]);
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stderr, /warning: taking over the lock file \S+crl\.pem\.lock, left 1\d\d s ago/);
    assert.match(stale.stdout, new RegExp(`revoked: ${'f0'.repeat(20)} \\(--serial\\)`));
    await assert.rejects(stat(lock), 'the lock is removed');

    const link = join(dir, 'link.pem');
    await symlink(crl, link);
    const viaLink = await runKeyward(['certs', 'revoke', '--dir', pkiDir, '--out', link, '--days', '3650']);
    assert.equal(viaLink.code, 0, viaLink.stderr);
    assert.ok(viaLink.stdout.startsWith(`wrote ${crl}: CRL number 6 `), 'written through the link to its target');
    const kept = await readFile(crl, 'utf8');
    for (const [args, error] of [
      [['--days', '3651'], /--days 3651: expected a whole number of days from 1 to 3650/],
      [['--out', join(dir, 'missing', 'crl.pem')], /--out \S+missing\/crl\.pem: the folder \S+missing does not exist/],
    ] as const) {
      const r = await runKeyward(['certs', 'revoke', '--dir', pkiDir, ...args]);
      assert.equal(r.code, 2, r.stdout);
      assert.match(r.stderr, error);
      assert.doesNotMatch(r.stderr, /\n +at /, 'no stack');
    }
    assert.equal(await readFile(crl, 'utf8'), kept, 'a refused run leaves the CRL as it was');
    assert.deepEqual((await readdir(pkiDir)).filter((n) => /\.(tmp|lock)$/.test(n)), []);
  });

  test('keyd link errors: a CA that does not verify keyd is not "unreachable"; a mismatched client pair names both files', async () => {
    const other = await createCa({ commonName: 'some other CA' });
    const otherCa = join(root.dir, 'other-ca.pem');
    await writeFile(otherCa, other.certPem);
    const base = ['proxy', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--cert', join(root.dir, 'site.pem'), '--keyd', keydAddr];
    const wrongCa = await runKeyward([...base, '--keyd-ca', otherCa, '--keyd-cert', f('front-cert.pem'), '--keyd-key', f('front-key.pem')]);
    assert.equal(wrongCa.code, 2);
    assert.match(wrongCa.stderr, /keyd at tls:\/\/127\.0\.0\.1:\d+ answered, but its certificate does not verify against --keyd-ca .*other-ca\.pem \([A-Z_]+\)/);
    assert.doesNotMatch(wrongCa.stderr, /unreachable/);
    const mismatch = await runKeyward([...base, '--keyd-ca', f('ca-cert.pem'), '--keyd-cert', f('front-cert.pem'), '--keyd-key', f('admin-key.pem')]);
    assert.equal(mismatch.code, 2);
    assert.match(mismatch.stderr, /the keyd link's client certificate .*front-cert\.pem \(--keyd-cert\) and key .*admin-key\.pem \(--keyd-key\) do not match/);

    // A certificate from the right CA whose identity keyd's rules do not name.
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const strangerKey = join(root.dir, 'stranger-key.pem');
    const strangerPub = join(root.dir, 'stranger-pub.pem');
    await writeFile(strangerKey, stranger.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(strangerPub, stranger.publicKey.export({ type: 'spki', format: 'pem' }));
    const strangerCert = join(root.dir, 'stranger-cert.pem');
    const issued = await runKeyward(['certs', 'issue', '--dir', pkiDir, '--public-key', strangerPub, '--client', '--cn', 'stranger', '--out', strangerCert]);
    assert.equal(issued.code, 0, issued.stderr);
    const refused = await runKeyward([...base, '--keyd-ca', f('ca-cert.pem'), '--keyd-cert', strangerCert, '--keyd-key', strangerKey]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /refused this front/);
    assert.doesNotMatch(refused.stderr, /unreachable/);
  });
});
