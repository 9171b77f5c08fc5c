/**
 * TLS 1.3 external PSKs in every holder (in process, the key process, keyd): the schedule
 * against RFC 8448 section 4 (its binder, computed from the resumption PSK as a local PSK)
 * and against the engine's own key schedule; binders made and verified; psk_ke and
 * psk_dhe_ke secrets equal to the reference; an unknown identity answered like a wrong
 * binder; a front without rights refused the same whether the identity exists; a PSK's
 * hash enforced; keyd's audit line per operation; PSK bytes in no log, error or metric.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KeyOperationError, UnknownPskIdentityError, type OperationContext, type Tls13PskOperations } from '../../src/keys/keyOperations.js';
import { KeyProcessPsk, startKeyProcess, startPskProcess } from '../../src/keys/keyProcess.js';
import { decodeTls13Psk, encodeTls13Psk, FRAME_HEADER } from '../../src/keys/keyProcessProtocol.js';
import { localPsk, type LocalPskValue } from '../../src/keys/localPsk.js';
import { parsePskEntries } from '../../src/keys/pskFile.js';
import { KeydClient, connectKeydAdmin, type RemotePsk } from '../../src/keys/remoteKey.js';
import { tls13PskBinder } from '../../src/keys/tls13PskSchedule.js';
import { KeySchedule13, tls13BinderKey, tls13EarlySecret, tls13FinishedVerifyData } from '../../src/tls/crypto/keySchedule13.js';
import { getPki } from '../support/pki.js';
import { fetchText, makeKeydPki, metricValue, readAudit, startTestKeyd, tempDir, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';

// RFC 8448 section 4 (Resumed 0-RTT Handshake): the resumption PSK the client derives from
// section 3's ticket, the ClientHello truncated before its binders (477 octets), and the
// binder the trace shows (computed with "res binder").
const RFC8448_PSK = Buffer.from('4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3', 'hex');
const RFC8448_PREFIX = Buffer.from(
  '010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d95000006130113031302010001cd0000000b0009000006736572766572ff01000100000a0014' +
    '0012001d00170018001901000101010201030104003300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a0000002b0003020304000d' +
    '0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c000240010015005700000000000000000000000000000000000000000000000000' +
    '0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002900dd00b800b22c035d8293' +
    '59ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db' +
    '279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac5c03272e970727c621a7' +
    '9141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb',
  'hex',
);
const RFC8448_BINDER_HASH = '63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14';
const RFC8448_BINDER = '3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d';

const CTX: OperationContext = { tlsVersion: 'TLSv1.3', serverName: 'psk.example', peerAddress: '192.0.2.7:443', connectionId: 'c-1' };
const PSK256 = randomBytes(32);
const PSK384 = randomBytes(48);
const ID256 = 'client-7';
const ID384 = 'client-384';
const sig = (): AbortSignal => new AbortController().signal;
const h = (hash: 'sha256' | 'sha384', data = randomBytes(16)): Buffer => createHash(hash).update(data).digest();

/** The engine's schedule (an independent implementation) for a PSK, external binder. */
function reference(hash: 'sha256' | 'sha384', psk: Buffer, dhe: Buffer | null, hashes: { hello: Buffer; handshake: Buffer; finished: Buffer; truncated: Buffer }) {
  const ks = new KeySchedule13(hash, psk);
  const binder = tls13FinishedVerifyData(hash, tls13BinderKey(hash, tls13EarlySecret(hash, psk), true), hashes.truncated);
  const hs = ks.handshakeSecrets(dhe, hashes.hello);
  const app = ks.applicationSecrets(hashes.handshake);
  const rms = ks.resumptionMasterSecret(hashes.finished);
  ks.wipe();
  return { binder, hs, app, rms };
}

function secretHex(...bufs: Uint8Array[]): string[] {
  return bufs.flatMap((b) => [Buffer.from(b).toString('hex'), Buffer.from(b).toString('base64')]);
}

/** `holder` with every rejection's message recorded in `errors`. */
function recordingErrors(holder: Tls13PskOperations, errors: string[]): Tls13PskOperations {
  return new Proxy(holder, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) =>
        (v as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((e: Error) => {
          errors.push(e.message);
          throw e;
        });
    },
  });
}

