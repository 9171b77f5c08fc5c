/**
 * keyd end to end, in this process: real mutual TLS and a real Unix socket, the remoteKey
 * client, the admin API, authorization, rate limits, cancel, deadlines, metrics, failover.
 */
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyOperationError, type KeyOperations, type OperationContext } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { KeydClient, connectKeydAdmin, connectRemoteKey, type KeydAdmin, type RemoteKey } from '../../src/keys/remoteKey.js';
import { FrameDecoder, FrameType, decodeError, encodeFrame, encodeSignRequest, type Frame } from '../../src/keyd/protocol.js';
import { pskMasterSecret } from '../../src/tls/crypto/prf12.js';
import type { Keyd } from '../../src/keyd/server.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
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

const CTX: OperationContext = { tlsVersion: 'TLSv1.3', serverName: 'a.example', peerAddress: '198.51.100.7:50000', connectionId: 'test-1' };

/** A key holder that takes `delayMs` per signature and, like a PKCS#11 C_Sign, cannot be stopped once started. */
class SlowKey implements KeyOperations {
  readonly publicKey: KeyObject;
  readonly schemes: readonly SignatureScheme[];
  readonly keyId: string;
  started = 0;
  readonly #inner: LocalKey;

  constructor(private readonly delayMs: number) {
    this.#inner = new LocalKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    this.publicKey = this.#inner.publicKey;
    this.schemes = this.#inner.schemes;
    this.keyId = this.#inner.keyId;
  }

  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext): Promise<Uint8Array> {
    this.started += 1;
    await sleep(this.delayMs);
    return this.#inner.sign(scheme, message, ctx, new AbortController().signal);
  }
}

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let keyd: Keyd;
let logs: LogCapture;
let auditPath: string;
let admin: KeydAdmin;
const slow = new SlowKey(300);
const keys: Record<string, { keyId: string; scheme: SignatureScheme; privateKey: KeyObject }> = {};

const code = (c: string) => (e: unknown) => e instanceof KeyOperationError && e.code === c;

before(async () => {
  root = await tempDir('keyd-e2e-');
  pki = await makeKeydPki(root.dir, ['front', 'admin', 'stranger', 'narrow', 'limited']);
  const started = await startTestKeyd(
    root.dir,
    pki,
    {
      clients: [
        { id: 'cn:front', keys: ['*'], psks: ['*'] },
        { id: 'cn:admin', admin: true },
        { id: 'unix', keys: ['*'], psks: ['*'], admin: true },
        { id: 'cn:narrow', keys: ['a.example'] },
        { id: 'cn:limited', keys: ['*'], rateLimit: { perSecond: 2, burst: 5 } },
      ],
      limits: { maxConcurrentOps: 4 },
    },
    { keys: [{ ops: slow, serverNames: ['slow.example'] }] },
  );
  keyd = started.keyd;
  logs = started.logs;
  auditPath = started.config.audit.file;
  admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.tlsAddress!));
  const specs: Array<[string, KeyObject, SignatureScheme, string[]]> = [
    ['p256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, SignatureScheme.ecdsa_secp256r1_sha256, ['a.example']],
    ['p384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, SignatureScheme.ecdsa_secp384r1_sha384, ['b.example']],
    ['rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, SignatureScheme.rsa_pss_rsae_sha256, ['b.example']],
    ['ed25519', generateKeyPairSync('ed25519').privateKey, SignatureScheme.ed25519, ['c.example']],
  ];
  for (const [name, privateKey, scheme, names] of specs) {
    const info = await admin.putKey(privateKey, names);
    keys[name] = { keyId: info.keyId, scheme, privateKey };
  }
});

after(async () => {
  admin?.close();
  await keyd?.close();
  await root?.cleanup();
});

test('sign round trips over mutual TLS: P-256, P-384, RSA-2048 PSS, Ed25519', async () => {
  for (const [name, k] of Object.entries(keys)) {
    const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: k.keyId });
    try {
      assert.equal(rk.keyId, k.keyId, name);
      assert.ok(rk.schemes.includes(k.scheme), name);
      const msg = certificateVerifyInput(name === 'p384' ? 48 : 32);
      const sig = await rk.sign(k.scheme, msg, CTX, new AbortController().signal);
      assert.ok(verifySignature(rk.publicKey, k.scheme, msg, sig), `${name} signature verifies`);
    } finally {
      await rk.close();
    }
  }
});

