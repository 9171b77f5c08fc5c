/**
 * "No PSK-equivalent secret in the front" for TLS 1.3 external PSKs (docs/tls13-psk.md):
 * `keyward serve --tls13-psk` and `keyward connect` with the PSK in keyd (`--psk-keyd`) or
 * in a key process (`--psk-process`) complete psk_dhe_ke and psk_ke handshakes, then a scan
 * of each front's whole memory finds none of: the PSK (bytes and hex), the Early Secret,
 * the binder key and its finished key, Derive-Secret(ES, "derived", ""), and the psk_ke
 * Handshake Secret, its "derived" secret and Master Secret, all computed here from the PSK
 * (RFC 8446 7.1). With the PSK read in-process (`--psk-file` alone) the same scan finds the
 * PSK in both fronts: the control that shows the scan can fail. keyd's audit names the
 * identity of each step.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { localPsk } from '../../src/keys/localPsk.js';
import { readAudit, type KeydPki } from '../support/keydFixture.js';
import { startConnect, startServe, type KeywardChild } from '../support/keywardCli.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';
import { opensslClient } from '../support/peers.js';
import type { RunResult } from '../support/processes.js';
import { startPskKeyd } from '../support/pskKeyd.js';

const PSK = randomBytes(32);
const IDENTITY = 'tls13-absent';
const ZEROS = Buffer.alloc(32);

/** HKDF-Expand-Label (RFC 8446 7.1) for one SHA-256 block. */
function expandLabel(secret: Buffer, label: string, context: Buffer): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.of(0, 32, full.length), full, Buffer.of(context.length), context]);
  return createHmac('sha256', secret).update(Buffer.concat([info, Buffer.of(1)])).digest();
}

const extract = (salt: Buffer, ikm: Buffer) => createHmac('sha256', salt).update(ikm).digest();
const EMPTY_HASH = createHash('sha256').digest();

/** The PSK-equivalent secrets of RFC 8446 7.1 (psk_ke: the Handshake and Master Secrets too). */
function needles(): Needle[] {
  return schedule().needles;
}

function schedule() {
  const early = extract(ZEROS, PSK);
  const binderKey = expandLabel(early, 'ext binder', EMPTY_HASH);
  const derived1 = expandLabel(early, 'derived', EMPTY_HASH);
  const handshakePskKe = extract(derived1, ZEROS);
  const derived2 = expandLabel(handshakePskKe, 'derived', EMPTY_HASH);
  const master = extract(derived2, ZEROS);
  const needles: Needle[] = [
    { name: 'PSK bytes', bytes: PSK },
    { name: 'PSK hex', bytes: Buffer.from(PSK.toString('hex'), 'latin1') },
    { name: 'Early Secret', bytes: early },
    { name: 'binder key', bytes: binderKey },
    { name: 'binder finished key', bytes: expandLabel(binderKey, 'finished', Buffer.alloc(0)) },
    { name: 'Derive-Secret(ES, "derived", "")', bytes: derived1 },
    { name: 'psk_ke Handshake Secret', bytes: handshakePskKe },
    { name: 'psk_ke Derive-Secret(HS, "derived", "")', bytes: derived2 },
    { name: 'psk_ke Master Secret', bytes: master },
  ];
  return { needles, binderKey, handshakePskKe, master };
}

let root: { dir: string; cleanup: () => Promise<void> };
let kpki: KeydPki;
let keyd: Keyd;
let auditFile: string;
let pskFile: string;
const servers: KeywardChild[] = [];
const cleanups: Array<() => unknown> = [];

before(async () => {
  let put: RunResult;
  ({ root, kpki, keyd, auditFile, pskFile, put } = await startPskKeyd('keyward-tls13-psk-absent-', IDENTITY, PSK.toString('hex')));
  assert.equal(put.code, 0, put.stderr);
});

after(async () => {
  for (const c of cleanups) c();
  await Promise.all(servers.map((s) => s.stop()));
  await keyd?.close();
  await root?.cleanup();
});

async function serve(source: string[]): Promise<KeywardChild> {
  const s = await startServe([...source, '--tls13-psk', '--tls13-psk-ke', '--alpn', 'http/1.1']);
  servers.push(s);
  return s;
}

/** `keyward connect` over TLS 1.3 with the PSK; resolves once connected (the connection stays open). */
async function connected(port: number, source: string[], pskKe: boolean): Promise<ChildProcess> {
  const args = [`127.0.0.1:${port}`, ...source, '--psk-identity', IDENTITY, '--tls-version', '1.3', '--alpn', 'http/1.1', ...(pskKe ? ['--tls13-psk-ke'] : [])];
  const { child, stderr } = await startConnect(args, cleanups);
  assert.match(stderr, new RegExp(`^connected version=TLSv1\\.3 suite=TLS_AES_128_GCM_SHA256 group=${pskKe ? '-' : '(X25519|X25519MLKEM768)'} sigalg=- alpn=http/1.1 subject=- psk=${IDENTITY}$`, 'm'));
  return child;
}

