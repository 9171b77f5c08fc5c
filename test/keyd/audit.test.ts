import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AUDIT_GENESIS, AuditLog, verifyAuditLog } from '../../src/keyd/audit.js';
import { KEYD_CLI, tempDir } from '../support/keydFixture.js';

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
  const path = await writeLog('basic.log', 50);
  const ls = await lines(path);
  assert.equal(ls.length, 50);
  const first = JSON.parse(ls[0]) as Record<string, unknown>;
  assert.equal(first.seq, 1);
  assert.equal(first.prev, AUDIT_GENESIS);
  assert.deepEqual(Object.keys(first), ['seq', 'time', 'prev', 'client', 'op', 'outcome', 'keyId', 'scheme', 'serverName', 'latencyMs']);
  assert.deepEqual(
    ls.map((l) => (JSON.parse(l) as { serverName: string }).serverName),
    Array.from({ length: 50 }, (_, i) => `s${i}.example`),
  );
  const r = await verifyAuditLog(path);
  assert.deepEqual({ ok: r.ok, lines: r.lines, lastSeq: r.lastSeq }, { ok: true, lines: 50, lastSeq: 50 });
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
