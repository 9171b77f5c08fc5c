import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AUDIT_GENESIS, AuditLog, verifyAuditLog, type AuditRecord } from '../../src/keyd/audit.js';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { connectRemoteKey, type RemoteKey } from '../../src/keys/remoteKey.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';
import { KEYD_CLI, certificateVerifyInput, startTestKeyd, tempDir } from '../support/keydFixture.js';

let root: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  root = await tempDir('keyd-audit-');
});
after(async () => {
  await root.cleanup();
});

async function writeLog(name: string, n: number): Promise<string> {
  const path = join(root.dir, name);
  const log = await AuditLog.open(path);
  await Promise.all(Array.from({ length: n }, (_, i) => log.append({ client: 'cn:front', op: 'sign', outcome: 'ok', keyId: 'ab'.repeat(32), scheme: 'ed25519', serverName: `s${i}.example`, latencyMs: i })));
  await log.close();
  return path;
}

async function lines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').slice(0, -1);
}

async function rewrite(path: string, ls: string[]): Promise<void> {
  await writeFile(path, ls.map((l) => l + '\n').join(''));
}

test('lines are chained, numbered, in call order, and carry no more than the record', async () => {
  const before = Date.now();
  const path = await writeLog('basic.log', 50);
  const after = Date.now();
  const ls = await lines(path);
  assert.equal(ls.length, 50);
  const first = JSON.parse(ls[0]) as Record<string, unknown>;
  assert.equal(first.seq, 1);
  assert.equal(first.prev, AUDIT_GENESIS);
  assert.deepEqual(Object.keys(first), ['seq', 'time', 'prev', 'client', 'op', 'outcome', 'keyId', 'scheme', 'serverName', 'latencyMs']);
  for (const l of ls) {
    const time = (JSON.parse(l) as { time: string }).time;
    assert.equal(new Date(time).toISOString(), time, 'ISO 8601 in UTC, as toISOString writes it');
    assert.ok(Date.parse(time) >= before && Date.parse(time) <= after, `${time} is the time of writing`);
  }
  assert.deepEqual(
    ls.map((l) => (JSON.parse(l) as { serverName: string }).serverName),
    Array.from({ length: 50 }, (_, i) => `s${i}.example`),
  );
  const r = await verifyAuditLog(path);
  assert.deepEqual({ ok: r.ok, lines: r.lines, lastSeq: r.lastSeq }, { ok: true, lines: 50, lastSeq: 50 });
});

test('each line is exactly the JSON of its record, whatever the text in it', async () => {
  const path = join(root.dir, 'escapes.log');
  const log = await AuditLog.open(path);
  const reason = 'quote " backslash \\ newline \n tab \t nul \u0000 line-sep \u2028 é 鍵 😀';
  await log.append({ client: 'cn:a"b', op: 'sign', outcome: 'refused', reason, latencyMs: 0.125, bound: true });
  // The same values again: a line built from kept fragments is the same text.
  await log.append({ client: 'cn:a"b', op: 'sign', outcome: 'refused', reason, latencyMs: 0.125, bound: true });
  await log.close();
  const [line, again] = await lines(path);
  assert.equal(JSON.stringify({ ...JSON.parse(again), seq: 1, prev: AUDIT_GENESIS, time: JSON.parse(line).time }), line);
  const parsed = JSON.parse(line) as Record<string, unknown>;
  assert.equal(parsed.reason, reason);
  assert.equal(parsed.client, 'cn:a"b');
  assert.equal(parsed.bound, true);
  assert.equal(line, JSON.stringify(parsed), 'the line is what JSON.stringify makes of it');
  assert.equal((await verifyAuditLog(path)).ok, true);
});

test('reopening continues the chain', async () => {
  const path = await writeLog('resume.log', 3);
  const log = await AuditLog.open(path);
  assert.equal(log.head.seq, 3);
  await log.append({ client: '-', op: 'keyd-start', outcome: 'ok' });
  await log.close();
  const r = await verifyAuditLog(path);
  assert.equal(r.ok, true);
  assert.equal(r.lastSeq, 4);
});

