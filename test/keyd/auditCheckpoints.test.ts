/**
 * The audit log beyond keyd's host: keyd signs checkpoints of the chain head with an
 * audit key sealed in its store and ships every line, as it is written, to a syslog
 * receiver over TLS (RFC 5425 octet counting, RFC 5424 messages; here a small receiver
 * of the test's own, with the connection cut once to show the reconnect). Whoever can
 * write the file can edit a middle line and recompute every later `prev`: the chain alone
 * then verifies, `keyward audit verify --audit-pubkey` reports the log re-chained, and the
 * receiver still holds the lines as written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { AUDIT_GENESIS, AuditLog, verifyAuditLog } from '../../src/keyd/audit.js';
import type { Keyd } from '../../src/keyd/server.js';
import { keyIdOf } from '../../src/keys/keyId.js';
import { connectKeydAdmin, connectRemoteKey } from '../../src/keys/remoteKey.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { KEYD_CLI, certificateVerifyInput, fetchText, makeKeydPki, metricValue, startTestKeyd, tempDir, tlsClientOptions, type KeydPki } from '../support/keydFixture.js';

/** A syslog-over-TLS receiver (RFC 5425): octet-counted frames, each an RFC 5424 message. */
class SyslogTlsReceiver {
  readonly messages: Array<{ pri: number; host: string; app: string; msgid: string; msg: string }> = [];
  readonly errors: string[] = [];
  readonly sockets = new Set<TLSSocket>();
  readonly server: TlsServer;

  constructor(pki: KeydPki) {
    this.server = createTlsServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (s) => this.#serve(s));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as AddressInfo).port;
  }

  #serve(s: TLSSocket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) return;
        const lenText = buf.subarray(0, sp).toString('ascii');
        if (!/^[1-9]\d{0,6}$/.test(lenText)) {
          this.errors.push(`bad frame length ${JSON.stringify(lenText)}`);
          s.destroy();
          return;
        }
        const len = Number(lenText);
        if (buf.length < sp + 1 + len) return;
        const text = buf.subarray(sp + 1, sp + 1 + len).toString('utf8');
        buf = buf.subarray(sp + 1 + len);
        // <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG
        const m = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S{1,255}) (\S{1,48}) (\d+) (\S{1,32}) - (.*)$/s.exec(text);
        if (!m) {
          this.errors.push(`not an RFC 5424 message: ${text.slice(0, 80)}`);
          continue;
        }
        this.messages.push({ pri: Number(m[1]), host: m[3], app: m[4], msgid: m[6], msg: m[7] });
      }
    });
  }

  /** Cuts every open connection (the sender must reconnect). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let root: { dir: string; cleanup: () => Promise<void> };
let pki: KeydPki;
let receiver: SyslogTlsReceiver;
let keyd: Keyd | undefined;
let auditPath: string;
let pubPath: string;

before(async () => {
  root = await tempDir('keyd-audit-cp-');
  pki = await makeKeydPki(root.dir, ['front', 'admin']);
  receiver = new SyslogTlsReceiver(pki);
  const port = await receiver.listen();
  pubPath = join(root.dir, 'audit-key.pub.pem');
  const started = await startTestKeyd(root.dir, pki, {
    audit: {
      file: join(root.dir, 'audit.log'),
      checkpoints: { intervalMs: 200, lines: 1000, publicKeyFile: pubPath },
      sink: { syslogTls: `127.0.0.1:${port}`, ca: pki.caPath, serverName: 'localhost' },
    },
  });
  keyd = started.keyd;
  auditPath = started.config.audit.file;
});

after(async () => {
  await keyd?.close();
  await receiver?.close();
  await root?.cleanup();
});

function verifyCli(file: string, pub?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [KEYD_CLI, 'audit', 'verify', file, ...(pub ? ['--audit-pubkey', pub] : [])], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Edits line `n` (1-based) with `edit` and recomputes every later `prev`: what someone who can write the file can do. */
function rechain(text: string, n: number, edit: (line: Record<string, unknown>) => void): string {
  const lines = text.split('\n').filter(Boolean);
  let prev = n === 1 ? AUDIT_GENESIS : createHash('sha256').update(lines[n - 2]).digest('hex');
  for (let i = n - 1; i < lines.length; i++) {
    const obj = JSON.parse(lines[i]) as Record<string, unknown>;
    obj.prev = prev;
    if (i === n - 1) edit(obj);
    lines[i] = JSON.stringify(obj);
    prev = createHash('sha256').update(lines[i]).digest('hex');
  }
  return lines.join('\n') + '\n';
}