test('sign round trips over the Unix socket, choosing the key by server name', async () => {
  const rk = await connectRemoteKey({ addresses: [`unix:${keyd.unixPath}`], serverName: 'b.example', keyType: 'rsa' });
  try {
    assert.equal(rk.keyId, keys.rsa.keyId);
    const msg = certificateVerifyInput();
    const sig = await rk.sign(SignatureScheme.rsa_pss_rsae_sha384, msg, CTX, new AbortController().signal);
    assert.ok(verifySignature(rk.publicKey, SignatureScheme.rsa_pss_rsae_sha384, msg, sig));
  } finally {
    await rk.close();
  }
  // Without keyType the newest key serving the name wins.
  const newest = await connectRemoteKey({ addresses: [`unix:${keyd.unixPath}`], serverName: 'b.example' });
  assert.equal(newest.keyId, keys.rsa.keyId);
  await newest.close();
});

test('1000 concurrent signs pipelined on one connection', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keys.p256.keyId, poolSize: 1, deadlineMs: 20_000 });
  try {
    const before = keyd.connections;
    const msgs = Array.from({ length: 1000 }, () => certificateVerifyInput());
    const t0 = performance.now();
    const sigs = await Promise.all(msgs.map((m) => rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, m, CTX, new AbortController().signal)));
    const ms = performance.now() - t0;
    assert.equal(sigs.length, 1000);
    sigs.forEach((s, i) => assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, msgs[i], s)));
    assert.equal(keyd.connections, before, 'one connection carried them all');
    assert.ok(ms < 15_000, `took ${ms} ms`);
  } finally {
    await rk.close();
  }
});

test('cancel: queued work is dropped before it starts, running work is discarded', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: slow.keyId, poolSize: 1, deadlineMs: 10_000 });
  try {
    const startedBefore = slow.started;
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const ops = controllers.map((c) => rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), CTX, c.signal).then(
      () => 'ok',
      (e: KeyOperationError) => e.code,
    ));
    // Let the SIGN frames reach keyd: 4 start (maxConcurrentOps), 16 wait in the queue.
    await sleep(100);
    const t0 = performance.now();
    for (const c of controllers.slice(2)) c.abort();
    const results = await Promise.all(ops);
    assert.deepEqual(results.slice(0, 2), ['ok', 'ok']);
    assert.ok(results.slice(2).every((r) => r === 'aborted'));
    assert.ok(performance.now() - t0 < 350, 'aborted operations fail at once');
    await sleep(400);
    assert.equal(slow.started - startedBefore, 4, 'only the 4 running signs ever started');
    const audit = (await readAudit(auditPath)).filter((l) => l.keyId === slow.keyId && l.outcome === 'cancelled');
    assert.equal(audit.length, 18);
  } finally {
    await rk.close();
  }
});

test('a connection that closes with work in flight: the work is audited as cancelled, no result is sent', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: slow.keyId, poolSize: 1, deadlineMs: 10_000 });
  const op = rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), { ...CTX, connectionId: 'closed-1' }, new AbortController().signal);
  const settled = op.then(
    () => 'ok',
    (e: KeyOperationError) => e.code,
  );
  await sleep(100);
  await rk.close();
  assert.equal(await settled, 'unavailable');
  // The slow sign (300 ms) runs to its end in keyd; its line says nobody got the result.
  await sleep(400);
  const line = (await readAudit(auditPath)).find((l) => l.connectionId === 'closed-1');
  assert.equal(line?.outcome, 'cancelled');
});

test('deadline: a slow key holder times out at the deadline, and keyd is told to cancel', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: slow.keyId, deadlineMs: 100 });
  try {
    const t0 = performance.now();
    await assert.rejects(rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), { ...CTX, connectionId: 'deadline-1' }, new AbortController().signal), code('timeout'));
    const ms = performance.now() - t0;
    assert.ok(ms >= 95 && ms < 250, `timed out after ${ms} ms`);
    await sleep(400);
    const line = (await readAudit(auditPath)).find((l) => l.connectionId === 'deadline-1');
    assert.equal(line?.outcome, 'cancelled');
  } finally {
    await rk.close();
  }
});

