/**
 * A security probe of real keyd processes on loopback: what the mutual-TLS port does with
 * peers that are not fronts (plain TCP, no certificate, another CA, certificates out of
 * their validity period or revoked, TLS 1.2); what the framing does with hostile frames
 * (bad lengths, trickled or unfinished frames, the in-flight cap, cancel); what each
 * operation answers a front outside its grant, and sign inputs one field off; what one
 * client can take from others (connections, queue, rate, audit log); whether secrets are
 * left in keyd's memory or output; and a full disk. Every probe talks raw frames over real
 * sockets.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, publicEncrypt, constants, randomBytes, webcrypto } from 'node:crypto';
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { createCa, issueCertificate, type Issuer } from '../../src/cli/pki.js';
import {
  FrameDecoder,
  FrameType,
  Tag,
  TlvFields,
  TlvWriter,
  decodeError,
  encodeDecryptPremasterRequest,
  encodeIssueDelegatedCredentialRequest,
  encodeFrame,
  encodePskMasterSecretRequest,
  encodeSignRequest,
  encodeTls13PskRequest,
  type Frame,
} from '../../src/keyd/protocol.js';
import { connectKeydAdmin, type KeydAdmin } from '../../src/keys/remoteKey.js';
import type { OperationContext } from '../../src/keys/keyOperations.js';
import type { Tls13PskStep } from '../../src/keys/tls13PskSteps.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { pskMasterSecret } from '../../src/tls/crypto/prf12.js';
import { KEYD_CLI, TEST_PASSPHRASE, certificateVerifyInput, fetchText, keydConfigJson, metricValue, readAudit, spawnKeyd, tempDir, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';
import { runProcess } from '../support/processes.js';

const CTX13: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify' };
const CTX12: OperationContext = { tlsVersion: 'TLSv1.2' };

interface Cert {
  certPem: string;
  keyPem: string;
}

let root: { dir: string; cleanup: () => Promise<void> };
let ca: Issuer;
let caPath: string;
let crlPath: string;
const certs: Record<string, Cert> = {};
let keyd: KeydChild;
let auditPath: string;
let admin: KeydAdmin;
const keyIds: Record<string, string> = {};
let rsaPublic: ReturnType<typeof createPublicKey>;
const GRANTED_PSK = randomBytes(32);

/** A client certificate of `issuer` valid from `notBefore` to `notAfter` (the CLI's issuer only makes current ones). */
async function certWithDates(issuer: Issuer, commonName: string, notBefore: Date, notAfter: Date): Promise<Cert> {
  const crypto = webcrypto as unknown as Crypto;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const caKey = await crypto.subtle.importKey('pkcs8', createPrivateKey(issuer.keyPem).export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString('hex').replace(/^./, '4'),
      subject: [{ CN: [commonName] }],
      issuer: new x509.X509Certificate(issuer.certPem).subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false)],
    },
    crypto,
  );
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem: cert.toString('pem'), keyPem: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** A CRL of `issuer` revoking `revoked` (certificates), valid for a day. */
async function crlPem(issuer: Issuer, revoked: Cert[]): Promise<string> {
  const crypto = webcrypto as unknown as Crypto;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const signingKey = await crypto.subtle.importKey('pkcs8', createPrivateKey(issuer.keyPem).export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.X509Certificate(issuer.certPem).subjectName,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 86_400_000),
      entries: revoked.map((c) => ({ serialNumber: new x509.X509Certificate(c.certPem).serialNumber })),
      signingKey,
      signingAlgorithm: alg,
    },
    crypto,
  );
  // As `openssl ca -gencrl` writes it (the library says "BEGIN CRL").
  return crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----');
}

/** A raw connection to keyd: frames out, frames in, and whether keyd closed it. */
class RawFront {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  #decoder = new FrameDecoder(64 << 20);
  #waiters: Array<() => void> = [];
  isClosed = false;

