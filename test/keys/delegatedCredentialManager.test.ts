/**
 * The front's DelegatedCredentialManager under a fake clock: the first credential and
 * what current() hands the engine (dcBytes that parse and verify by hand, a signer whose
 * CertificateVerify signatures verify with the credential key), renewal before expiry
 * with jitter, failed renewals that keep the old credential until shortly before it
 * expires and then report none, recovery, a credential never handed out past its expiry,
 * certificates that cannot delegate. Memory: the module has no file API, and a front
 * process whose certificate key is in a key process holds none of that key's bytes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate, createPublicKey, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DelegatedCredentialManager, checkCertificateCanDelegate, type DelegatedCredentialEvent, type DelegatedCredentialManagerOptions } from '../../src/keys/delegatedCredentials.js';
import { delegatedCredentialExt } from '../../src/tls/wire/delegatedCredential.js';
import { certificateVerifyContent } from '../../src/tls/wire/certificateVerify.js';
import { delegationCert, notBeforeOf, verifiesByHand, type DelegationCert } from '../support/delegationPki.js';
import { FakeClock, TestIssuer } from '../support/dcClock.js';
import { tempDir } from '../support/keydFixture.js';
import { keySecretNeedles, scanProcessMemory } from '../support/memscan.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

let cert: DelegationCert;

before(async () => {
  cert = await delegationCert();
});

function setup(extra: Partial<DelegatedCredentialManagerOptions> = {}, random = 0.5) {
  const clock = new FakeClock(Date.now());
  const issuer = new TestIssuer(cert, clock);
  const events: DelegatedCredentialEvent[] = [];
  const m = new DelegatedCredentialManager({ issuer, certificate: cert.der, now: clock.now, timers: clock, random: () => random, onEvent: (e) => events.push(e), ...extra });
  return { clock, issuer, events, m };
}

describe('DelegatedCredentialManager', () => {
  it('hands the engine a credential that parses, verifies by hand, and signs CertificateVerify with its own key', async () => {
    const { clock, issuer, m, events } = setup();
    assert.equal(m.current(), undefined);
    assert.equal(await m.start(), true);
    const dc = m.current()!;
    const parsed = delegatedCredentialExt.parse(dc.dcBytes);
    assert.deepEqual(Buffer.from(parsed.cred.spki), Buffer.from(issuer.requests[0].credential.spki));
    assert.equal(parsed.algorithm, 0x0403);
    assert.ok(verifiesByHand(cert.publicKey, { certificate: cert.der, credential: parsed.cred, algorithm: parsed.algorithm, side: 'server' }, parsed.signature));
    assert.equal(dc.scheme, 0x0403);
    assert.equal(dc.expiresAt, notBeforeOf(cert.der) + parsed.cred.validTime * 1000);
    assert.ok(Math.abs(dc.expiresAt - (clock.t + HOUR)) <= 1000, 'valid for an hour, counted from the certificate notBefore');
    const content = certificateVerifyContent(Buffer.alloc(32, 7));
    const dcPublic = createPublicKey({ key: Buffer.from(parsed.cred.spki), format: 'der', type: 'spki' });
    assert.ok(verify('sha256', content, { key: dcPublic, dsaEncoding: 'der' }, dc.sign(content)));
    assert.ok(verify('sha256', content, { key: dcPublic, dsaEncoding: 'der' }, await dc.key.sign(0x0403, content, { tlsVersion: 'TLSv1.3' }, AbortSignal.timeout(1000))));
    assert.equal(dc.usableFor([0x0403, 0x0807], [0x0403]), true);
    assert.equal(dc.usableFor([0x0807]), false, 'the client does not take ecdsa_secp256r1_sha256 credentials');
    assert.equal(dc.usableFor([0x0403], [0x0804]), false, 'the client does not verify the holder scheme');
    assert.equal(dc.usableFor(undefined), false, 'no delegated_credential extension');
    assert.deepEqual(events.map((e) => e.type), ['issued']);
    m.stop();
  });

  it('an Ed25519 credential key on request', async () => {
    const { m } = setup({ keyType: 'ed25519' });
    await m.start();
    const dc = m.current()!;
    assert.equal(dc.scheme, 0x0807);
    const content = certificateVerifyContent(Buffer.alloc(32, 1));
    assert.ok(verify(null, content, createPublicKey({ key: Buffer.from(dc.credential.cred.spki), format: 'der', type: 'spki' }), dc.sign(content)));
    m.stop();
  });

  it('renews before expiry, at a jittered time, with a fresh key', async () => {
    const early = setup({}, 0.99);
    const late = setup({}, 0);
    for (const s of [early, late]) await s.m.start();
    const renewAt = (s: typeof early) => (s.events[0] as Extract<DelegatedCredentialEvent, { type: 'issued' }>).renewAt;
    // Renew half the validity (30 min) before expiry, up to a tenth of it (6 min) earlier at random.
    assert.ok(Math.abs(renewAt(late) - (late.m.current()!.expiresAt - 30 * MIN)) < 1);
    assert.ok(Math.abs(renewAt(early) - (early.m.current()!.expiresAt - 30 * MIN - 0.99 * 6 * MIN)) < 1);
    const first = late.m.current()!;
    await late.clock.advance(renewAt(late) - late.clock.t - 1000, late.m);
    assert.equal(late.issuer.calls, 1, 'not renewed yet');
    await late.clock.advance(2000, late.m);
    assert.equal(late.issuer.calls, 2, 'renewed');
    const second = late.m.current()!;
    assert.notEqual(second.dcKeyId, first.dcKeyId, 'a new key');
    assert.ok(second.expiresAt > first.expiresAt);
    for (const s of [early, late]) s.m.stop();
  });

  it('keeps the old credential while renewals fail, never past its expiry, then none; recovers', async () => {
    const { clock, issuer, m, events } = setup({ retry: { initialMs: 5 * MIN, maxMs: 10 * MIN } });
    await m.start();
    const dc = m.current()!;
    issuer.failing = true;
    await clock.advance(31 * MIN, m);
    const failed = events.filter((e) => e.type === 'renewal-failed');
    assert.ok(failed.length >= 1);
    assert.deepEqual({ ...failed[0], retryAt: 0 }, { type: 'renewal-failed', code: 'unavailable', message: 'keyd is down (test)', retryAt: 0, serving: true });
    assert.equal(m.current(), dc, 'the old credential is still served');
    // Never handed out within the margin before expiry, nor after.
    assert.equal(m.current(dc.expiresAt - MIN - 1), dc);
    assert.equal(m.current(dc.expiresAt - MIN), undefined);
    assert.equal(m.current(dc.expiresAt), undefined);
    await clock.advance(dc.expiresAt - clock.t, m);
    assert.equal(m.current(), undefined, 'expired: the front falls back to the holder');
    assert.ok(events.some((e) => e.type === 'expired'));
    await clock.advance(10 * MIN, m);
    const lastFailure = events.filter((e) => e.type === 'renewal-failed').at(-1) as Extract<DelegatedCredentialEvent, { type: 'renewal-failed' }>;
    assert.equal(lastFailure.serving, false);
    assert.equal(m.stats.expirations, 1);
    assert.ok(m.stats.failures >= 2, 'retried');
    issuer.failing = false;
    await clock.advance(10 * MIN, m);
    assert.ok(m.current(), 'a retry succeeded');
    assert.notEqual(m.current()!.dcKeyId, dc.dcKeyId);
    m.stop();
  });

  it('a first issue that fails is retried in the background: start resolves false', async () => {
    const { clock, issuer, m, events } = setup();
    issuer.failing = true;
    assert.equal(await m.start(), false);
    assert.equal(events[0].type, 'renewal-failed');
    issuer.failing = false;
    await clock.advance(10_000, m);
    assert.ok(m.current());
    m.stop();
  });

  it('says plainly why a certificate cannot delegate', async () => {
    const noDu = await delegationCert({ delegation: 'none', keys: cert.keys });
    assert.throws(() => setup({ certificate: noDu.der }), /delegated credentials: the certificate has no DelegationUsage extension/);
    const other = await delegationCert();
    assert.deepEqual(checkCertificateCanDelegate(other.der, cert.publicKey), { ok: false, reason: "the certificate's public key is not the key holder's key" });
    assert.equal(checkCertificateCanDelegate(cert.der, cert.privateKey).ok, true);
    const expired = await delegationCert({ keys: cert.keys, notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    assert.match((checkCertificateCanDelegate(expired.der) as { reason: string }).reason, /^the certificate expired at /);
    assert.match((checkCertificateCanDelegate(Buffer.from('not a certificate')) as { reason: string }).reason, /^not a DER X\.509 certificate/);
  });

  it('a credential ends with the certificate, and is not renewed into a longer one', async () => {
    const short = await delegationCert({ keys: cert.keys, notAfter: new Date(Date.now() + 20 * MIN) });
    const { clock, issuer, m } = setup({ certificate: short.der });
    await m.start();
    const notAfter = Date.parse(new X509Certificate(short.der).validTo);
    assert.ok(m.current()!.expiresAt <= notAfter && m.current()!.expiresAt > notAfter - 1000, 'cut at the certificate notAfter');
    await clock.advance(30 * MIN, m);
    assert.equal(issuer.calls, 1);
    assert.equal(m.current(), undefined);
    m.stop();
  });
});

describe('memory', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir: { dir: string; cleanup: () => Promise<void> };
  let keyPath: string;
  let certPath: string;
  let keyPem: string;

  before(async () => {
    dir = await tempDir('dc-mem-');
    keyPath = join(dir.dir, 'key.pem');
    certPath = join(dir.dir, 'cert.pem');
    keyPem = cert.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeFile(keyPath, keyPem, { mode: 0o600 });
    await writeFile(certPath, cert.pem);
  });
  after(() => dir?.cleanup());

  it('the manager has no file API: the credential key is never written anywhere', async () => {
    const src = await readFile(join(here, '..', '..', 'src', 'keys', 'delegatedCredentials.js'), 'utf8');
    const imports = [...src.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    assert.ok(imports.length > 0);
    for (const i of imports) assert.ok(!/^(node:)?(fs|fs\/promises|child_process|net|worker_threads)$/.test(i), `imports ${i}`);
    assert.ok(!/\bexport\(\{[^}]*pkcs8/.test(src), 'never exports the private key');
  });

  it("a front with the key in a key process holds none of the certificate key's bytes; with a local key it does", async () => {
    const needles = keySecretNeedles(keyPem);
    for (const mode of ['keyprocess', 'local'] as const) {
      const proc = spawn(process.execPath, [join(here, '..', 'support', 'dcFront.js'), mode, keyPath, certPath], { stdio: ['pipe', 'pipe', 'inherit'] });
      try {
        const pid = await new Promise<number>((resolve, reject) => {
          let out = '';
          const t = setTimeout(() => reject(new Error(`front not ready: ${out}`)), 20_000);
          proc.once('exit', (c) => reject(new Error(`front exited ${c}: ${out}`)));
          proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
            out += d;
            const m = /^READY (\d+)$/m.exec(out);
            if (m) {
              clearTimeout(t);
              resolve(Number(m[1]));
            }
          });
        });
        const scan = await scanProcessMemory(pid, needles);
        assert.ok(scan.bytesScanned > 10_000_000, 'scanned the process');
        if (mode === 'keyprocess') assert.deepEqual(scan.found, [], 'the certificate key stays in the key process');
        else assert.ok(scan.found.length > 0, 'control: a local key is found');
      } finally {
        proc.stdin!.end();
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
        clearTimeout(t);
      }
    }
  });
});