test('deadline: a shorter deadline after a longer one on the same connection still fires on time', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: slow.keyId, poolSize: 1, deadlineMs: 5_000 });
  try {
    const longInput = certificateVerifyInput();
    const long = rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, longInput, CTX, new AbortController().signal);
    const t0 = performance.now();
    const body = encodeSignRequest({ key: { keyId: slow.keyId }, scheme: SignatureScheme.ecdsa_secp256r1_sha256, message: certificateVerifyInput(), ctx: CTX });
    await assert.rejects(rk.client.request(FrameType.SIGN, body, { deadlineMs: 100 }), code('timeout'));
    const ms = performance.now() - t0;
    assert.ok(ms >= 95 && ms < 250, `the short one timed out after ${ms} ms`);
    // The longer one was not swept with it: it completes.
    assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, longInput, await long));
    // A deadline no timer can hold is refused up front, not turned into 1 ms or never.
    for (const deadlineMs of [0, Number.NaN, 2 ** 31]) {
      await assert.rejects(rk.client.request(FrameType.SIGN, body, { deadlineMs }), RangeError);
    }
  } finally {
    await rk.close();
  }
});

test('anything but a TLS handshake signature input is refused, logged, audited and counted', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keys.p256.keyId });
  try {
    const m = await fetchText(`http://127.0.0.1:${keyd.metricsAddress!.port}/metrics`);
    const before = metricValue(m.text, 'keyd_sign_input_refused_total');
    const jwtLike = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9');
    await assert.rejects(rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, jwtLike, { ...CTX, connectionId: 'oracle-1' }, new AbortController().signal), (e: unknown) => {
      assert.ok(e instanceof KeyOperationError);
      assert.equal(e.code, 'refused');
      assert.match(e.message, /not a TLS handshake signature input/);
      return true;
    });
    // The claimed purpose must match the shape.
    await assert.rejects(
      rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), { ...CTX, purpose: 'tls12-server-key-exchange' }, new AbortController().signal),
      code('refused'),
    );
    const after = metricValue((await fetchText(`http://127.0.0.1:${keyd.metricsAddress!.port}/metrics`)).text, 'keyd_sign_input_refused_total');
    assert.equal(after - before, 2);
    const line = (await readAudit(auditPath)).find((l) => l.connectionId === 'oracle-1');
    assert.equal(line?.outcome, 'refused');
    assert.equal(line?.keyId, keys.p256.keyId);
    assert.equal(line?.client, 'cn:front');
    assert.match(String(line?.reason), /not a TLS handshake signature input/);
    assert.ok(logs.lines.some((l) => l.msg === 'request refused' && l.client === 'cn:front' && /not a TLS handshake/.test(String(l.reason))));
  } finally {
    await rk.close();
  }
});

test('a front without permission is refused and audited', async () => {
  // Known to the CA, unknown to keyd's rules.
  await assert.rejects(connectRemoteKey({ ...tlsClientOptions(pki, 'stranger', keyd.tlsAddress!), keyId: keys.p256.keyId }), (e: unknown) => {
    assert.ok(e instanceof KeyOperationError);
    assert.equal(e.code, 'refused');
    assert.match(e.message, /cn:stranger is not authorized/);
    return true;
  });
  // Allowed a.example only.
  const ok = await connectRemoteKey({ ...tlsClientOptions(pki, 'narrow', keyd.tlsAddress!), serverName: 'a.example' });
  const msg = certificateVerifyInput();
  assert.ok(verifySignature(ok.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, msg, await ok.sign(SignatureScheme.ecdsa_secp256r1_sha256, msg, CTX, new AbortController().signal)));
  await ok.close();
  await assert.rejects(connectRemoteKey({ ...tlsClientOptions(pki, 'narrow', keyd.tlsAddress!), keyId: keys.rsa.keyId }), code('refused'));
  // A front's SIGN for a key it may not use, sent directly.
  const client = await KeydClient.connect(tlsClientOptions(pki, 'narrow', keyd.tlsAddress!));
  const body = encodeSignRequest({ key: { keyId: keys.ed25519.keyId }, scheme: SignatureScheme.ed25519, message: certificateVerifyInput(), ctx: { ...CTX, connectionId: 'narrow-1' } });
  await assert.rejects(client.request(FrameType.SIGN, body), code('refused'));
  // Fronts are not admins.
  await assert.rejects(client.request(FrameType.LIST_KEYS, new Uint8Array(0)), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused' && /not an admin/.test(e.message));
  client.close();
  const audit = await readAudit(auditPath);
  assert.ok(audit.some((l) => l.client === 'cn:stranger' && l.op === 'get-key' && l.outcome === 'refused'));
  const line = audit.find((l) => l.connectionId === 'narrow-1');
  assert.deepEqual([line?.client, line?.outcome, line?.keyId], ['cn:narrow', 'refused', keys.ed25519.keyId]);
  assert.ok(audit.some((l) => l.client === 'cn:narrow' && l.op === 'list-keys' && l.outcome === 'refused'));
});

test('a certificate from another CA cannot even connect', async () => {
  const { dir, cleanup } = await tempDir('keyd-otherca-');
  try {
    const other = await makeKeydPki(dir, ['front']);
    await assert.rejects(KeydClient.connect({ ...tlsClientOptions(other, 'front', keyd.tlsAddress!), ca: pki.caPem, connectTimeoutMs: 3000 }), code('unavailable'));
  } finally {
    await cleanup();
  }
});

test('rate limit: a burst beyond the bucket is refused with rate-limited', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'limited', keyd.tlsAddress!), keyId: keys.p256.keyId });
  try {
    const results = await Promise.all(
      Array.from({ length: 12 }, () => rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), CTX, new AbortController().signal).then(
        () => 'ok',
        (e: KeyOperationError) => e.code,
      )),
    );
    const ok = results.filter((r) => r === 'ok').length;
    assert.ok(ok >= 5 && ok <= 6, `ok ${ok}`);
    assert.equal(results.filter((r) => r === 'rate-limited').length, 12 - ok);
    assert.ok((await readAudit(auditPath)).some((l) => l.client === 'cn:limited' && l.outcome === 'rate-limited'));
  } finally {
    await rk.close();
  }
});