/** What every holder must do, the same way; returns the messages of the errors it met (to check they hold no PSK). */
async function checkHolder(plain: Tls13PskOperations): Promise<string[]> {
  const errors: string[] = [];
  const holder = recordingErrors(plain, errors);
  for (const [identity, psk, hash] of [
    [ID256, PSK256, 'sha256'],
    [ID384, PSK384, 'sha384'],
  ] as const) {
    const id = Buffer.from(identity);
    for (const dhe of [randomBytes(32), null]) {
      const hashes = { hello: h(hash), handshake: h(hash), finished: h(hash), truncated: h(hash) };
      const ref = reference(hash, psk, dhe, hashes);
      const binder = await holder.tls13Binder({ identity: id, hash, transcriptHash: hashes.truncated }, CTX, sig());
      assert.deepEqual(Buffer.from(binder), ref.binder, `${identity}: the binder is the external-PSK binder of RFC 8446 4.2.11.2`);
      assert.equal(await holder.tls13VerifyBinder({ identity: id, hash, transcriptHash: hashes.truncated, binder }, CTX, sig()), true);
      const wrong = Buffer.from(binder);
      wrong[wrong.length - 1] ^= 1;
      assert.equal(await holder.tls13VerifyBinder({ identity: id, hash, transcriptHash: hashes.truncated, binder: wrong }, CTX, sig()), false, 'a flipped bit');
      assert.equal(await holder.tls13VerifyBinder({ identity: id, hash, transcriptHash: hashes.truncated, binder: binder.subarray(0, 31) }, CTX, sig()), false, 'a short binder');
      assert.equal(await holder.tls13VerifyBinder({ identity: id, hash, transcriptHash: h(hash), binder }, CTX, sig()), false, 'another transcript');
      // An identity nobody has: the same answer as a wrong binder.
      assert.equal(await holder.tls13VerifyBinder({ identity: Buffer.from('nobody'), hash, transcriptHash: hashes.truncated, binder }, CTX, sig()), false);
      // Identities match byte for byte.
      assert.equal(await holder.tls13VerifyBinder({ identity: Buffer.from(identity.toUpperCase()), hash, transcriptHash: hashes.truncated, binder }, CTX, sig()), false);

      const hs = await holder.tls13HandshakeSecrets({ identity: id, hash, dheSecret: dhe, transcriptHash: hashes.hello }, CTX, sig());
      assert.deepEqual([Buffer.from(hs.client), Buffer.from(hs.server)], [ref.hs.client, ref.hs.server], `handshake secrets, ${dhe ? 'psk_dhe_ke' : 'psk_ke'}`);
      const app = await holder.tls13ApplicationSecrets({ identity: id, hash, dheSecret: dhe, transcriptHash: hashes.handshake }, CTX, sig());
      assert.deepEqual([Buffer.from(app.client), Buffer.from(app.server), Buffer.from(app.exporter)], [ref.app.client, ref.app.server, ref.app.exporter]);
      const rms = await holder.tls13ResumptionMasterSecret!({ identity: id, hash, dheSecret: dhe, transcriptHash: hashes.finished }, CTX, sig());
      assert.deepEqual(Buffer.from(rms), ref.rms);
    }
  }
  // psk_ke and psk_dhe_ke give different secrets (the (EC)DHE goes in).
  const th = h('sha256');
  const a = await holder.tls13HandshakeSecrets({ identity: Buffer.from(ID256), hash: 'sha256', dheSecret: null, transcriptHash: th }, CTX, sig());
  const b = await holder.tls13HandshakeSecrets({ identity: Buffer.from(ID256), hash: 'sha256', dheSecret: randomBytes(32), transcriptHash: th }, CTX, sig());
  assert.notDeepEqual(Buffer.from(a.client), Buffer.from(b.client));

  // A PSK is used with its own hash only: its binder cannot be had for another, and a
  // binder check with another answers false (like an unknown identity).
  const t384 = h('sha384');
  await assert.rejects(holder.tls13Binder({ identity: Buffer.from(ID256), hash: 'sha384', transcriptHash: t384 }, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request' && /sha256, not sha384/.test(e.message));
  assert.equal(await holder.tls13VerifyBinder({ identity: Buffer.from(ID256), hash: 'sha384', transcriptHash: t384, binder: randomBytes(48) }, CTX, sig()), false);
  // Malformed requests are bad-request, naming what is wrong, never a secret.
  await assert.rejects(holder.tls13Binder({ identity: Buffer.from(ID256), hash: 'sha256', transcriptHash: randomBytes(31) }, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request' && /transcript hash must be 32 bytes/.test(e.message));
  await assert.rejects(holder.tls13HandshakeSecrets({ identity: Buffer.from(ID256), hash: 'sha256', dheSecret: Buffer.alloc(0), transcriptHash: th }, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request');
  await assert.rejects(holder.tls13Binder({ identity: Buffer.alloc(0), hash: 'sha256', transcriptHash: th }, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request');
  // An aborted signal rejects at once.
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(holder.tls13Binder({ identity: Buffer.from(ID256), hash: 'sha256', transcriptHash: th }, CTX, ac.signal), (e: unknown) => e instanceof KeyOperationError && e.code === 'aborted');
  assert.ok(errors.length >= 5);
  assertNoPsk(errors.join('\n'), 'an error message');
  return errors;
}

/** No form of a PSK in `text`. */
function assertNoPsk(text: string, what: string): void {
  for (const s of secretHex(PSK256, PSK384)) assert.ok(!text.includes(s), `${what} holds a PSK`);
}

describe('the TLS 1.3 PSK schedule', () => {
  test('RFC 8448 section 4: the binder of the resumption PSK over its ClientHello prefix, byte for byte', () => {
    assert.equal(RFC8448_PREFIX.length, 477);
    const prefixHash = createHash('sha256').update(RFC8448_PREFIX).digest();
    assert.equal(prefixHash.toString('hex'), RFC8448_BINDER_HASH);
    // RFC 8448's PSK is a resumption PSK ("res binder"): the engine's schedule makes that binder.
    assert.equal(new KeySchedule13('sha256', RFC8448_PSK).binder(prefixHash).toString('hex'), RFC8448_BINDER);
    // As an external PSK the same bytes give another binder ("ext binder"), the engine's too.
    const external = tls13PskBinder('sha256', RFC8448_PSK, prefixHash);
    assert.notEqual(external.toString('hex'), RFC8448_BINDER);
    assert.deepEqual(external, tls13FinishedVerifyData('sha256', tls13BinderKey('sha256', tls13EarlySecret('sha256', RFC8448_PSK), true), prefixHash));
  });

  test('the local holder', async () => {
    const holder = localPsk(
      new Map<string, LocalPskValue>([
        [ID256, PSK256],
        [ID384, { secret: PSK384, hash: 'sha384' }],
      ]),
    );
    await checkHolder(holder);
    // "reject": a step for an unknown identity says so; a binder check still only answers false.
    const strict = localPsk(new Map([[ID256, PSK256]]), { unknownIdentity: 'reject' });
    await assert.rejects(strict.tls13Binder({ identity: Buffer.from('nobody'), hash: 'sha256', transcriptHash: h('sha256') }, CTX, sig()), UnknownPskIdentityError);
    assert.equal(await strict.tls13VerifyBinder({ identity: Buffer.from('nobody'), hash: 'sha256', transcriptHash: h('sha256'), binder: randomBytes(32) }, CTX, sig()), false);
    // "random" (the default): an unknown identity gets secrets from a random PSK, different each time.
    const x = await holder.tls13HandshakeSecrets({ identity: Buffer.from('nobody'), hash: 'sha256', dheSecret: null, transcriptHash: h('sha256') }, CTX, sig());
    assert.equal(x.client.length, 32);
  });

  test('PSK file: an optional hash after the key; a bad one names the line', () => {
    const m = parsePskEntries(Buffer.from(`a:${PSK256.toString('hex')}\nb:c:${PSK384.toString('hex')} sha384\n`), 'psks.txt');
    assert.deepEqual([...m].map(([id, e]) => [id, e.hash]), [
      ['a', 'sha256'],
      ['b:c', 'sha384'],
    ]);
    assert.throws(() => parsePskEntries(Buffer.from(`a:${PSK256.toString('hex')} md5\n`), 'psks.txt'), (e: Error) => /psks.txt line 1: the hash after the key must be sha256 or sha384/.test(e.message) && !e.message.includes(PSK256.toString('hex')));
    assert.throws(() => parsePskEntries(Buffer.from(`a:${PSK256.toString('hex')} sha256 x\n`), 'psks.txt'), /line 1: expected identity:hexkey \[sha256\|sha384\]/);
  });

  test('key process frames: every step round-trips; truncations and stray bytes are refused', () => {
    const frame = { step: 'verify-binder' as const, identity: Buffer.from(ID256), hash: 'sha384' as const, transcriptHash: h('sha384'), dheSecret: randomBytes(32), binder: randomBytes(48) };
    const payload = encodeTls13Psk(9, frame).subarray(FRAME_HEADER);
    const back = decodeTls13Psk(payload);
    assert.ok(!('error' in back));
    assert.deepEqual({ ...back, identity: Buffer.from(back.identity), transcriptHash: Buffer.from(back.transcriptHash), dheSecret: Buffer.from(back.dheSecret!), binder: Buffer.from(back.binder!) }, frame);
    for (let n = 0; n < payload.length - frame.binder.length; n++) assert.ok('error' in decodeTls13Psk(payload.subarray(0, n)), `truncated to ${n}`);
    const psk_ke = encodeTls13Psk(1, { step: 'handshake-secrets', identity: Buffer.from('x'), hash: 'sha256', transcriptHash: h('sha256'), dheSecret: null }).subarray(FRAME_HEADER);
    const d = decodeTls13Psk(psk_ke);
    assert.ok(!('error' in d) && d.dheSecret === null);
    assert.ok('error' in decodeTls13Psk(Buffer.concat([psk_ke, Buffer.of(0)])), 'stray bytes');
    const badStep = Buffer.from(psk_ke);
    badStep[0] = 9;
    assert.ok('error' in decodeTls13Psk(badStep));
  });
});

describe('the key process holds TLS 1.3 PSKs', { timeout: 60_000 }, () => {
  let dir: { dir: string; cleanup: () => Promise<void> };
  let holder: KeyProcessPsk;
  const logs: string[] = [];
  before(async () => {
    dir = await tempDir('tls13-psk-process-');
    const file = join(dir.dir, 'psks.txt');
    await writeFile(file, `${ID256}:${PSK256.toString('hex')}\n${ID384}:${PSK384.toString('hex')} sha384\n`, { mode: 0o600 });
    const log = (level: string) => (obj: object, msg?: string) => logs.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
    holder = await startPskProcess({ pskPath: file, logger: { info: log('info'), warn: log('warn'), error: log('error') } });
  });
  after(async () => {
    await holder?.close();
    await dir?.cleanup();
  });

  test('binder, verify, psk_ke and psk_dhe_ke secrets as the reference; unknown ≡ wrong binder; no PSK in its errors or log', async () => {
    await checkHolder(holder);
    assertNoPsk(logs.join('\n'), 'the key process log');
  });

  test('a key process holding a private key refuses TLS 1.3 PSK requests', async () => {
    const pki = await getPki();
    const key = await startKeyProcess({ keyPath: pki.server['ecdsa-p256'].keyPath });
    try {
      const host = key as unknown as KeyProcessPsk;
      const req = { identity: Buffer.from(ID256), hash: 'sha256' as const, transcriptHash: h('sha256'), binder: randomBytes(32) };
      await assert.rejects(KeyProcessPsk.prototype.tls13VerifyBinder.call(host, req, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'unsupported' && /holds a private key, not PSKs/.test(e.message));
    } finally {
      await key.close();
    }
  });
});

describe('keyd holds TLS 1.3 PSKs', { timeout: 60_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let pki: KeydPki;
  let keyd: Awaited<ReturnType<typeof startTestKeyd>>;
  let client: KeydClient;
  let psk: RemotePsk;

  before(async () => {
    ({ dir, cleanup } = await tempDir('tls13-psk-keyd-'));
    pki = await makeKeydPki(dir, ['front', 'narrow', 'admin']);
    keyd = await startTestKeyd(dir, pki, {
      clients: [
        { id: 'cn:front', keys: [], psks: [ID256, ID384, 'nobody', 'NOBODY', 'CLIENT-7', 'CLIENT-384'] },
        { id: 'cn:narrow', keys: [], psks: ['someone-else'] },
        { id: 'cn:admin', admin: true },
      ],
    });
    const admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd.keyd.tlsAddress!));
    await admin.putPsk(Buffer.from(ID256), PSK256);
    await admin.putPsk(Buffer.from(ID384), PSK384, 'sha384');
    const list = await admin.listKeys();
    assert.deepEqual(list.psks.map((p) => [Buffer.from(p.identity).toString(), p.hash]).sort(), [
      [ID384, 'sha384'],
      [ID256, 'sha256'],
    ]);
    admin.close();
    client = await KeydClient.connect(tlsClientOptions(pki, 'front', keyd.keyd.tlsAddress!));
    psk = client.psk();
  });
  after(async () => {
    client?.close();
    await keyd?.keyd.close();
    await cleanup?.();
  });

  test('the same operations as every holder, each audited with the identity and the outcome', async () => {
    await checkHolder(psk);
    const audit = await readAudit(join(dir, 'audit.log'));
    const tls13 = audit.filter((l) => String(l.op).startsWith('tls13-psk-'));
    const hex = (s: string) => Buffer.from(s).toString('hex');
    for (const op of ['tls13-psk-binder', 'tls13-psk-verify-binder', 'tls13-psk-handshake-secrets', 'tls13-psk-application-secrets', 'tls13-psk-resumption-secret']) {
      assert.ok(tls13.some((l) => l.op === op && l.outcome === 'ok' && l.pskIdentity === hex(ID256) && l.client === 'cn:front'), `${op} audited`);
    }
    const verify = tls13.filter((l) => l.op === 'tls13-psk-verify-binder');
    assert.ok(verify.some((l) => l.outcome === 'bad-binder' && l.pskIdentity === hex(ID256)));
    assert.ok(verify.some((l) => l.outcome === 'unknown-psk-identity' && l.pskIdentity === hex('nobody')));
    assert.ok(verify.some((l) => l.outcome === 'wrong-hash' && l.pskIdentity === hex(ID256)));
    assert.ok(tls13.some((l) => l.op === 'tls13-psk-binder' && l.outcome === 'bad-request' && /sha256, not sha384/.test(String(l.reason))));
    assert.ok(tls13.every((l) => l.serverName === undefined || l.serverName === 'psk.example'));
    // The PSKs are nowhere in the audit log, keyd's logs or its metrics.
    const metrics = await fetchText(`http://127.0.0.1:${keyd.keyd.metricsAddress!.port}/metrics`);
    assert.ok(metricValue(metrics.text, 'keyd_operations_total', { op: 'tls13-psk-verify-binder', outcome: 'bad-binder' }) >= 1);
    assertNoPsk(await readFile(join(dir, 'audit.log'), 'utf8'), 'the audit log');
    assertNoPsk(JSON.stringify(keyd.logs.lines), "keyd's log");
    assertNoPsk(metrics.text, 'the metrics');
  });

  test('a front without rights: a binder check is "not accepted" as for a wrong binder, whether the identity exists or not; other steps refused', async () => {
    const narrow = await KeydClient.connect(tlsClientOptions(pki, 'narrow', keyd.keyd.tlsAddress!));
    try {
      const p = narrow.psk();
      const th = h('sha256');
      const verdict = (identity: string): Promise<boolean> => p.tls13VerifyBinder({ identity: Buffer.from(identity), hash: 'sha256', transcriptHash: th, binder: randomBytes(32) }, CTX, sig());
      assert.equal(await verdict(ID256), false);
      assert.equal(await verdict('does-not-exist'), false);
      await assert.rejects(p.tls13HandshakeSecrets({ identity: Buffer.from(ID256), hash: 'sha256', dheSecret: null, transcriptHash: th }, CTX, sig()), (e: unknown) => e instanceof KeyOperationError && e.code === 'refused');
      const audit = await readAudit(join(dir, 'audit.log'));
      assert.ok(audit.some((l) => l.client === 'cn:narrow' && l.op === 'tls13-psk-verify-binder' && l.outcome === 'refused'));
    } finally {
      narrow.close();
    }
  });
});
