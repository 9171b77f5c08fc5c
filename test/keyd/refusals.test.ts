/**
 * What keyd refuses and how it says so: a signature scheme that does not fit the key
 * (EC key with an RSA scheme, P-256 with ecdsa_secp384r1_sha384 in TLS 1.3, EC with
 * ed25519) is answered `unsupported`, counted in keyd_sign_input_refused_total, logged
 * and audited; a front without rights to a PSK identity gets the very same answer for an
 * identity that exists and for one that does not, so it cannot probe which exist.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { FrameType, encodePskMasterSecretRequest, encodeSignRequest } from '../../src/keyd/protocol.js';
import { KeyOperationError, type OperationContext, type PskMasterSecretRequest } from '../../src/keys/keyOperations.js';
import { KeydClient, connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { pskMasterSecret } from '../../src/tls/crypto/prf12.js';
import { SignatureScheme, schemeName } from '../../src/tls/crypto/signatureSchemes.js';
import {
  certificateVerifyInput,
  fetchText,
  makeKeydPki,
  metricValue,
  readAudit,
  startTestKeyd,
  tempDir,
  tlsClientOptions,
  type KeydPki,
  type LogCapture,
} from '../support/keydFixture.js';

const CTX13: OperationContext = { tlsVersion: 'TLSv1.3', serverName: 'a.example' };

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let keyd: Keyd;
let logs: LogCapture;
let auditPath: string;
let p256KeyId: string;
const clients: KeydClient[] = [];
const PSK = randomBytes(32);

before(async () => {
  root = await tempDir('keyd-refusals-');
  pki = await makeKeydPki(root.dir, ['front', 'keys-only', 'other-psk', 'admin']);
  ({ keyd, logs } = await startTestKeyd(root.dir, pki, {
    clients: [
      { id: 'cn:front', keys: ['*'], psks: ['*'] },
      { id: 'cn:keys-only', keys: ['*'] },
      { id: 'cn:other-psk', keys: ['*'], psks: ['someone-else'] },
      { id: 'cn:admin', admin: true },
    ],
  }));
  auditPath = join(root.dir, 'audit.log');
  const admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.tlsAddress!));
  try {
    p256KeyId = (await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['a.example'])).keyId;
    await admin.putPsk(Buffer.from('device-7'), PSK);
  } finally {
    admin.close();
  }
});

after(async () => {
  for (const c of clients) c.close();
  await keyd?.close();
  await root?.cleanup();
});

async function client(name: string): Promise<KeydClient> {
  const c = await KeydClient.connect({ ...tlsClientOptions(pki, name, keyd.tlsAddress!), pingIntervalMs: 0 });
  clients.push(c);
  return c;
}

async function refusedInputs(): Promise<number> {
  return metricValue((await fetchText(`http://127.0.0.1:${keyd.metricsAddress!.port}/metrics`)).text, 'keyd_sign_input_refused_total');
}

/** The error a request gets (code and message), or 'ok'. */
async function answer(c: KeydClient, type: FrameType, body: Uint8Array): Promise<string> {
  try {
    await c.request(type, body);
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof KeyOperationError, String(e));
    return `${e.code}: ${e.message.replace(/^keyd: /, '')}`;
  }
}