test('generate: the key is made inside keyd, listed, usable, and there is no way to export it', async () => {
  const info = await admin.generateKey('ec-p384', ['gen.example']);
  const list = await admin.listKeys();
  const listed = list.keys.find((k) => k.keyId === info.keyId);
  assert.equal(listed?.origin, 'generated');
  assert.equal(listed?.source, 'store');
  assert.deepEqual(listed?.serverNames, ['gen.example']);
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), serverName: 'gen.example' });
  const msg = certificateVerifyInput(48);
  assert.ok(verifySignature(rk.publicKey, SignatureScheme.ecdsa_secp384r1_sha384, msg, await rk.sign(SignatureScheme.ecdsa_secp384r1_sha384, msg, CTX, new AbortController().signal)));
  await rk.close();
  // The protocol has no export operation, and no frame type carries a private key or a PSK
  // out (ISSUE_DELEGATED_CREDENTIAL returns a signature over a credential keyd checked;
  // TLS13_PSK_* return binders and transcript-bound secrets only; the only secrets that leave
  // are the fleet's ticket keys, GET_TICKET_KEYS, to fronts granted them).
  assert.deepEqual(
    Object.keys(FrameType).filter((k) => isNaN(Number(k))),
    [
      'PING',
      'PONG',
      'CANCEL',
      'RESULT',
      'ERROR',
      'GET_KEY',
      'SIGN',
      'DECRYPT_PREMASTER',
      'PSK_MASTER_SECRET',
      'ISSUE_DELEGATED_CREDENTIAL',
      'GET_TICKET_KEYS',
      'TLS13_PSK_BINDER',
      'TLS13_PSK_VERIFY_BINDER',
      'TLS13_PSK_HANDSHAKE_SECRETS',
      'TLS13_PSK_APPLICATION_SECRETS',
      'TLS13_PSK_RESUMPTION_SECRET',
      'PUT_KEY',
      'LIST_KEYS',
      'DELETE_KEY',
      'GENERATE_KEY',
      'PUT_PSK',
      'DELETE_PSK',
    ],
  );
  // Deleting works and is audited.
  await admin.deleteKey(info.keyId);
  assert.ok(!(await admin.listKeys()).keys.some((k) => k.keyId === info.keyId));
  assert.ok((await readAudit(auditPath)).some((l) => l.op === 'generate-key' && l.keyId === info.keyId && l.client === 'cn:admin'));
  // Embedded (and PKCS#11) keys cannot be deleted through the admin API.
  await assert.rejects(admin.deleteKey(slow.keyId), code('refused'));
});