  constructor(readonly socket: TLSSocket | ReturnType<typeof netConnect>) {
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      for (const f of this.#decoder.push(d)) this.frames.push({ ...f, body: Buffer.from(f.body) });
      this.#wake();
    });
    this.closed = new Promise((r) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.#wake();
        r();
      }),
    );
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Connects as `name` (a certificate from `certs`), or with no certificate. */
  static async tls(name: string | undefined, extra: Record<string, unknown> = {}, port = keyd.tls!.port): Promise<RawFront> {
    const c = name ? certs[name] : undefined;
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', ...(c ? { cert: c.certPem, key: c.keyPem } : {}), ...extra });
    const f = new RawFront(socket);
    await new Promise<void>((resolve) => {
      socket.once('secureConnect', resolve);
      socket.once('close', resolve);
    });
    return f;
  }

  send(type: number, id: number, body: Uint8Array | TlvWriter = new Uint8Array(0), version = 1): void {
    this.socket.write(encodeFrame(type, id, body, version));
  }

  /** Waits until `n` frames arrived in all, the connection closed, or `ms` passed. */
  async waitFrames(n: number, ms = 3000): Promise<Frame[]> {
    const until = Date.now() + ms;
    while (this.frames.length < n && !this.isClosed && Date.now() < until) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, until - Date.now());
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.frames;
  }

  /** One request, its answer (or undefined if none came). */
  async ask(type: number, id: number, body: Uint8Array | TlvWriter = new Uint8Array(0), ms = 3000): Promise<Frame | undefined> {
    const n = this.frames.length;
    this.send(type, id, body);
    await this.waitFrames(n + 1, ms);
    return this.frames.slice(n).find((f) => f.id === id);
  }

  /** Whether keyd answers a PING: an authenticated connection does. */
  async pingAnswered(ms = 2000): Promise<boolean> {
    if (this.isClosed) return false;
    const f = await this.ask(FrameType.PING, 0xabcd, new Uint8Array(0), ms);
    return f?.type === FrameType.PONG;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A keyd of its own in a subfolder `name`, with keyd's certificate and the probe's client CA. */
async function ownKeyd(name: string, extra: Record<string, unknown>): Promise<KeydChild> {
  const dir = join(root.dir, name);
  await mkdir(dir);
  const json = keydConfigJson(dir, undefined, { tls: { cert: join(root.dir, 'keyd-cert.pem'), key: join(root.dir, 'keyd-key.pem'), clientCa: caPath }, ...extra });
  return spawnKeyd(await writeKeydConfig(dir, json));
}

/** "RESULT" or "code: message" of an answer frame. */
function answerOf(f: Frame | undefined): string {
  if (!f) return 'no answer';
  if (f.type === FrameType.RESULT) return 'RESULT';
  if (f.type === FrameType.ERROR) {
    const e = decodeError(f.body);
    return `${e.code}: ${e.message}`;
  }
  return `frame type ${f.type}`;
}

before(async () => {
  root = await tempDir('keyd-probe-');
  ca = await createCa({ commonName: 'probe CA' });
  caPath = join(root.dir, 'ca.pem');
  await writeFile(caPath, ca.certPem);
  const server = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'keyd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  await writeFile(join(root.dir, 'keyd-cert.pem'), server.certPem);
  await writeFile(join(root.dir, 'keyd-key.pem'), server.keyPem, { mode: 0o600 });
  for (const name of ['front', 'stranger', 'limited', 'hog', 'tickets', 'revoked', 'later']) certs[name] = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: name, usage: 'client' });
  const otherCa = await createCa({ commonName: 'another CA' });
  certs['other-ca'] = await issueCertificate(otherCa, { keyType: 'ecdsa-p256', commonName: 'front', usage: 'client' });
  const day = 86_400_000;
  certs.expired = await certWithDates(ca, 'front', new Date(Date.now() - 10 * day), new Date(Date.now() - day));
  certs.future = await certWithDates(ca, 'front', new Date(Date.now() + day), new Date(Date.now() + 10 * day));
  certs.current = await certWithDates(ca, 'front', new Date(Date.now() - day), new Date(Date.now() + day));

  crlPath = join(root.dir, 'crl.pem');
  await writeFile(crlPath, await crlPem(ca, [certs.revoked]));
  const json = keydConfigJson(root.dir, undefined, {
    tls: { cert: join(root.dir, 'keyd-cert.pem'), key: join(root.dir, 'keyd-key.pem'), clientCa: caPath, crl: crlPath },
    limits: { frameTimeoutMs: 800, maxInFlightPerConnection: 4, maxConcurrentOps: 1, handshakeTimeoutMs: 2000, maxConnectionsPerCertificate: 3 },
    clients: [
      { id: 'cn:front', keys: ['a.example', 'rsa.example'], psks: ['granted'] },
      { id: 'cn:later', keys: ['a.example'] },
      { id: 'cn:revoked', keys: ['a.example'] },
      { id: 'cn:limited', keys: ['a.example'], psks: ['granted'], rateLimit: { perSecond: 1, burst: 3 } },
      { id: 'cn:hog', keys: ['a.example'] },
      { id: 'cn:tickets', keys: [], psks: [], ticketKeys: true },
      { id: 'unix', keys: ['*'], psks: ['*'], admin: true },
    ],
  });
  auditPath = (json.audit as { file: string }).file;
  keyd = await spawnKeyd(await writeKeydConfig(root.dir, json));
  admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unix!}`] });
  keyIds.a = (await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['a.example'])).keyId;
  keyIds.b = (await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['b.example'])).keyId;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  rsaPublic = rsa.publicKey;
  keyIds.rsa = (await admin.putKey(rsa.privateKey, ['rsa.example'])).keyId;
  await admin.putPsk(Buffer.from('granted'), GRANTED_PSK);
  await admin.putPsk(Buffer.from('other'), randomBytes(32));
});

after(async () => {
  admin?.close();
  await keyd?.kill('SIGTERM');
  await root?.cleanup();
});

test('transport: only a current client certificate of keyd\'s CA, over TLS 1.3, gets an authenticated connection', async () => {
  // Plain TCP speaking keyd's protocol to the TLS port: never answered, closed.
  const plain = new RawFront(netConnect({ host: '127.0.0.1', port: keyd.tls!.port }));
  plain.send(FrameType.PING, 1);
  await Promise.race([plain.closed, new Promise((r) => setTimeout(r, 3000))]);
  assert.ok(plain.isClosed, 'plain TCP is closed');
  assert.equal(plain.frames.length, 0);

  for (const name of [undefined, 'other-ca', 'expired', 'future']) {
    const f = await RawFront.tls(name);
    assert.equal(await f.pingAnswered(), false, `${name ?? 'no certificate'}: no answer`);
    await Promise.race([f.closed, new Promise((r) => setTimeout(r, 3000))]);
    assert.ok(f.isClosed, `${name ?? 'no certificate'}: closed`);
  }
  // Each refusal is logged with OpenSSL's reason (node:tls alone would close them silently).
  const refusals = () => keyd.stdout().split('\n').filter((l) => l.includes('client certificate refused'));
  // keyd's log is written asynchronously.
  for (let i = 0; i < 50 && refusals().length < 4; i++) await new Promise((r) => setTimeout(r, 100));
  const refused = refusals();
  for (const reason of ['no client certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']) {
    assert.ok(refused.some((l) => l.includes(reason)), `a refusal logged with ${reason}: ${refused.join('\n')}`);
  }
  // TLS 1.2 (any suite, the weak ones included) is not offered: the handshake fails.
  const old = await RawFront.tls('front', { maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:ECDHE-ECDSA-AES128-SHA' });
  assert.equal(await old.pingAnswered(), false, 'TLS 1.2');
  // The control: the same CA, in its validity period.
  const ok = await RawFront.tls('current');
  assert.ok(await ok.pingAnswered(), 'a current certificate is served');
  // TLS 1.3 has no renegotiation; Node refuses to start one.
  const reneg = await new Promise<Error | null>((r) => (ok.socket as TLSSocket).renegotiate({}, (e) => r(e)));
  assert.match(String(reneg), /wrong ssl version/);
  assert.ok(await ok.pingAnswered(), 'still served');
  ok.close();
});

test('revocation (tls.crl): a revoked certificate is refused; one revoked later is cut off within seconds, without a restart', async () => {
  const revoked = await RawFront.tls('revoked');
  assert.equal(await revoked.pingAnswered(), false, 'revoked at start');
  const later = await RawFront.tls('later');
  assert.ok(await later.pingAnswered(), 'not revoked yet');
  // A CRL keyd cannot use (signed by another CA) is not taken: the one in force stays.
  await writeFile(crlPath, await crlPem(await createCa({ commonName: 'probe CA' }), [certs.front]));
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(await later.pingAnswered(), 'a bad CRL changes nothing');
  assert.match(keyd.stdout(), /client CRL not reloaded; the previous one stays in force/);
  await writeFile(crlPath, await crlPem(ca, [certs.revoked, certs.later]));
  await Promise.race([later.closed, new Promise((r) => setTimeout(r, 5000))]);
  assert.ok(later.isClosed, 'the established connection of a newly revoked certificate is closed');
  assert.equal(await (await RawFront.tls('later')).pingAnswered(), false, 'and it cannot connect again');
  const front = await RawFront.tls('front');
  assert.ok(await front.pingAnswered(), 'other fronts are served');
  front.close();
  const m = (await fetchText(`http://127.0.0.1:${keyd.metrics!.port}/metrics`)).text;
  assert.equal(metricValue(m, 'keyd_connections_closed_total', { reason: 'revoked' }), 1);
  assert.ok((await readAudit(auditPath)).some((l) => l.client === 'cn:later' && l.outcome === 'refused' && l.reason === 'client certificate revoked (tls.crl)'));
  const check = await runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', join(root.dir, 'keyd.json'), '--check'], { env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE } });
  assert.match(check.stdout, /ok +tls\.crl: \S+crl\.pem: 1 CRL\(s\) of tls\.clientCa, 2 certificate\(s\) revoked, next update by /);
});