test('verify names an edited line', async () => {
  const path = await writeLog('edited.log', 10);
  const ls = await lines(path);
  ls[4] = ls[4].replace('"outcome":"ok"', '"outcome":"refused"');
  await rewrite(path, ls);
  const r = await verifyAuditLog(path);
  assert.equal(r.ok, false);
  assert.deepEqual({ line: r.problem?.line, kind: r.problem?.kind }, { line: 5, kind: 'edited' });
  // An edited seq on a line that still chains is the line itself.
  const path2 = await writeLog('edited-seq.log', 5);
  const l2 = await lines(path2);
  l2[2] = l2[2].replace('"seq":3', '"seq":33');
  await rewrite(path2, l2);
  const r2 = await verifyAuditLog(path2);
  assert.equal(r2.problem?.kind, 'edited');
  assert.equal(r2.problem?.line, 3);
});

test('verify names a removed line', async () => {
  const path = await writeLog('removed.log', 10);
  const ls = await lines(path);
  ls.splice(6, 1);
  await rewrite(path, ls);
  const r = await verifyAuditLog(path);
  assert.deepEqual(r.problem, { line: 7, kind: 'removed', message: '1 line(s) removed before line 7 (seq 7 missing)' });
  const first = await writeLog('removed-first.log', 3);
  await rewrite(first, (await lines(first)).slice(1));
  assert.deepEqual((await verifyAuditLog(first)).problem?.line, 1);
  assert.equal((await verifyAuditLog(first)).problem?.kind, 'removed');
});

test('verify names reordered lines', async () => {
  const path = await writeLog('reordered.log', 10);
  const ls = await lines(path);
  [ls[3], ls[4]] = [ls[4], ls[3]];
  await rewrite(path, ls);
  const r = await verifyAuditLog(path);
  assert.equal(r.problem?.kind, 'reordered');
  assert.equal(r.problem?.line, 4);
  // A line moved earlier.
  const p2 = await writeLog('moved.log', 10);
  const l2 = await lines(p2);
  const [moved] = l2.splice(8, 1);
  l2.splice(2, 0, moved);
  await rewrite(p2, l2);
  const r2 = await verifyAuditLog(p2);
  assert.equal(r2.problem?.line, 3);
  assert.equal(r2.problem?.kind, 'reordered');
});

test('garbage and a torn last line are reported; a torn log is not resumed', async () => {
  const path = await writeLog('garbage.log', 4);
  const ls = await lines(path);
  ls[1] = 'not json';
  await rewrite(path, ls);
  assert.deepEqual((await verifyAuditLog(path)).problem?.kind, 'malformed');
  const torn = await writeLog('torn.log', 3);
  await appendFile(torn, '{"seq":4,"ti');
  const r = await verifyAuditLog(torn);
  assert.deepEqual({ line: r.problem?.line, kind: r.problem?.kind }, { line: 4, kind: 'truncated' });
  const before = await readFile(torn);
  await assert.rejects(AuditLog.open(torn), /incomplete line/);
  assert.deepEqual(await readFile(torn), before);
});