test('a scheme that does not fit the key is answered unsupported, counted, logged and audited', async () => {
  const front = await client('front');
  const cases: Array<[string, number, number, OperationContext['tlsVersion']]> = [
    ['EC key, RSA scheme', SignatureScheme.rsa_pss_rsae_sha256, 32, 'TLSv1.3'],
    ['P-256 key, ecdsa_secp384r1_sha384 in TLS 1.3', SignatureScheme.ecdsa_secp384r1_sha384, 48, 'TLSv1.3'],
    ['EC key, ed25519', SignatureScheme.ed25519, 32, 'TLSv1.3'],
  ];
  const before = await refusedInputs();
  for (const [i, [what, scheme, hashLength, tlsVersion]] of cases.entries()) {
    const body = encodeSignRequest({ key: { keyId: p256KeyId }, scheme, message: certificateVerifyInput(hashLength as 32 | 48), ctx: { ...CTX13, tlsVersion, connectionId: `mismatch-${i}` } });
    const a = await answer(front, FrameType.SIGN, body);
    assert.match(a, new RegExp(`^unsupported: sign input refused: ${schemeName(scheme)} does not fit key ${p256KeyId} \\(ec-p256\\)$`), what);
  }
  // By server name: the name has a key, but none fits the scheme.
  const byName = encodeSignRequest({ key: { serverName: 'a.example' }, scheme: SignatureScheme.ed25519, message: certificateVerifyInput(), ctx: { ...CTX13, connectionId: 'mismatch-name' } });
  assert.equal(await answer(front, FrameType.SIGN, byName), 'unsupported: sign input refused: no key serving a.example fits ed25519');
  assert.equal((await refusedInputs()) - before, cases.length + 1);

  await keyd.audit.flush();
  const lines = (await readAudit(auditPath)).filter((l) => String(l.connectionId).startsWith('mismatch-'));
  assert.equal(lines.length, cases.length + 1);
  for (const l of lines) {
    assert.equal(l.outcome, 'unsupported');
    assert.equal(l.client, 'cn:front');
    assert.match(String(l.reason), /^sign input refused: /);
  }
  assert.deepEqual(
    lines.map((l) => l.scheme),
    ['rsa_pss_rsae_sha256', 'ecdsa_secp384r1_sha384', 'ed25519', 'ed25519'],
  );
  const warned = logs.lines.filter((l) => l.msg === 'request refused' && /does not fit|fits/.test(String(l.reason)));
  assert.equal(warned.length, cases.length + 1);
  assert.ok(warned.every((l) => l.level === 40 && l.client === 'cn:front'));
});

test('a front without rights to an identity gets the same answer whether it exists or not', async () => {
  const req = (identity: string): PskMasterSecretRequest => ({ identity: Buffer.from(identity), otherSecret: null, hash: 'sha256', extended: true, seed: randomBytes(32) });
  const body = (identity: string): Uint8Array => encodePskMasterSecretRequest({ req: req(identity), ctx: { tlsVersion: 'TLSv1.2' } });
  for (const name of ['keys-only', 'other-psk']) {
    const c = await client(name);
    const existing = await answer(c, FrameType.PSK_MASTER_SECRET, body('device-7'));
    const unknown = await answer(c, FrameType.PSK_MASTER_SECRET, body('device-8'));
    assert.equal(existing, 'refused: not permitted to use this PSK identity', name);
    assert.equal(unknown, existing, `${name}: same answer for an unknown identity`);
  }
  await keyd.audit.flush();
  const lines = (await readAudit(auditPath)).filter((l) => l.op === 'psk-master-secret' && (l.client === 'cn:keys-only' || l.client === 'cn:other-psk'));
  assert.equal(lines.length, 4);
  assert.ok(lines.every((l) => l.outcome === 'refused' && l.reason === 'not permitted to use this PSK identity'));

  // A front with the rights: the real secret for an existing identity, and for an unknown
  // one an answer of the same length derived from a random PSK (different every time).
  const front = await client('front');
  const r = req('device-7');
  const ms = await front.request(FrameType.PSK_MASTER_SECRET, encodePskMasterSecretRequest({ req: r, ctx: { tlsVersion: 'TLSv1.2' } }));
  assert.deepEqual(Buffer.from(ms).subarray(-48), pskMasterSecret(PSK, r));
  const u = req('device-8');
  const u1 = await front.request(FrameType.PSK_MASTER_SECRET, encodePskMasterSecretRequest({ req: u, ctx: { tlsVersion: 'TLSv1.2' } }));
  const u2 = await front.request(FrameType.PSK_MASTER_SECRET, encodePskMasterSecretRequest({ req: u, ctx: { tlsVersion: 'TLSv1.2' } }));
  assert.equal(u1.length, ms.length);
  assert.notDeepEqual(Buffer.from(u1), Buffer.from(u2));
});