test('a TLS session saved while the certificate was valid cannot be resumed once it is not (a resumption skips the certificate checks)', async () => {
  certs.expiring = await certWithDates(ca, 'front', new Date(Date.now() - 86_400_000), new Date(Date.now() + 2500));
  const first = await RawFront.tls('expiring');
  assert.ok(await first.pingAnswered(), 'valid for 2.5 s more');
  const session = (first.socket as TLSSocket).getSession();
  assert.ok(session, 'keyd handed out a session');
  first.close();
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await (await RawFront.tls('expiring')).pingAnswered(), false, 'expired: a full handshake is refused');
  const resumed = await RawFront.tls('expiring', { session });
  assert.equal(await resumed.pingAnswered(), false, 'and so is resuming the earlier session');
});

test('framing: bad lengths close with a connection error; unknown types, versions and ids are answered and the connection stays', async () => {
  for (const len of [0, 5, 0xffffffff, (1 << 20) + 1]) {
    const f = await RawFront.tls('front');
    const b = Buffer.alloc(10);
    b.writeUInt32BE(len >>> 0, 0);
    b[4] = 1;
    b[5] = FrameType.PING;
    f.socket.write(b);
    await f.waitFrames(1);
    await Promise.race([f.closed, new Promise((r) => setTimeout(r, 3000))]);
    assert.equal(f.frames[0]?.id, 0, `length ${len}: connection error`);
    assert.match(answerOf(f.frames[0]), /^bad-request: frame (length|of)/, `length ${len}`);
    assert.ok(f.isClosed, `length ${len}: closed`);
  }
  const f = await RawFront.tls('front');
  assert.match(answerOf(await f.ask(0x7f, 1)), /^unsupported: unknown frame type 0x7f/);
  assert.match(answerOf(await f.ask(FrameType.RESULT, 2)), /^bad-request: RESULT is not a request/);
  const v2 = await (async () => {
    const n = f.frames.length;
    f.send(FrameType.PING, 3, new Uint8Array(0), 2);
    await f.waitFrames(n + 1);
    return f.frames[n];
  })();
  assert.match(answerOf(v2), /^unsupported: protocol version 2/);
  assert.deepEqual([...(TlvFields.parse(v2.body, 'e').opt(Tag.SUPPORTED_VERSION) ?? [])], [1]);
  assert.match(answerOf(await f.ask(FrameType.GET_KEY, 0)), /^bad-request: request id 0 is reserved/);
  // A truncated TLV field, a string with a NUL byte, a name with a path in it, a very long name.
  assert.match(answerOf(await f.ask(FrameType.GET_KEY, 4, Buffer.of(Tag.SERVER_NAME, 0, 0, 9, 0x61))), /^bad-request: GET_KEY: truncated field/);
  const name = (s: string | Buffer): TlvWriter => new TlvWriter().bytes(Tag.SERVER_NAME, Buffer.from(s));
  assert.match(answerOf(await f.ask(FrameType.GET_KEY, 5, name(Buffer.from('a.example\0.evil')))), /^bad-request: .*control characters/);
  assert.match(answerOf(await f.ask(FrameType.GET_KEY, 6, name('../../etc/passwd'))), /^bad-request: not a valid server name/);
  assert.match(answerOf(await f.ask(FrameType.GET_KEY, 7, name('a'.repeat(300)))), /^bad-request: .*longer than 255 bytes/);
  assert.ok(await f.pingAnswered(), 'the connection is still served');
  f.close();
});