test('`keyward audit verify` exits 0 on a good log and 1 naming the first bad line', async () => {
  const good = await writeLog('cli-good.log', 5);
  const ok = spawnSync(process.execPath, [KEYD_CLI, 'audit', 'verify', good], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /ok, 5 line\(s\); head seq 5/);
  const bad = await writeLog('cli-bad.log', 5);
  const ls = await lines(bad);
  ls.splice(2, 1);
  await rewrite(bad, ls);
  const res = spawnSync(process.execPath, [KEYD_CLI, 'audit', 'verify', bad], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(res.status, 1);
  assert.equal(res.stdout.trim(), `${bad}:3: removed: 1 line(s) removed before line 3 (seq 3 missing)`);
  const missing = spawnSync(process.execPath, [KEYD_CLI, 'audit', 'verify', join(root.dir, 'nope.log')], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read/);
});

const REC: AuditRecord = { client: 'cn:front', op: 'sign', outcome: 'ok', keyId: 'cd'.repeat(32), scheme: 'ecdsa_secp256r1_sha256' };

/** Polls `cond` every few ms for at most `ms`. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(2);
  }
  return true;
}

/** A FIFO with a non-blocking reader, so the log's writes and fsyncs go to a pipe. */
function makeFifo(name: string): { path: string; readerFd: number; read: () => string } {
  const path = join(root.dir, name);
  const r = spawnSync('mkfifo', ['-m', '600', path], { timeout: 5_000 });
  assert.equal(r.status, 0, 'mkfifo');
  const readerFd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  const read = (): string => {
    const buf = Buffer.alloc(1 << 16);
    try {
      return buf.subarray(0, readSync(readerFd, buf)).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return '';
      throw e;
    }
  };
  return { path, readerFd, read };
}

test('batch mode: the line is in the file when append resolves; its fsync follows within the interval', async () => {
  const path = join(root.dir, 'batch.log');
  const log = await AuditLog.open(path, { syncIntervalMs: 30, syncLines: 1000 });
  try {
    await log.append({ ...REC, serverName: 'one.example' });
    // Taken at once: the fsync is due only 30 ms later.
    const stats = log.stats;
    const ls = await lines(path);
    assert.equal(ls.length, 1);
    assert.equal((JSON.parse(ls[0]) as { serverName: string }).serverName, 'one.example');
    assert.deepEqual(stats, { written: 1, synced: 0, syncs: 0 });
    assert.ok(await until(() => log.stats.synced === 1, 2_000), 'fsynced within the interval');
    assert.equal(log.stats.syncs, 1);
    // Many lines in one turn share one write and one fsync.
    await Promise.all(Array.from({ length: 20 }, () => log.append(REC)));
    assert.equal(log.stats.written, 21);
    assert.ok(await until(() => log.stats.synced === 21, 2_000));
    assert.equal(log.stats.syncs, 2);
  } finally {
    await log.close();
  }
  assert.equal((await verifyAuditLog(path)).lines, 21);
});

test('batch mode: syncLines waiting lines start an fsync without waiting for the timer', async () => {
  const path = join(root.dir, 'batch-lines.log');
  const log = await AuditLog.open(path, { syncIntervalMs: 60_000, syncLines: 8 });
  try {
    for (let i = 0; i < 5; i++) await log.append(REC);
    await sleep(30);
    assert.equal(log.stats.synced, 0, 'below syncLines and before the interval: not yet');
    await Promise.all(Array.from({ length: 3 }, () => log.append(REC)));
    assert.ok(await until(() => log.stats.synced === 8, 2_000), 'the 8th line triggers the fsync');
  } finally {
    await log.close();
  }
  assert.equal(log.stats.synced, 8);
});

test('always mode: append resolves only after an fsync that covers the line', async () => {
  const path = join(root.dir, 'always.log');
  const log = await AuditLog.open(path, { sync: 'always' });
  try {
    await log.append(REC);
    assert.deepEqual(log.stats, { written: 1, synced: 1, syncs: 1 });
    // Lines arriving while one fsync runs share the next one.
    let checked = 0;
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        log.append({ ...REC, latencyMs: i }).then(() => {
          assert.ok(log.stats.synced >= i + 2, `line ${i + 2} synced when its append resolved`);
          checked += 1;
        }),
      ),
    );
    assert.equal(checked, 30);
    assert.ok(log.stats.syncs < 31, `group commit: ${log.stats.syncs} fsyncs for 31 lines`);
  } finally {
    await log.close();
  }
});

test('close writes and fsyncs what is pending; later appends are refused', async () => {
  const path = join(root.dir, 'close.log');
  const log = await AuditLog.open(path, { syncIntervalMs: 60_000 });
  const p = log.append(REC);
  await log.close();
  await p;
  assert.deepEqual(log.stats, { written: 1, synced: 1, syncs: 1 });
  await assert.rejects(log.append(REC), /closed/);
  await assert.rejects(AuditLog.open(path, { sync: 'sometimes' as 'always' }), /"batch" or "always"/);
  await assert.rejects(AuditLog.open(path, { syncLines: 0 }), /syncLines/);
});

