/**
 * keyd signs delegated credentials (RFC 9345) for the certificate of a key it holds, as a
 * structurally checked operation of its own: the signature verifies with node:crypto
 * against the certificate's public key over the content built by hand, and the audit log
 * has the front, key, credential key hash, scheme and expiry. Each refusal (another key's
 * certificate, no DelegationUsage, critical DelegationUsage, no digitalSignature, longer
 * than the maximum, past the certificate's notAfter, an expired certificate, the
 * certificate's own key, a front without the grant) is answered `refused` with its
 * reason, audited, logged and counted by reason. A key process embedded in keyd gets the
 * request whole (its `sign` takes handshake shapes only).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseKeydConfig, KeydConfigError } from '../../src/keyd/config.js';
import type { Keyd } from '../../src/keyd/server.js';
import type { DelegatedCredentialRequest } from '../../src/keys/delegatedCredentialIssuer.js';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { KeydClient, connectKeydAdmin, type RemoteKey } from '../../src/keys/remoteKey.js';
import { delegationCert, dcRequest, verifiesByHand, type DelegationCert } from '../support/delegationPki.js';
import { fetchText, keydConfigJson, makeKeydPki, metricValue, readAudit, startTestKeyd, tempDir, tlsClientOptions, type KeydPki, type LogCapture } from '../support/keydFixture.js';

const CTX: OperationContext = { tlsVersion: 'TLSv1.3', serverName: 'localhost' };

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let keyd: Keyd;
let logs: LogCapture;
let cert: DelegationCert;
let embeddedCert: DelegationCert;
let embedded: KeyProcessKey;
const clients: KeydClient[] = [];

before(async () => {
  root = await tempDir('keyd-dc-');
  pki = await makeKeydPki(root.dir, ['front', 'no-dc', 'admin']);
  embeddedCert = await delegationCert();
  const keyPath = join(root.dir, 'embedded-key.pem');
  await writeFile(keyPath, embeddedCert.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  embedded = await startKeyProcess({ keyPath, delegatedCredentials: true });
  ({ keyd, logs } = await startTestKeyd(
    root.dir,
    pki,
    {
      clients: [
        { id: 'cn:front', keys: ['*'], psks: [], delegatedCredentials: true },
        { id: 'cn:no-dc', keys: ['*'], psks: [] },
        { id: 'cn:admin', admin: true },
      ],
    },
    { keys: [{ ops: embedded, serverNames: ['embedded.test'] }] },
  ));
  cert = await delegationCert();
  const admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.tlsAddress!));
  try {
    await admin.putKey(cert.privateKey, ['localhost']);
  } finally {
    admin.close();
  }
});

after(async () => {
  for (const c of clients) c.close();
  await keyd?.close();
  await embedded?.close();
  await root?.cleanup();
});

async function keyFor(front: string, serverName = 'localhost'): Promise<RemoteKey> {
  const c = await KeydClient.connect({ ...tlsClientOptions(pki, front, keyd.tlsAddress!), pingIntervalMs: 0 });
  clients.push(c);
  return c.key({ serverName });
}

async function metrics(): Promise<string> {
  return (await fetchText(`http://127.0.0.1:${keyd.metricsAddress!.port}/metrics`)).text;
}

async function auditLine(connectionId: string): Promise<Record<string, unknown>> {
  await keyd.audit.flush();
  const lines = (await readAudit(join(root.dir, 'audit.log'))).filter((l) => l.connectionId === connectionId);
  assert.equal(lines.length, 1, `one audit line for ${connectionId}`);
  return lines[0];
}

const spkiHash = (spki: Uint8Array) => createHash('sha256').update(spki).digest('hex');

test('keyd signs a credential that verifies against the certificate key, and audits it', async () => {
  const key = await keyFor('front');
  const req = dcRequest(cert.der, 3600_000);
  const sig = await key.issueDelegatedCredential(req, { ...CTX, connectionId: 'dc-ok' }, AbortSignal.timeout(5000));
  assert.ok(verifiesByHand(cert.publicKey, req, sig), 'the signature verifies over the RFC 9345 content built by hand');
  assert.equal(key.publicKey.type, 'public', 'the front holds only the public half');
  const line = await auditLine('dc-ok');
  assert.equal(line.op, 'delegated-credential');
  assert.equal(line.outcome, 'ok');
  assert.equal(line.client, 'cn:front');
  assert.equal(line.keyId, key.keyId);
  assert.equal(line.dcKey, spkiHash(req.credential.spki));
  assert.equal(line.scheme, 'ecdsa_secp256r1_sha256');
  assert.equal(line.dcScheme, 'ecdsa_secp256r1_sha256');
  const expires = Date.parse(String(line.dcExpires));
  assert.ok(Math.abs(expires - (Date.now() + 3600_000)) < 60_000, `expires in about an hour: ${String(line.dcExpires)}`);
  assert.equal(metricValue(await metrics(), 'keyd_operations_total', { op: 'delegated-credential', outcome: 'ok' }), 1);
});

test('every structural refusal and the per-front refusal: refused, audited, logged, counted by reason', async () => {
  const front = await keyFor('front');
  const other = await delegationCert();
  const sameKey = (o: Parameters<typeof delegationCert>[0]) => delegationCert({ ...o, keys: cert.keys });
  const soon = await sameKey({ notAfter: new Date(Date.now() + 2 * 3600_000) });
  const expired = await sameKey({ notBefore: new Date(Date.now() - 30 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
  const ownSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const cases: Array<[string, RemoteKey | 'no-dc', DelegatedCredentialRequest, string, RegExp]> = [
    ['wrong-cert', front, dcRequest(other.der), 'wrong-certificate', /the certificate's public key is not this key/],
    ['no-du', front, dcRequest((await sameKey({ delegation: 'none' })).der), 'no-delegation-usage', /no DelegationUsage extension/],
    ['critical-du', front, dcRequest((await sameKey({ delegation: 'critical' })).der), 'no-delegation-usage', /marked critical/],
    ['no-digsig', front, dcRequest((await sameKey({ keyUsage: 'keyEncipherment' })).der), 'no-delegation-usage', /lacks digitalSignature/],
    ['too-long', front, dcRequest(cert.der, 7 * 3600_000), 'validity', /valid for \d+ s, more than the maximum 21600 s/],
    ['past-cert', front, dcRequest(soon.der, 3 * 3600_000), 'validity', /would outlive the certificate/],
    ['expired-cert', front, dcRequest(expired.der, 3600_000, { now: Date.now() - 2 * 86400_000 }), 'certificate-validity', /the certificate expired/],
    ['own-key', front, dcRequest(cert.der, 3600_000, { spki: ownSpki }), 'dc-key', /the certificate's own key/],
    ['not-permitted', 'no-dc', dcRequest(cert.der), 'not-permitted', /may not obtain delegated credentials/],
  ];
  const noDc = await keyFor('no-dc');
  const before = await metrics();
  for (const [id, who, req, , message] of cases) {
    const key = who === 'no-dc' ? noDc : who;
    await assert.rejects(key.issueDelegatedCredential(req, { ...CTX, connectionId: `dc-${id}` }, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof KeyOperationError, String(e));
      assert.equal(e.code, 'refused', id);
      assert.match(e.message, message, id);
      return true;
    });
    const line = await auditLine(`dc-${id}`);
    assert.equal(line.op, 'delegated-credential', id);
    assert.equal(line.outcome, 'refused', id);
    assert.match(String(line.reason), message, id);
    assert.ok(logs.lines.some((l) => l.msg === 'request refused' && message.test(String(l.reason))), `logged: ${id}`);
  }
  const after = await metrics();
  const counts = new Map<string, number>();
  for (const [, , , reason] of cases) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  for (const [reason, n] of counts) {
    const delta = metricValue(after, 'keyd_delegated_credentials_refused_total', { reason }) - metricValue(before, 'keyd_delegated_credentials_refused_total', { reason });
    assert.equal(delta, n, `refusals counted for ${reason}`);
  }
});

test('a key process embedded in keyd issues the credential itself', async () => {
  const key = await keyFor('front', 'embedded.test');
  const req = dcRequest(embeddedCert.der);
  assert.ok(verifiesByHand(embeddedCert.publicKey, req, await key.issueDelegatedCredential(req, { ...CTX, connectionId: 'dc-embedded' }, AbortSignal.timeout(5000))));
  assert.equal((await auditLine('dc-embedded')).outcome, 'ok');
  await assert.rejects(key.issueDelegatedCredential(dcRequest(cert.der), CTX, AbortSignal.timeout(5000)), /the certificate's public key is not this key/);
});

test('the maximum validity is configurable up to 7 days, no further', () => {
  const dir = root.dir;
  const ok = parseKeydConfig(keydConfigJson(dir, pki, { delegatedCredentials: { maxValiditySeconds: 3600 } }), dir);
  assert.equal(ok.delegatedCredentials.maxValidityMs, 3600_000);
  assert.equal(parseKeydConfig(keydConfigJson(dir, pki), dir).delegatedCredentials.maxValidityMs, 6 * 3600_000);
  assert.throws(() => parseKeydConfig(keydConfigJson(dir, pki, { delegatedCredentials: { maxValiditySeconds: 8 * 86400 } }), dir), (e: unknown) => {
    assert.ok(e instanceof KeydConfigError);
    assert.match(e.message, /delegatedCredentials\.maxValiditySeconds: expected an integer from 60 to 604800/);
    return true;
  });
});
