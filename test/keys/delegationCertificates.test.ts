/**
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
import { checkCertificateCanDelegate } from '../../src/keys/delegatedCredentials.js';
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