test('keyd signs checkpoints and ships every line to a syslog receiver over TLS, also across a cut connection', async () => {
  const admin = await connectKeydAdmin(tlsClientOptions(pki, 'admin', keyd!.tlsAddress!));
  const keyId = (await admin.putKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, ['a.example'])).keyId;
  admin.close();
  const rk = await connectRemoteKey({ ...tlsClientOptions(pki, 'front', keyd!.tlsAddress!), keyId });
  try {
    for (let i = 0; i < 5; i++) await rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), { tlsVersion: 'TLSv1.3', connectionId: `before-${i}` }, new AbortController().signal);
    await sleep(300);
    receiver.cut();
    for (let i = 0; i < 5; i++) await rk.sign(SignatureScheme.ecdsa_secp256r1_sha256, certificateVerifyInput(), { tlsVersion: 'TLSv1.3', connectionId: `during-${i}` }, new AbortController().signal);
  } finally {
    await rk.close();
  }
  const metricsText = (await fetchText(`http://127.0.0.1:${keyd!.metricsAddress!.port}/metrics`)).text;
  assert.ok(metricValue(metricsText, 'keyd_audit_sink_lines_total', { outcome: 'sent' }) > 0);
  await keyd!.close();
  keyd = undefined;

  const fileLines = (await readFile(auditPath, 'utf8')).split('\n').filter(Boolean);
  // Every line reached the receiver as written, in order (the sink waits for the reconnect
  // at close). Lines written just before the cut are sent again after it: a repeat is the
  // same line, with the same seq.
  const seqOf = (l: string): number => (JSON.parse(l) as { seq: number }).seq;
  const bySeq = new Map<number, string>();
  for (let i = 0; i < 50; i++) {
    for (const m of receiver.messages) {
      const seen = bySeq.get(seqOf(m.msg));
      assert.ok(seen === undefined || seen === m.msg, 'a repeated line is identical');
      bySeq.set(seqOf(m.msg), m.msg);
    }
    if (bySeq.size >= fileLines.length) break;
    await sleep(50);
  }
  assert.deepEqual(receiver.errors, []);
  assert.deepEqual([...bySeq.keys()].sort((a, b) => a - b).map((k) => bySeq.get(k)), fileLines);
  assert.ok(receiver.messages.every((m) => m.pri === 110 && m.app === 'keyd' && m.msgid === 'audit'));

  const ops = fileLines.map((l) => (JSON.parse(l) as { op: string }).op);
  assert.equal(ops[0], 'keyd-start');
  assert.equal(ops[1], 'checkpoint', 'a checkpoint right after start');
  assert.equal(ops.at(-1), 'checkpoint', 'and one after keyd-stop');
  assert.ok(ops.filter((o) => o === 'checkpoint').length >= 3, 'and one while running');

  const pub = createPublicKey(await readFile(pubPath));
  const r = await verifyAuditLog(auditPath, { auditPublicKey: pub });
  assert.equal(r.ok, true, JSON.stringify(r.problem));
  assert.equal(r.signed?.auditKey, keyIdOf(pub));
  assert.equal(r.signed?.unsignedTail, 0);
  const cli = verifyCli(auditPath, pubPath);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`checkpoint\\(s\\) signed by audit key ${keyIdOf(pub)} verified, the last at seq ${fileLines.length} \\(line ${fileLines.length}\\); no line after it`));
});