test('framing: a frame trickled a byte per write is answered; one that never ends is closed at the frame timeout', async () => {
  const f = await RawFront.tls('front');
  const frame = encodeFrame(FrameType.PING, 9, Buffer.from('trickle'));
  for (const b of frame) {
    f.socket.write(Buffer.of(b));
    await new Promise((r) => setTimeout(r, 5));
  }
  await f.waitFrames(1);
  assert.equal(f.frames[0]?.type, FrameType.PONG);
  f.socket.write(frame.subarray(0, 7));
  const t0 = Date.now();
  await Promise.race([f.closed, new Promise((r) => setTimeout(r, 4000))]);
  assert.ok(f.isClosed, 'closed');
  assert.ok(Date.now() - t0 >= 700, `closed after ${Date.now() - t0} ms, not before the 800 ms frame timeout`);
});

test('framing: frames trickled a byte per TLS record cost keyd about their own size in memory, not a Buffer per byte', async () => {
  // A keyd of its own, whose frame timeout outlasts the trickle.
  const k = await ownKeyd('trickle', { limits: { frameTimeoutMs: 60_000 }, clients: [{ id: 'cn:front', keys: [], psks: [] }] });
  try {
    const rssKb = async (): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${k.pid}/status`, 'utf8'))![1]);
    const conns = await Promise.all([1, 2, 3, 4].map(() => RawFront.tls('front', {}, k.tls!.port)));
    const header = encodeFrame(FrameType.PING, 1, Buffer.alloc(0)).subarray(0, 6);
    header.writeUInt32BE(1 << 19, 0);
    for (const c of conns) await new Promise((r) => c.socket.write(header, r));
    const before = await rssKb();
    // 4 x 40,000 one-byte records (each write waits for the last, so each is a record of its own).
    await Promise.all(
      conns.map(async (c) => {
        for (let i = 0; i < 40_000; i++) await new Promise((r) => c.socket.write(Buffer.of(0x41), r));
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    const grownKb = (await rssKb()) - before;
    assert.ok(conns.every((c) => !c.isClosed), 'the frames are still open');
    // A Buffer per record held ~600 bytes per byte here (~95 MB); assembled, the frames take 160 KB plus garbage.
    assert.ok(grownKb < 40 * 1024, `keyd grew by ${grownKb} kB for 160 kB of frames`);
    for (const c of conns) c.close();
  } finally {
    await k.kill('SIGTERM');
  }
});

test('framing: requests beyond the in-flight cap are refused, a reused id too; a cancelled request gets no answer', async () => {
  const f = await RawFront.tls('front');
  const body = (i: number): Uint8Array =>
    encodeDecryptPremasterRequest({ key: { keyId: keyIds.rsa }, ciphertext: randomBytes(256), clientVersion: 0x0303, ctx: { ...CTX12, connectionId: `cap-${i}` } });
  // Ten requests in one write (the cap is 4), id 3 twice, id 10 cancelled at once.
  const writes = [...Array.from({ length: 10 }, (_, i) => encodeFrame(FrameType.DECRYPT_PREMASTER, i + 1, body(i))), encodeFrame(FrameType.DECRYPT_PREMASTER, 3, body(99))];
  f.socket.write(Buffer.concat(writes));
  await f.waitFrames(11, 5000);
  const byId = new Map<number, string[]>();
  for (const fr of f.frames) byId.set(fr.id, [...(byId.get(fr.id) ?? []), answerOf(fr)]);
  const results = [...byId.values()].flat();
  assert.equal(results.filter((a) => a === 'RESULT').length, 4, results.join('\n'));
  assert.equal(results.filter((a) => /^unavailable: more than 4 requests in flight/.test(a)).length, 6, results.join('\n'));
  assert.ok(byId.get(3)!.some((a) => /^(bad-request: request id 3 is already in flight|unavailable)/.test(a)));

  const n = f.frames.length;
  f.socket.write(Buffer.concat([encodeFrame(FrameType.DECRYPT_PREMASTER, 50, body(50)), encodeFrame(FrameType.CANCEL, 50), encodeFrame(FrameType.CANCEL, 51)]));
  await f.waitFrames(n + 1, 800);
  assert.equal(f.frames.length, n, 'no answer to a cancelled request, none to a CANCEL');
  assert.ok(await f.pingAnswered());
  f.close();
});

/** Every operation on something outside the `front` rule's grant. */
function outsideGrant(): Array<{ what: string; type: number; body: Uint8Array }> {
  const psk = (step: Tls13PskStep): Uint8Array =>
    encodeTls13PskRequest({ step, req: { identity: Buffer.from('other'), hash: 'sha256', transcriptHash: randomBytes(32), dheSecret: step === 'binder' || step === 'verify-binder' ? null : randomBytes(32), ...(step === 'verify-binder' ? { binder: randomBytes(32) } : {}) }, ctx: { tlsVersion: 'TLSv1.3' } });
  const dc = (keyId: string): Uint8Array =>
    encodeIssueDelegatedCredentialRequest({
      key: { keyId },
      request: { certificate: randomBytes(300), credential: { validTime: 3600, certVerifyAlgorithm: 0x0403, spki: randomBytes(91) }, algorithm: 0x0403, side: 'server' },
      ctx: { tlsVersion: 'TLSv1.3' },
    });
  return [
    { what: 'ISSUE_DELEGATED_CREDENTIAL, key outside the grant', type: FrameType.ISSUE_DELEGATED_CREDENTIAL, body: dc(keyIds.b) },
    { what: 'ISSUE_DELEGATED_CREDENTIAL without the grant', type: FrameType.ISSUE_DELEGATED_CREDENTIAL, body: dc(keyIds.a) },
    { what: 'SIGN', type: FrameType.SIGN, body: encodeSignRequest({ key: { keyId: keyIds.b }, scheme: SignatureScheme.ecdsa_secp256r1_sha256, message: certificateVerifyInput(), ctx: CTX13 }) },
    { what: 'SIGN by name', type: FrameType.SIGN, body: encodeSignRequest({ key: { serverName: 'b.example' }, scheme: SignatureScheme.ecdsa_secp256r1_sha256, message: certificateVerifyInput(), ctx: CTX13 }) },
    { what: 'GET_KEY', type: FrameType.GET_KEY, body: new TlvWriter().bytes(Tag.KEY_ID, Buffer.from(keyIds.b, 'hex')).finish() },
    { what: 'DECRYPT_PREMASTER', type: FrameType.DECRYPT_PREMASTER, body: encodeDecryptPremasterRequest({ key: { keyId: keyIds.b }, ciphertext: randomBytes(256), clientVersion: 0x0303, ctx: CTX12 }) },
    { what: 'PSK_MASTER_SECRET', type: FrameType.PSK_MASTER_SECRET, body: encodePskMasterSecretRequest({ req: { identity: Buffer.from('other'), otherSecret: null, hash: 'sha256', extended: true, seed: randomBytes(32) }, ctx: CTX12 }) },
    { what: 'TLS13_PSK_BINDER', type: FrameType.TLS13_PSK_BINDER, body: psk('binder') },
    { what: 'TLS13_PSK_HANDSHAKE_SECRETS', type: FrameType.TLS13_PSK_HANDSHAKE_SECRETS, body: psk('handshake-secrets') },
    { what: 'TLS13_PSK_APPLICATION_SECRETS', type: FrameType.TLS13_PSK_APPLICATION_SECRETS, body: psk('application-secrets') },
    { what: 'TLS13_PSK_RESUMPTION_SECRET', type: FrameType.TLS13_PSK_RESUMPTION_SECRET, body: psk('resumption-master-secret') },
    { what: 'GET_TICKET_KEYS', type: FrameType.GET_TICKET_KEYS, body: new Uint8Array(0) },
    { what: 'LIST_KEYS', type: FrameType.LIST_KEYS, body: new Uint8Array(0) },
    { what: 'PUT_PSK', type: FrameType.PUT_PSK, body: new TlvWriter().bytes(Tag.PSK_IDENTITY, Buffer.from('x')).bytes(Tag.PSK_SECRET, randomBytes(32)).finish() },
  ];
}

test('authorization: each operation outside the grant is refused and audited; a binder check answers "not accepted"', async () => {
  for (const who of ['front', 'stranger']) {
    const f = await RawFront.tls(who);
    let id = 100;
    for (const c of outsideGrant()) {
      const a = answerOf(await f.ask(c.type, id++, c.body));
      assert.match(a, /^refused: /, `${who} ${c.what}`);
    }
    const verify = encodeTls13PskRequest({ step: 'verify-binder', req: { identity: Buffer.from('other'), hash: 'sha256', transcriptHash: randomBytes(32), dheSecret: null, binder: randomBytes(32) }, ctx: { tlsVersion: 'TLSv1.3' } });
    const v = await f.ask(FrameType.TLS13_PSK_VERIFY_BINDER, id, verify);
    if (who === 'front') assert.deepEqual([...TlvFields.parse(v!.body, 'r').req(Tag.OUTPUT)], [0], 'not accepted');
    else assert.match(answerOf(v), /^refused: identity cn:stranger is not authorized/);
    f.close();
  }
  await new Promise((r) => setTimeout(r, 100));
  const lines = (await readAudit(auditPath)).filter((l) => l.client === 'cn:front' || l.client === 'cn:stranger');
  const refused = lines.filter((l) => l.outcome === 'refused');
  assert.equal(refused.length, 2 * (outsideGrant().length + 1), JSON.stringify(lines.map((l) => [l.client, l.op, l.outcome])));
});

test('sign inputs that are not exactly a handshake input are refused: context, padding, lengths, groups, points', async () => {
  const f = await RawFront.tls('front');
  const cv = certificateVerifyInput();
  const ske = (group: number, pointLen: number, first = 4): Buffer => Buffer.concat([randomBytes(64), Buffer.of(3, group >> 8, group & 0xff, pointLen, first), randomBytes(pointLen - 1)]);
  const cases: Array<[string, Uint8Array, number]> = [
    ['context string off by one letter', Buffer.concat([cv.subarray(0, 70), Buffer.from('X'), cv.subarray(71)]), 0x0403],
    ['a tab among the 64 spaces', Buffer.concat([Buffer.from('\t'), cv.subarray(1)]), 0x0403],
    ['no 0x00 after the context', Buffer.concat([cv.subarray(0, 97), Buffer.of(1), cv.subarray(98)]), 0x0403],
    ['a 31-byte transcript hash', cv.subarray(0, cv.length - 1), 0x0403],
    ['a 33-byte transcript hash', Buffer.concat([cv, Buffer.of(0)]), 0x0403],
    ['a 64-byte transcript hash', Buffer.concat([cv, randomBytes(32)]), 0x0403],
    ['PKCS#1 v1.5 in TLS 1.3', cv, 0x0401],
    ['ServerKeyExchange on ffdhe2048', ske(0x0100, 65), 0x0403],
    ['ServerKeyExchange with a P-256 point one byte short', ske(23, 64), 0x0403],
    ['ServerKeyExchange with a P-256 point that is not uncompressed', ske(23, 65, 2), 0x0403],
    ['ServerKeyExchange with a trailing byte', Buffer.concat([ske(23, 65), Buffer.of(0)]), 0x0403],
    ['ServerKeyExchange, explicit-prime curve type', Buffer.concat([randomBytes(64), Buffer.of(1, 0, 23, 65), randomBytes(65)]), 0x0403],
    ['a bare SHA-256 digest', randomBytes(32), 0x0403],
    ['a TLS 1.2 client CertificateVerify without bound mode', Buffer.concat([1, 2, 11, 12, 13, 14, 11, 16].map((t) => Buffer.of(t, 0, 0, 0))), 0x0403],
  ];
  let id = 1;
  for (const [what, message, scheme] of cases) {
    const a = answerOf(await f.ask(FrameType.SIGN, id++, encodeSignRequest({ key: { keyId: keyIds.a }, scheme, message, ctx: { tlsVersion: 'TLSv1.3' } })));
    assert.match(a, /^(refused|unsupported): sign input refused/, what);
  }
  // The control: the exact shapes are signed.
  assert.equal(answerOf(await f.ask(FrameType.SIGN, id++, encodeSignRequest({ key: { keyId: keyIds.a }, scheme: 0x0403, message: cv, ctx: CTX13 }))), 'RESULT');
  assert.equal(answerOf(await f.ask(FrameType.SIGN, id, encodeSignRequest({ key: { keyId: keyIds.a }, scheme: 0x0403, message: ske(23, 65), ctx: CTX12 }))), 'RESULT');
  f.close();
});

test('RSA premaster decryption is no padding oracle: every ciphertext gets 48 bytes, the same frame, the same audit outcome', async () => {
  const f = await RawFront.tls('front');
  const good = Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
  const enc = (m: Buffer, padding = constants.RSA_PKCS1_PADDING): Buffer => publicEncrypt({ key: rsaPublic, padding }, m);
  const cases: Array<[string, Uint8Array]> = [
    ['valid', enc(good)],
    ['wrong client_version', enc(Buffer.concat([Buffer.of(3, 1), randomBytes(46)]))],
    ['47-byte premaster', enc(randomBytes(47))],
    ['OAEP instead of PKCS#1 v1.5', enc(good, constants.RSA_PKCS1_OAEP_PADDING)],
    ['random bytes', randomBytes(256)],
    ['all 0xff (above the modulus)', Buffer.alloc(256, 0xff)],
    ['one byte', Buffer.of(1)],
    ['257 bytes', randomBytes(257)],
  ];
  const lengths = new Set<number>();
  let id = 1;
  for (const [what, ciphertext] of cases) {
    const r = await f.ask(FrameType.DECRYPT_PREMASTER, id++, encodeDecryptPremasterRequest({ key: { keyId: keyIds.rsa }, ciphertext, clientVersion: 0x0303, ctx: { ...CTX12, connectionId: `oracle-${id}` } }));
    assert.equal(answerOf(r), 'RESULT', what);
    const out = TlvFields.parse(r!.body, 'r').req(Tag.OUTPUT);
    assert.equal(out.length, 48, what);
    if (what === 'valid') assert.deepEqual(Buffer.from(out), good);
    lengths.add(r!.body.length);
  }
  assert.equal(lengths.size, 1);
  await new Promise((r) => setTimeout(r, 100));
  const lines = (await readAudit(auditPath)).filter((l) => String(l.connectionId).startsWith('oracle-'));
  assert.equal(lines.length, cases.length);
  assert.ok(lines.every((l) => l.outcome === 'ok' && l.reason === undefined), JSON.stringify(lines));
  f.close();
});

test('rate limit: a front that skips the binder steps still takes a token per TLS 1.3 PSK handshake', async () => {
  const f = await RawFront.tls('limited');
  const hs = (i: number): Buffer =>
    encodeFrame(FrameType.TLS13_PSK_HANDSHAKE_SECRETS, i, encodeTls13PskRequest({ step: 'handshake-secrets', req: { identity: Buffer.from('granted'), hash: 'sha256', transcriptHash: randomBytes(32), dheSecret: randomBytes(32) }, ctx: { tlsVersion: 'TLSv1.3' } }));
  // The bucket holds 3 tokens and refills one a second: 8 handshakes at once cannot all pass.
  f.socket.write(Buffer.concat(Array.from({ length: 8 }, (_, i) => hs(i + 1))));
  await f.waitFrames(8);
  const answers = f.frames.map(answerOf);
  assert.ok(answers.filter((a) => a === 'RESULT').length <= 4, answers.join('\n'));
  assert.ok(answers.filter((a) => a === 'rate-limited: rate limit exceeded for this front').length >= 4, answers.join('\n'));
  f.close();
});

test('one client certificate cannot take every connection slot: past its own budget it is closed, others are still served', async () => {
  const hogs = [];
  for (let i = 0; i < 3; i++) {
    const h = await RawFront.tls('hog');
    assert.ok(await h.pingAnswered(), `hog connection ${i + 1}`);
    hogs.push(h);
  }
  const extra = await RawFront.tls('hog');
  assert.equal(await extra.pingAnswered(), false, 'the fourth connection of one certificate');
  await Promise.race([extra.closed, new Promise((r) => setTimeout(r, 2000))]);
  assert.ok(extra.isClosed);
  const front = await RawFront.tls('front');
  assert.ok(await front.pingAnswered(), 'another certificate is served');
  const m = (await fetchText(`http://127.0.0.1:${keyd.metrics!.port}/metrics`)).text;
  assert.equal(metricValue(m, 'keyd_connections_closed_total', { reason: 'certificate-limit' }), 1);
  // A slot given back is usable again.
  hogs.pop()!.close();
  await new Promise((r) => setTimeout(r, 200));
  const again = await RawFront.tls('hog');
  assert.ok(await again.pingAnswered(), 'a slot given back');
  for (const h of [...hogs, again, front]) h.close();
});

test('secret replies leave no copy in keyd\'s memory: ticket keys, an RSA premaster, a PSK master secret', async () => {
  const needles: Needle[] = [];
  const tickets = await RawFront.tls('tickets');
  for (let i = 1; i <= 5; i++) {
    const r = await tickets.ask(FrameType.GET_TICKET_KEYS, i);
    assert.equal(answerOf(r), 'RESULT');
    if (i > 1) continue;
    for (const e of TlvFields.parse(r!.body, 'r').all(Tag.TICKET_KEY)) {
      const secret = TlvFields.parse(e, 'k').req(Tag.TICKET_KEY_SECRET);
      // keyd holds the key itself; a copy with its field header is a leftover of a reply.
      needles.push({ name: 'TICKET_KEY_SECRET field', bytes: Buffer.concat([Buffer.of(Tag.TICKET_KEY_SECRET, 0, 0, 32), secret]) });
    }
  }
  const f = await RawFront.tls('front');
  const premaster = Buffer.concat([Buffer.of(3, 3), randomBytes(46)]);
  const ct = publicEncrypt({ key: rsaPublic, padding: constants.RSA_PKCS1_PADDING }, premaster);
  const dr = await f.ask(FrameType.DECRYPT_PREMASTER, 1, encodeDecryptPremasterRequest({ key: { keyId: keyIds.rsa }, ciphertext: ct, clientVersion: 0x0303, ctx: CTX12 }));
  assert.deepEqual(Buffer.from(TlvFields.parse(dr!.body, 'r').req(Tag.OUTPUT)), premaster);
  needles.push({ name: 'premaster', bytes: premaster });
  const req = { identity: Buffer.from('granted'), otherSecret: null, hash: 'sha256' as const, extended: true, seed: randomBytes(32) };
  const ms = await f.ask(FrameType.PSK_MASTER_SECRET, 2, encodePskMasterSecretRequest({ req, ctx: CTX12 }));
  assert.deepEqual(Buffer.from(TlvFields.parse(ms!.body, 'r').req(Tag.OUTPUT)), pskMasterSecret(GRANTED_PSK, req));
  needles.push({ name: 'PSK master secret', bytes: pskMasterSecret(GRANTED_PSK, req) });
  tickets.close();
  f.close();
  // Nor in anything keyd printed (its logs), in hex or base64.
  const printed = keyd.stdout() + keyd.stderr() + (await readFile(auditPath, 'utf8'));
  for (const n of [...needles, { name: 'PSK', bytes: GRANTED_PSK }]) {
    const bare = n.bytes.subarray(n.bytes.length - 32);
    for (const text of [bare.toString('hex'), bare.toString('base64').slice(0, 40), bare.toString('base64url').slice(0, 40)]) assert.ok(!printed.includes(text), `${n.name} in keyd's output`);
  }
  const scan = await scanProcessMemory(keyd.pid, needles);
  assert.ok(scan.bytesScanned > 10_000_000, `scanned ${scan.bytesScanned} bytes`);
  assert.deepEqual(scan.found, []);
});

test('a full disk (the audit log hits the file size limit): no result leaves without its line, /healthz says so, keyd stays up', async () => {
  const dir = join(root.dir, 'full');
  await mkdir(dir);
  const json = keydConfigJson(dir, undefined, {
    tls: { cert: join(root.dir, 'keyd-cert.pem'), key: join(root.dir, 'keyd-key.pem'), clientCa: caPath },
    clients: [{ id: 'cn:front', keys: ['*'], psks: [] }, { id: 'unix', keys: [], psks: [], admin: true }],
  });
  const config = await writeKeydConfig(dir, json);
  // RLIMIT_FSIZE of 32 KiB: writes beyond it fail with EFBIG (Node ignores SIGXFSZ), as on a full disk.
  const child = spawn('sh', ['-c', 'ulimit -f 64; exec "$0" "$@"', process.execPath, KEYD_CLI, 'keyd', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const until = Date.now() + 30_000;
    while (!out.includes('"keyd ready"') && child.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const line = out.split('\n').find((l) => l.includes('"keyd ready"'));
    assert.ok(line, `keyd did not start: ${out}`);
    const ready = JSON.parse(line) as { tls: string; unix: string; metrics: string };
    const a = await connectKeydAdmin({ addresses: [`unix:${ready.unix}`] });
    const keyId = (await a.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['a.example'])).keyId;
    a.close();
    const f = await RawFront.tls('front', {}, Number(ready.tls.split(':')[1]));
    const answers: string[] = [];
    for (let id = 1; id <= 200; id++) {
      answers.push(answerOf(await f.ask(FrameType.SIGN, id, encodeSignRequest({ key: { keyId }, scheme: 0x0403, message: certificateVerifyInput(), ctx: CTX13 }))));
    }
    const firstRefused = answers.findIndex((x) => x !== 'RESULT');
    assert.ok(firstRefused > 0, 'some signatures before the limit');
    assert.ok(answers.slice(firstRefused).every((x) => x === 'unavailable: keyd audit log unavailable'), answers.slice(firstRefused).join('\n'));
    // Whole lines only: the write that failed may have left part of a line.
    const whole = (await readFile((json.audit as { file: string }).file, 'utf8')).split('\n').slice(0, -1);
    assert.equal(whole.filter((l) => l.includes('"op":"sign"') && l.includes('"outcome":"ok"')).length, firstRefused, 'one written line per result');
    assert.deepEqual(await fetchText(`http://${ready.metrics}/healthz`), { status: 503, text: 'audit log unavailable\n' });
    assert.ok(await f.pingAnswered(), 'keyd is up');
    f.close();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    // The torn last line: keyd does not start on it until someone has looked. (The failed
    // write leaves part of a line unless the size limit fell exactly between two lines.)
    const torn = !(await readFile((json.audit as { file: string }).file, 'utf8')).endsWith('\n');
    const again = await spawnKeyd(config, 10_000).then(
      (k) => k.kill().then(() => 'started'),
      (e: Error) => e.message,
    );
    if (torn) assert.match(again, /audit log \S+ ends with an incomplete line \(a torn write\?\)/);
    else assert.equal(again, 'started', 'whole lines only: keyd starts again');
  } finally {
    child.kill('SIGKILL');
  }
});

test('a flood of refused requests cannot fill the disk: beyond the audited rate errors are counted in a summary line', async () => {
  const f = await RawFront.tls('stranger');
  const sign = encodeFrame(FrameType.SIGN, 1, encodeSignRequest({ key: { keyId: keyIds.a }, scheme: 0x0403, message: certificateVerifyInput(), ctx: CTX13 }));
  const before = (await readAudit(auditPath)).filter((l) => l.client === 'cn:stranger').length;
  const n = 2000;
  f.socket.write(Buffer.concat(Array.from({ length: n }, (_, i) => { const b = Buffer.from(sign); b.writeUInt32BE(i + 1, 6); return b; })));
  await f.waitFrames(n, 10_000);
  assert.equal(f.frames.filter((x) => /^refused: identity cn:stranger is not authorized/.test(answerOf(x))).length, n, 'every request is still answered');
  await new Promise((r) => setTimeout(r, 1500));
  const lines = (await readAudit(auditPath)).filter((l) => l.client === 'cn:stranger').slice(before);
  const summaries = lines.filter((l) => l.op === 'errors' && l.outcome === 'suppressed');
  const own = lines.length - summaries.length;
  // Written one by one: at most the bucket (100) plus what refilled meanwhile; the rest counted.
  assert.ok(own >= 100 && own < 400, `${own} lines of their own`);
  const counted = summaries.reduce((sum, l) => sum + Number(/^(\d+) error answers not audited one by one \(over 100\/s for this client\)$/.exec(String(l.reason))![1]), 0);
  assert.equal(own + counted, n, 'every refusal is in the log, one by one or counted');
  const m = (await fetchText(`http://127.0.0.1:${keyd.metrics!.port}/metrics`)).text;
  assert.ok(metricValue(m, 'keyd_refusals_total', { reason: 'refused' }) >= n);
  f.close();
});

test('fair queueing: a front with thousands of RSA signatures queued does not hold up another front\'s next one', async () => {
  const k = await ownKeyd('fair', {
    limits: { maxConcurrentOps: 1, maxQueuedOps: 2400 },
    clients: [{ id: 'cn:hog', keys: ['*'], psks: [] }, { id: 'cn:front', keys: ['*'], psks: [] }, { id: 'unix', keys: [], psks: [], admin: true }],
  });
  try {
    const a = await connectKeydAdmin({ addresses: [`unix:${k.unix!}`] });
    const keyId = (await a.putKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, ['rsa.example'])).keyId;
    a.close();
    const sign = (id: number): Buffer => encodeFrame(FrameType.SIGN, id, encodeSignRequest({ key: { keyId }, scheme: SignatureScheme.rsa_pss_rsae_sha256, message: certificateVerifyInput(), ctx: CTX13 }));
    const hog = await RawFront.tls('hog', {}, k.tls!.port);
    const front = await RawFront.tls('front', {}, k.tls!.port);
    const n = 600;
    hog.socket.write(Buffer.concat(Array.from({ length: n }, (_, i) => sign(i + 1))));
    await hog.waitFrames(5);
    // Over a quarter of the queue: the hog's share is full, the rest of the queue is not.
    hog.socket.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => sign(n + i + 1))));
    assert.equal(answerOf(await front.ask(FrameType.SIGN, 1, sign(1).subarray(10), 20_000)), 'RESULT');
    const hogDone = hog.frames.filter((f) => f.type === FrameType.RESULT).length;
    assert.ok(hogDone < n / 2, `the front waited for ${hogDone} of the hog's ${n} signatures`);
    await hog.waitFrames(n + 100, 30_000);
    assert.ok(hog.frames.some((f) => answerOf(f) === "unavailable: keyd is overloaded (this client's share of the operation queue is full)"));
    hog.close();
    front.close();
  } finally {
    await k.kill('SIGTERM');
  }
});
