/**
 * The DER walker never throws on hostile input: every prefix and thousands of byte flips
 * of a real certificate give an answer (ok or a reason). keyd's ISSUE_DELEGATED_CREDENTIAL
 * decoder refuses malformed bodies with bad-request.
 *
 * `keyward certs issue --delegation` issues a certificate that can delegate (DelegationUsage,
 * non-critical, NULL; digitalSignature), which OpenSSL also reads as carrying the extension;
 * without the flag the certificate cannot delegate, and the check says why.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FrameType, encodeIssueDelegatedCredentialRequest, decodeIssueDelegatedCredentialRequest, Tag, TlvWriter } from '../../src/keyd/protocol.js';
import { checkDelegationCertificate } from '../../src/keys/delegationCertificate.js';
import { checkCertificateCanDelegate } from '../../src/keys/delegatedCredentials.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { dcRequest, delegationCert } from '../support/delegationPki.js';
import { tempDir } from '../support/keydFixture.js';
import { runKeyward } from '../support/keywardCli.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pubPath: string;
const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

before(async () => {
  root = await tempDir('dc-certs-');
  const init = await runKeyward(['certs', 'init', join(root.dir, 'pki')]);
  assert.equal(init.code, 0, init.stderr);
  pubPath = join(root.dir, 'pub.pem');
  await writeFile(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));
});

after(() => root?.cleanup());

function leafDer(chainPem: string): Buffer {
  return new X509Certificate(chainPem).raw;
}

test('certs issue --delegation: a certificate that can delegate; without it, one that says why not', async () => {
  const withDc = await runKeyward(['certs', 'issue', '--dir', join(root.dir, 'pki'), '--public-key', pubPath, '--name', 'dc.example', '--delegation']);
  assert.equal(withDc.code, 0, withDc.stderr);
  assert.match(withDc.stderr, /DelegationUsage/);
  assert.deepEqual({ ...checkCertificateCanDelegate(leafDer(withDc.stdout), publicKey), notBefore: 0, notAfter: 0 }, { ok: true, notBefore: 0, notAfter: 0 });
  // OpenSSL reads the same extension, non-critical, in the leaf.
  const leafPath = join(root.dir, 'leaf.pem');
  await writeFile(leafPath, new X509Certificate(withDc.stdout).toString());
  const text = execFileSync('openssl', ['x509', '-in', leafPath, '-noout', '-text'], { encoding: 'utf8', timeout: 10_000 });
  assert.match(text, /1\.3\.6\.1\.4\.1\.44363\.44:\s*\n/);
  assert.doesNotMatch(text, /1\.3\.6\.1\.4\.1\.44363\.44: critical/);
  assert.match(text, /Digital Signature/);

  const without = await runKeyward(['certs', 'issue', '--dir', join(root.dir, 'pki'), '--public-key', pubPath, '--name', 'dc.example']);
  assert.equal(without.code, 0, without.stderr);
  const no = checkCertificateCanDelegate(leafDer(without.stdout), publicKey);
  assert.equal(no.ok, false);
  assert.match((no as { reason: string }).reason, /no DelegationUsage extension .* keyward certs issue --delegation/);
});

test('every prefix and random byte flips of a certificate get an answer, never an exception', async () => {
  const { der } = await delegationCert();
  assert.equal(checkDelegationCertificate(der).ok, true);
  for (let n = 0; n < der.length; n++) assert.equal(checkDelegationCertificate(der.subarray(0, n)).ok, false, `prefix ${n}`);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 5000; i++) {
    const m = Buffer.from(der);
    for (let k = 0; k < 1 + (i % 3); k++) m[rand() % m.length] = rand() & 0xff;
    const r = checkDelegationCertificate(m);
    assert.ok(r.ok || (typeof r.reason === 'string' && r.reason.length > 0));
  }
});

test('ISSUE_DELEGATED_CREDENTIAL bodies: round trip, and bad-request for malformed ones', async () => {
  const { der } = await delegationCert();
  const req = dcRequest(der);
  const body = encodeIssueDelegatedCredentialRequest({ key: { serverName: 'dc.example' }, request: req, ctx: { tlsVersion: 'TLSv1.3' } });
  const back = decodeIssueDelegatedCredentialRequest(body);
  assert.deepEqual([back.request.side, back.request.algorithm, back.request.credential.validTime, Buffer.from(back.request.certificate)], [req.side, req.algorithm, req.credential.validTime, der]);
  const tls13 = (w: TlvWriter) => w.u16(Tag.CTX_TLS_VERSION, 0x0304).str(Tag.SERVER_NAME, 'dc.example').u16(Tag.SCHEME, 0x0403);
  const cases: Array<[string, TlvWriter, RegExp]> = [
    ['no certificate', tls13(new TlvWriter()).bytes(Tag.CREDENTIAL, Buffer.alloc(12, 1)).u8(Tag.DC_SIDE, 1), /missing CERTIFICATE/],
    ['bad side', tls13(new TlvWriter()).bytes(Tag.CERTIFICATE, der).bytes(Tag.CREDENTIAL, Buffer.alloc(12, 1)).u8(Tag.DC_SIDE, 3), /unknown DC_SIDE/],
    ['bad credential', tls13(new TlvWriter()).bytes(Tag.CERTIFICATE, der).bytes(Tag.CREDENTIAL, Buffer.alloc(12, 1)).u8(Tag.DC_SIDE, 1), /CREDENTIAL is not an RFC 9345 Credential/],
  ];
  for (const [what, w, want] of cases) {
    assert.throws(() => decodeIssueDelegatedCredentialRequest(w.finish()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request' && want.test(e.message), what);
  }
  assert.equal(FrameType.ISSUE_DELEGATED_CREDENTIAL, 0x14);
});
