/**
 * The key process and the in-process issuer sign delegated credentials (RFC 9345) that
 * verify with node:crypto against the certificate's public key over the content built by
 * hand, and refuse, with the reason, what is not a credential for their certificate: a
 * certificate of another key, one without DelegationUsage, a validity beyond the maximum
 * or past the certificate, the certificate's own key, an RSA credential key. A key process
 * started without `delegatedCredentials` signs none; a CANCEL-able request that is
 * aborted rejects 'aborted'.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DelegatedCredentialIssuer, DelegatedCredentialRequest } from '../../src/keys/delegatedCredentialIssuer.js';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { LocalDelegatedCredentialIssuer } from '../../src/keys/localDelegatedCredentialIssuer.js';
import { dcRequest, delegationCert, verifiesByHand, type DelegationCert } from '../support/delegationPki.js';
import { tempDir } from '../support/keydFixture.js';

const CTX: OperationContext = { tlsVersion: 'TLSv1.3' };
const never = () => AbortSignal.timeout(10_000);

let root: { dir: string; cleanup: () => Promise<void> };
let cert: DelegationCert;
let keyPath: string;
const processes: KeyProcessKey[] = [];

before(async () => {
  root = await tempDir('dc-issuers-');
  cert = await delegationCert();
  keyPath = join(root.dir, 'key.pem');
  await writeFile(keyPath, cert.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
});

after(async () => {
  await Promise.all(processes.map((p) => p.close()));
  await root?.cleanup();
});

async function keyProcess(opts: Parameters<typeof startKeyProcess>[0]['delegatedCredentials']): Promise<KeyProcessKey> {
  const kp = await startKeyProcess({ keyPath, expectedPublicKey: cert.publicKey, ...(opts === undefined ? {} : { delegatedCredentials: opts }) });
  processes.push(kp);
  return kp;
}

async function refusal(issuer: DelegatedCredentialIssuer, req: DelegatedCredentialRequest): Promise<string> {
  try {
    await issuer.issueDelegatedCredential(req, CTX, never());
  } catch (e) {
    assert.ok(e instanceof KeyOperationError, String(e));
    return `${e.code}: ${e.message}`;
  }
  assert.fail('the request was signed');
}

async function structuralRefusals(issuer: DelegatedCredentialIssuer): Promise<void> {
  const sameKey = (o: Parameters<typeof delegationCert>[0]) => delegationCert({ ...o, keys: cert.keys });
  const rsaSpki = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
  const cases: Array<[DelegatedCredentialRequest, RegExp]> = [
    [dcRequest((await delegationCert()).der), /^refused: .*delegated credential refused: the certificate's public key is not this key$/],
    [dcRequest((await sameKey({ delegation: 'none' })).der), /^refused: .*no DelegationUsage extension \(1\.3\.6\.1\.4\.1\.44363\.44\)/],
    [dcRequest((await sameKey({ delegation: 'bad-value' })).der), /DelegationUsage extension's value is not NULL/],
    [dcRequest(cert.der, 7 * 3600_000), /more than the maximum 21600 s$/],
    [dcRequest((await sameKey({ notAfter: new Date(Date.now() + 3600_000) })).der, 2 * 3600_000), /would outlive the certificate/],
    [dcRequest(cert.der, 3600_000, { spki: cert.publicKey.export({ type: 'spki', format: 'der' }) }), /the certificate's own key$/],
    [dcRequest(cert.der, 3600_000, { spki: rsaSpki, dcScheme: 0x0804 }), /dc_cert_verify_algorithm rsa_pss_rsae_sha256 is not one of ec-p256, ec-p384, ec-p521, ed25519/],
    [dcRequest(cert.der, 3600_000, { dcScheme: 0x0807 }), /the credential's key \(ec-p256\) does not fit ed25519/],
    [dcRequest(cert.der, 3600_000, { algorithm: 0x0804 }), /rsa_pss_rsae_sha256 is not a TLS 1\.3 scheme of this key/],
  ];
  for (const [req, want] of cases) assert.match(await refusal(issuer, req), want);
}

describe('key process', () => {
  it('signs a credential that verifies against the certificate key over the content built by hand', async () => {
    const kp = await keyProcess(true);
    for (const side of ['server', 'client'] as const) {
      const req = dcRequest(cert.der, 3600_000, { side });
      assert.ok(verifiesByHand(cert.publicKey, req, await kp.issueDelegatedCredential(req, CTX, never())), side);
    }
  });

  it('refuses what is not a credential for its certificate', async () => {
    await structuralRefusals(await keyProcess(true));
  });

  it('signs none unless started with delegatedCredentials, and keeps its configured maximum', async () => {
    assert.match(await refusal(await keyProcess(undefined), dcRequest(cert.der)), /^refused: key process: delegated credentials are not enabled for this key process/);
    const short = await keyProcess({ maxValidityMs: 3600_000 });
    assert.match(await refusal(short, dcRequest(cert.der, 2 * 3600_000)), /more than the maximum 3600 s$/);
    const half = dcRequest(cert.der, 1800_000);
    assert.ok(verifiesByHand(cert.publicKey, half, await short.issueDelegatedCredential(half, CTX, never())));
    await assert.rejects(startKeyProcess({ keyPath, delegatedCredentials: { maxValidityMs: 8 * 86400_000 } }), /between 60 s and 7 days/);
  });
});

describe('local issuer', () => {
  it('signs what the key process signs and refuses what it refuses', async () => {
    const local = new LocalDelegatedCredentialIssuer(cert.privateKey);
    const req = dcRequest(cert.der);
    assert.ok(verifiesByHand(cert.publicKey, req, await local.issueDelegatedCredential(req, CTX, never())));
    await structuralRefusals(local);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(local.issueDelegatedCredential(req, CTX, ac.signal), (e: unknown) => e instanceof KeyOperationError && e.code === 'aborted');
  });

  it('checks validity with its own clock: an expired credential, a certificate not yet valid', async () => {
    const now = Date.now();
    const local = new LocalDelegatedCredentialIssuer(cert.privateKey, { now: () => now });
    assert.match(await refusal(local, dcRequest(cert.der, -1000, { now })), /the credential expired at/);
    const early = new LocalDelegatedCredentialIssuer(cert.privateKey, { now: () => now - 2 * 3600_000 });
    assert.match(await refusal(early, dcRequest(cert.der, 3600_000, { now: now - 2 * 3600_000 })), /the certificate is not valid before/);
  });
});