test('a middle line edited and the chain recomputed: the chain verifies, the signed checkpoints do not', async () => {
  const text = await readFile(auditPath, 'utf8');
  const lines = text.split('\n').filter(Boolean);
  const target = lines.findIndex((l) => l.includes('"connectionId":"before-2"')) + 1;
  assert.ok(target > 1);
  const tampered = join(root.dir, 'rechained.log');
  await writeFile(tampered, rechain(text, target, (l) => (l.outcome = 'refused')));

  // The hash chain alone cannot tell.
  assert.equal((await verifyAuditLog(tampered)).ok, true);
  const plain = verifyCli(tampered);
  assert.equal(plain.status, 0);
  assert.match(plain.stdout, /checkpoint\(s\) not checked: give --audit-pubkey/);

  // The first checkpoint after the edited line no longer verifies.
  const firstCheckpointAfter = lines.findIndex((l, i) => i >= target && l.includes('"op":"checkpoint"')) + 1;
  const lastGood = lines.slice(0, target - 1).reduce((n, l, i) => (l.includes('"op":"checkpoint"') ? i + 1 : n), 0);
  const cli = verifyCli(tampered, pubPath);
  assert.equal(cli.status, 1, cli.stdout + cli.stderr);
  assert.equal(
    cli.stdout,
    `${tampered}:${firstCheckpointAfter}: rechained: line ${firstCheckpointAfter} (seq ${firstCheckpointAfter}): the checkpoint's signature does not cover the chain as it is now: a line between line ${lastGood} (the last checkpoint that verifies) and line ${firstCheckpointAfter} was changed and every later "prev" recomputed (or the checkpoint itself was edited)\n`,
  );

  // The receiver kept the line as it was written.
  const shipped = receiver.messages.find((m) => (JSON.parse(m.msg) as { seq: number }).seq === target);
  assert.equal((JSON.parse(shipped!.msg) as { outcome: string }).outcome, 'ok');
});

test('checkpoints removed and the chain recomputed, or signed by another key, are reported', async () => {
  const text = await readFile(auditPath, 'utf8');
  let stripped = text
    .split('\n')
    .filter((l) => l && !l.includes('"op":"checkpoint"'))
    .map((l, i) => JSON.stringify({ ...(JSON.parse(l) as object), seq: i + 1 }))
    .join('\n');
  stripped = rechain(stripped + '\n', 1, () => undefined);
  const noCheckpoints = join(root.dir, 'stripped.log');
  await writeFile(noCheckpoints, stripped);
  assert.equal((await verifyAuditLog(noCheckpoints)).ok, true);
  const cli = verifyCli(noCheckpoints, pubPath);
  assert.equal(cli.status, 1);
  assert.match(cli.stdout, /: unsigned: no checkpoint signed by audit key [0-9a-f]{64}/);

  const otherPub = join(root.dir, 'other.pub.pem');
  await writeFile(otherPub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const wrong = verifyCli(auditPath, otherPub);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stdout, /:2: wrong-key: line 2: the checkpoint is signed by audit key [0-9a-f]{64}, not by the given key [0-9a-f]{64}/);

  const notEd = join(root.dir, 'ec.pub.pem');
  await writeFile(notEd, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const bad = verifyCli(auditPath, notEd);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /not an Ed25519 key/);
});

test('AuditLog: a checkpoint every `lines` lines, at close, and none when nothing is new', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const path = join(root.dir, `unit-${randomBytes(4).toString('hex')}.log`);
  const log = await AuditLog.open(path, { durable: false, checkpoints: { signer: { keyId: keyIdOf(publicKey), privateKey }, intervalMs: 60_000, lines: 4 } });
  for (let i = 0; i < 9; i++) {
    await log.append({ client: 'c', op: 'sign', outcome: 'ok' });
    // Lets the checkpoint that the 4th uncovered line asks for run before the next line.
    await sleep(5);
  }
  await log.checkpoint();
  await log.checkpoint();
  await log.close();
  const ops = (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { op: string }).op);
  assert.deepEqual(ops.map((o) => (o === 'checkpoint' ? 'C' : '.')).join(''), '....C....C.C');
  const r = await verifyAuditLog(path, { auditPublicKey: publicKey });
  assert.equal(r.ok, true);
  assert.equal(r.signed?.verified, 3);
});