test('a failed write rejects the append and every later one', async () => {
  // /dev/full accepts the open and fails every write with ENOSPC.
  const log = await AuditLog.open('/dev/full');
  try {
    await assert.rejects(log.append(REC), /audit log \/dev\/full write failed: ENOSPC/);
    assert.match(log.failed?.message ?? '', /ENOSPC/);
    await assert.rejects(log.append(REC), /ENOSPC/);
    assert.equal(log.stats.written, 0);
  } finally {
    await log.close();
  }
});

test('a failed fsync marks the log failed: later appends are refused', async () => {
  // A pipe takes writes but refuses fsync (EINVAL).
  const fifo = makeFifo('sync-fails.fifo');
  try {
    const log = await AuditLog.open(fifo.path, { syncIntervalMs: 1 });
    try {
      await log.append(REC);
      assert.match(fifo.read(), /"op":"sign"/);
      assert.ok(await until(() => log.failed !== undefined, 2_000), 'the fsync failure is noticed');
      assert.match(log.failed!.message, /fsync failed: EINVAL/);
      await assert.rejects(log.append(REC), /fsync failed/);
    } finally {
      await log.close();
    }
  } finally {
    closeSync(fifo.readerFd);
  }
});

test('keyd returns a result only after its audit line is written, and refuses results when it cannot write', async () => {
  const fifo = makeFifo('keyd-audit.fifo');
  const dir = join(root.dir, 'keyd');
  let readerOpen = true;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { keyd } = await startTestKeyd(
    root.dir,
    undefined,
    { listen: { unix: join(root.dir, 'audit-keyd.sock') }, store: { dir, passphraseEnv: 'KEYD_TEST_PASSPHRASE', scrypt: { N: 1024, r: 8, p: 1 } }, audit: { file: fifo.path, durable: false } },
    {
      keys: [
        { ops: new LocalKey(privateKey), serverNames: ['a.example'] },
        { ops: new LocalKey(rsa.privateKey), serverNames: ['b.example'] },
      ],
    },
  );
  try {
    const rk = await connectRemoteKey({ addresses: [`unix:${keyd.unixPath}`], serverName: 'a.example', deadlineMs: 5_000 });
    const rsaKey = await rk.client.key({ serverName: 'b.example' });
    try {
      fifo.read();
      // P-256 is signed in the turn that read the request, RSA on the thread pool: both
      // results leave keyd after their audit lines, so the lines are in the pipe already.
      const cases: Array<[RemoteKey, SignatureScheme, string]> = [
        [rk, SignatureScheme.ecdsa_secp256r1_sha256, 'fifo-1'],
        [rsaKey, SignatureScheme.rsa_pss_rsae_sha256, 'fifo-rsa'],
      ];
      for (const [key, sch, id] of cases) {
        const m = certificateVerifyInput();
        const sig = await key.sign(sch, m, { tlsVersion: 'TLSv1.3', serverName: 'a.example', connectionId: id }, new AbortController().signal);
        assert.ok(verifySignature(key.publicKey, sch, m, sig));
        const line = fifo.read().split('\n').find((l) => l.includes(`"connectionId":"${id}"`));
        assert.ok(line, `${id}: the audit line arrived before the result`);
        assert.equal((JSON.parse(line) as { outcome: string }).outcome, 'ok');
      }
      const scheme = SignatureScheme.ecdsa_secp256r1_sha256;
      // No reader: the next write fails (EPIPE), and the operation gets no result.
      closeSync(fifo.readerFd);
      readerOpen = false;
      await assert.rejects(
        rk.sign(scheme, certificateVerifyInput(), { tlsVersion: 'TLSv1.3', connectionId: 'fifo-2' }, new AbortController().signal),
        (e: unknown) => e instanceof KeyOperationError && e.code === 'unavailable' && /audit log unavailable/.test(e.message),
      );
      assert.match(keyd.audit.failed?.message ?? '', /write failed: EPIPE/);
      for (const [key, sch] of cases) {
        await assert.rejects(
          key.sign(sch, certificateVerifyInput(), { tlsVersion: 'TLSv1.3' }, new AbortController().signal),
          (e: unknown) => e instanceof KeyOperationError && e.code === 'unavailable',
        );
      }
    } finally {
      await rk.close();
    }
  } finally {
    await keyd.close();
    if (readerOpen) closeSync(fifo.readerFd);
  }
});