/** An openssl s_client psk_dhe_ke handshake with a page request. */
async function opensslHandshake(port: number): Promise<void> {
  const r = await opensslClient(port, {
    args: ['-tls1_3', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-alpn', 'http/1.1'],
    input: 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    waitFor: /HTTP\/1\.1 200/,
    timeoutMs: 10_000,
  });
  assert.match(r.stdout, /HTTP\/1\.1 200/, r.stdout + r.stderr);
}

async function scan(pid: number): Promise<string[]> {
  const r = await scanProcessMemory(pid, needles());
  assert.ok(r.bytesScanned > 10_000_000 && r.regions > 10, `scan too small: ${JSON.stringify(r)}`);
  return r.found;
}

/** Both modes through the server, then each front scanned while its connection is open. */
async function runAndScan(source: string[]): Promise<{ server: string[]; dheClient: string[]; keClient: string[] }> {
  const s = await serve(source);
  await opensslHandshake(s.port);
  const dhe = await connected(s.port, source, false);
  const ke = await connected(s.port, source, true);
  return { server: await scan(s.pid), dheClient: await scan(dhe.pid!), keClient: await scan(ke.pid!) };
}

describe('TLS 1.3 external PSK: no PSK-equivalent secret in either front', { timeout: 120_000 }, () => {
  test('the needles are the key schedule\'s: what a holder answers derives from them', async () => {
    const { binderKey, handshakePskKe, master } = schedule();
    const holder = localPsk(new Map([[IDENTITY, PSK]]));
    const ctx = { tlsVersion: 'TLSv1.3' as const };
    const signal = new AbortController().signal;
    const transcriptHash = randomBytes(32);
    const req = { identity: Buffer.from(IDENTITY), hash: 'sha256' as const, transcriptHash };
    const binder = await holder.tls13Binder(req, ctx, signal);
    assert.deepEqual(Buffer.from(binder), createHmac('sha256', expandLabel(binderKey, 'finished', Buffer.alloc(0))).update(transcriptHash).digest());
    const hs = await holder.tls13HandshakeSecrets({ ...req, dheSecret: null }, ctx, signal);
    assert.deepEqual(Buffer.from(hs.client), expandLabel(handshakePskKe, 'c hs traffic', transcriptHash));
    const ap = await holder.tls13ApplicationSecrets({ ...req, dheSecret: null }, ctx, signal);
    assert.deepEqual(Buffer.from(ap.server), expandLabel(master, 's ap traffic', transcriptHash));
    await holder.close();
  });

  test('control: the PSK read in-process (--psk-file alone) is found in the server and in the client', async () => {
    const found = await runAndScan(['--psk-file', pskFile]);
    for (const [front, names] of Object.entries(found)) assert.ok(names.includes('PSK bytes'), `${front}: expected the in-process PSK; found: ${names.join(', ') || 'nothing'}`);
  });

  test('--psk-process: neither front holds any of them', async () => {
    const found = await runAndScan(['--psk-process', '--psk-file', pskFile]);
    assert.deepEqual(found, { server: [], dheClient: [], keClient: [] });
  });

  test('--psk-keyd (mutual TLS): neither front holds any of them; keyd audits each step with the identity', async () => {
    const front = kpki.clients.front;
    const source = ['--psk-keyd', '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`, '--keyd-ca', kpki.caPath, '--keyd-cert', front.certPath, '--keyd-key', front.keyPath];
    const found = await runAndScan(source);
    assert.deepEqual(found, { server: [], dheClient: [], keClient: [] });
    await keyd.audit.flush();
    const lines = (await readAudit(auditFile)).filter((l) => l.client === 'cn:front' && String(l.op).startsWith('tls13-psk-'));
    assert.ok(lines.every((l) => l.pskIdentity === Buffer.from(IDENTITY).toString('hex') && l.outcome === 'ok'), JSON.stringify(lines));
    // Three handshakes at the server (openssl and two connects), two of them with a keyward client.
    const count = (op: string) => lines.filter((l) => l.op === op).length;
    assert.equal(count('tls13-psk-verify-binder'), 3);
    assert.equal(count('tls13-psk-binder'), 2);
    assert.equal(count('tls13-psk-handshake-secrets'), 5);
    assert.equal(count('tls13-psk-application-secrets'), 5);
  });
});