test('PSK master secrets are computed in keyd; unknown identities get a random secret', async () => {
  const psk = randomBytes(32);
  await admin.putPsk(Buffer.from('psk-client'), psk);
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keys.p256.keyId });
  try {
    const req = { identity: Buffer.from('psk-client'), otherSecret: randomBytes(32), hash: 'sha256' as const, extended: false, seed: randomBytes(64) };
    const ms = await rk.tls12MasterSecret(req, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    assert.deepEqual(Buffer.from(ms), pskMasterSecret(psk, req));
    const unknown = { ...req, identity: Buffer.from('nobody') };
    const u1 = await rk.tls12MasterSecret(unknown, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    const u2 = await rk.tls12MasterSecret(unknown, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    assert.equal(u1.length, 48);
    assert.notDeepEqual(Buffer.from(u1), Buffer.from(u2));
    assert.ok((await admin.listKeys()).psks.some((p) => Buffer.from(p.identity).toString() === 'psk-client'));
    await admin.deletePsk(Buffer.from('psk-client'));
    const gone = await rk.tls12MasterSecret(req, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    assert.notDeepEqual(Buffer.from(gone), Buffer.from(ms));
  } finally {
    await rk.close();
  }
});

test('TLS 1.2 RSA premaster decryption happens in keyd, for TLS 1.2 only', async () => {
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keys.rsa.keyId });
  try {
    const premaster = Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
    const ct = publicEncrypt({ key: rk.publicKey, padding: constants.RSA_PKCS1_PADDING }, premaster);
    assert.ok(rk.decryptPremaster);
    const out = await rk.decryptPremaster(ct, 0x0303, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    assert.deepEqual(Buffer.from(out), premaster);
    const bad = await rk.decryptPremaster(randomBytes(256), 0x0303, { tlsVersion: 'TLSv1.2' }, new AbortController().signal);
    assert.equal(bad.length, 48);
    await assert.rejects(rk.decryptPremaster(ct, 0x0303, { tlsVersion: 'TLSv1.3' }, new AbortController().signal), code('refused'));
  } finally {
    await rk.close();
  }
  const ec = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), keyId: keys.p256.keyId });
  assert.equal(ec.decryptPremaster, undefined);
  await ec.close();
});

/** A raw mTLS connection for sending hand-made frames. */
async function rawConnection(): Promise<{ socket: TLSSocket; next: () => Promise<Frame>; closed: Promise<void> }> {
  const c = pki.clients.front;
  const socket = tlsConnect({ host: '127.0.0.1', port: keyd.tlsAddress!.port, ca: pki.caPem, cert: c.certPem, key: c.keyPem, minVersion: 'TLSv1.3' });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const queue: Frame[] = [];
  const waiters: Array<(f: Frame) => void> = [];
  socket.on('data', (d: Buffer) => {
    for (const f of decoder.push(d)) {
      const w = waiters.shift();
      if (w) w(f);
      else queue.push(f);
    }
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const next = (): Promise<Frame> =>
    new Promise<Frame>((resolve, reject) => {
      const f = queue.shift();
      if (f) return resolve(f);
      const t = setTimeout(() => reject(new Error('no frame within 3 s')), 3_000);
      waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  return { socket, next, closed };
}

test('unknown versions, unknown types and bad bodies get typed errors; a bad length closes the connection', async () => {
  const { socket, next, closed } = await rawConnection();
  try {
    socket.write(encodeFrame(FrameType.SIGN, 5, new Uint8Array(0), 2));
    let f = await next();
    assert.deepEqual([f.type, f.id], [FrameType.ERROR, 5]);
    assert.deepEqual(decodeError(f.body), { code: 'unsupported', message: 'protocol version 2 is not supported (this keyd speaks 1)', supportedVersions: [1] });
    socket.write(encodeFrame(0x7e, 6));
    f = await next();
    assert.equal(decodeError(f.body).code, 'unsupported');
    assert.match(decodeError(f.body).message, /unknown frame type 0x7e/);
    socket.write(encodeFrame(FrameType.SIGN, 7, Buffer.from([1, 0, 0])));
    f = await next();
    assert.deepEqual([f.id, decodeError(f.body).code], [7, 'bad-request']);
    socket.write(encodeFrame(FrameType.PING, 8, Buffer.from('hello')));
    f = await next();
    assert.deepEqual([f.type, f.id, Buffer.from(f.body).toString()], [FrameType.PONG, 8, 'hello']);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(50 << 20);
    socket.write(huge);
    f = await next();
    assert.deepEqual([f.type, f.id, decodeError(f.body).code], [FrameType.ERROR, 0, 'bad-request']);
    await closed;
  } finally {
    socket.destroy();
  }
});

test('metrics: operations by key/op/outcome, latency histogram, in-flight gauge, health', async () => {
  const base = `http://127.0.0.1:${keyd.metricsAddress!.port}`;
  const { status, text } = await fetchText(`${base}/metrics`);
  assert.equal(status, 200);
  assert.ok(metricValue(text, 'keyd_operations_total', { op: 'sign', outcome: 'ok', key: keys.p256.keyId.slice(0, 16) }) >= 1000);
  assert.ok(metricValue(text, 'keyd_operations_total', { op: 'sign', outcome: 'refused' }) >= 2);
  assert.ok(metricValue(text, 'keyd_operations_total', { op: 'sign', outcome: 'cancelled' }) >= 17);
  assert.ok(metricValue(text, 'keyd_operation_duration_seconds_count', { op: 'sign' }) >= 1000);
  assert.match(text, /^keyd_operations_in_flight 0$/m);
  assert.match(text, /^keyd_connections\{transport="tls",state="established"\} [1-9]\d*$/m);
  assert.match(text, /^keyd_connections\{transport="tls",state="handshake"\} \d+$/m);
  assert.ok(metricValue(text, 'keyd_audit_lines_total') > 1000);
  assert.deepEqual(await fetchText(`${base}/healthz`), { status: 200, text: 'ok\n' });
  assert.equal((await fetchText(`${base}/nope`)).status, 404);
});

test('health(): pings every pooled connection', async () => {
  const client = await KeydClient.connect({ ...tlsClientOptions(pki, 'front', keyd.tlsAddress!), poolSize: 2 });
  try {
    await sleep(50);
    const h = await client.health();
    assert.equal(h.healthy, true);
    assert.equal(h.connections.length, 2);
    assert.ok(h.connections.every((c) => c.state === 'connected' && typeof c.rttMs === 'number'));
  } finally {
    client.close();
  }
});

test('failover to a second keyd address, and graceful shutdown finishes in-flight work', async () => {
  const dirB = await tempDir('keyd-b-');
  const slowB = new SlowKey(200);
  const b = await startTestKeyd(dirB.dir, pki, {}, { keys: [{ ops: slowB, serverNames: ['slow.example'] }] });
  const adminB = await connectKeydAdmin({ addresses: [`unix:${b.keyd.unixPath}`] });
  await adminB.putKey(keys.p256.privateKey, ['a.example']);
  adminB.close();
  // A keyd of its own as the first address, so that stopping it does not end the suite's keyd.
  const dirA = await tempDir('keyd-a-');
  const slowA = new SlowKey(200);
  const a = await startTestKeyd(dirA.dir, pki, {}, { keys: [{ ops: slowA, serverNames: ['slow.example'] }] });
  const adminA = await connectKeydAdmin({ addresses: [`unix:${a.keyd.unixPath}`] });
  await adminA.putKey(keys.p256.privateKey, ['a.example']);
  adminA.close();
  try {
    const opts = tlsClientOptions(pki, 'front', a.keyd.tlsAddress!);
    opts.addresses.push(`tls://127.0.0.1:${b.keyd.tlsAddress!.port}`);
    const client = await KeydClient.connect({ ...opts, backoff: { initialMs: 50, maxMs: 500 } });
    const rk = await client.key({ keyId: keys.p256.keyId });
    const rkSlow = await client.key({ keyId: slowA.keyId });
    const sign = (k: RemoteKey) => k.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), CTX, new AbortController().signal);
    await sign(rk);
    assert.equal(b.keyd.connections, 0, 'the first address is preferred');
    // In-flight work on A completes although A is shutting down.
    const inflight = [sign(rkSlow), sign(rkSlow)];
    await sleep(50);
    const closing = a.keyd.close();
    const done = await Promise.allSettled(inflight);
    assert.deepEqual(done.map((d) => d.status), ['fulfilled', 'fulfilled']);
    await closing;
    // Then the pool moves to B.
    const t0 = performance.now();
    let ok = false;
    while (!ok && performance.now() - t0 < 5_000) {
      ok = await sign(rk).then(
        () => true,
        async (e: KeyOperationError) => {
          assert.ok(['unavailable', 'timeout'].includes(e.code), e.message);
          await sleep(50);
          return false;
        },
      );
    }
    assert.ok(ok, 'signing works again through the second address');
    assert.ok(performance.now() - t0 < 3_000);
    await Promise.all(Array.from({ length: 20 }, () => sign(rk)));
    assert.ok(b.keyd.connections >= 1);
    client.close();
  } finally {
    await a.keyd.close();
    await b.keyd.close();
    await dirA.cleanup();
    await dirB.cleanup();
  }
});
