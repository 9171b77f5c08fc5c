/**
 * "The PSK is absent from the front": `keyward serve --psk-keyd` (the PSK put into keyd
 * with `keyward keys put-psk`) and `keyward serve --psk-process --psk-file` complete TLS 1.2
 * PSK and ECDHE_PSK handshakes with openssl s_client, then a scan of the front's whole
 * memory finds neither the PSK's bytes nor its hex text. The same scan of a front with
 * the PSK in-process (`serve --psk-file` alone) finds it, so the test can fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import { readAudit, type KeydPki } from '../support/keydFixture.js';
import { startServe, type KeywardChild } from '../support/keywardCli.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';
import { opensslClient } from '../support/peers.js';
import type { RunResult } from '../support/processes.js';
import { startPskKeyd } from '../support/pskKeyd.js';

const PSK = randomBytes(32);
const IDENTITY = 'psk-absent-client';
const SUITES = ['PSK-AES128-GCM-SHA256', 'ECDHE-PSK-CHACHA20-POLY1305'];
const needles: Needle[] = [
  { name: 'PSK bytes', bytes: PSK },
  { name: 'PSK hex', bytes: Buffer.from(PSK.toString('hex'), 'latin1') },
  { name: 'PSK HEX', bytes: Buffer.from(PSK.toString('hex').toUpperCase(), 'latin1') },
];

let root: { dir: string; cleanup: () => Promise<void> };
let kpki: KeydPki;
let keyd: Keyd;
let auditFile: string;
let pskFile: string;
let put: RunResult;
const servers: KeywardChild[] = [];

/** PSK and ECDHE_PSK handshakes (each with a page request) that must succeed. */
async function pskHandshakes(port: number): Promise<void> {
  for (const cipher of SUITES) {
    const r = await opensslClient(port, {
      args: ['-tls1_2', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-cipher', cipher, '-alpn', 'http/1.1'],
      input: 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      waitFor: /HTTP\/1\.1 200/,
      timeoutMs: 10_000,
    });
    assert.match(r.stdout, new RegExp(`Cipher is ${cipher}`), `${cipher}: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /HTTP\/1\.1 200/, `${cipher}: no page: ${r.stdout}\n${r.stderr}`);
  }
  // A wrong PSK for the same identity fails (the master secret really depends on it).
  const wrong = await opensslClient(port, { args: ['-tls1_2', '-psk', randomBytes(32).toString('hex'), '-psk_identity', IDENTITY, '-cipher', SUITES[0]], timeoutMs: 10_000 });
  assert.match(wrong.stdout + wrong.stderr, /alert bad record mac|alert decrypt error/, wrong.stderr);
}

async function scan(pid: number): Promise<string[]> {
  const r = await scanProcessMemory(pid, needles);
  assert.ok(r.bytesScanned > 10_000_000 && r.regions > 10, `scan too small: ${JSON.stringify(r)}`);
  return r.found;
}

before(async () => {
  // Provisioned as an operator would: keyward keys put-psk --identity ID --psk-file F.
  ({ root, kpki, keyd, auditFile, pskFile, put } = await startPskKeyd('keyward-psk-absent-', IDENTITY, PSK.toString('hex'), '# test PSKs\n'));
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout, `stored PSK ${IDENTITY}\n`);
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await keyd?.close();
  await root?.cleanup();
});

describe('the PSK is absent from the serving process', { timeout: 120_000 }, () => {
  test('control: serve --psk-file (PSK in-process) holds it, and the scan finds it', async () => {
    const s = await startServe(['--psk-file', pskFile]);
    servers.push(s);
    await pskHandshakes(s.port);
    const found = await scan(s.pid);
    assert.ok(found.includes('PSK bytes'), `expected the PSK in an in-process-PSK server; found: ${found.join(', ') || 'nothing'}`);
  });

  test('serve --psk-process --psk-file: no PSK in the front; the key process has it', async () => {
    const s = await startServe(['--psk-process', '--psk-file', pskFile]);
    servers.push(s);
    assert.match(s.stdout(), /PSKs in a separate key process \(pid \d+\); this process never read .*; protection: non-dumpable; processes of this user \(this one included\) cannot trace it or read its memory/);
    await pskHandshakes(s.port);
    assert.deepEqual(await scan(s.pid), [], 'PSK found in the front');
    const pskPid = Number(/key process \(pid (\d+)/.exec(s.stdout())?.[1]);
    assert.ok(pskPid > 0, s.stdout());
    assert.ok((await scan(pskPid)).includes('PSK bytes'), 'the key process should hold the PSK');
  });

  test('serve --psk-keyd (mutual TLS): no PSK in the front; keyd audited put-psk and the master secrets', async () => {
    const front = kpki.clients.front;
    const s = await startServe([
      '--psk-keyd',
      '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`,
      '--keyd-ca', kpki.caPath, '--keyd-cert', front.certPath, '--keyd-key', front.keyPath,
    ]);
    servers.push(s);
    assert.match(s.stdout(), /PSKs in keyd/);
    await pskHandshakes(s.port);
    assert.deepEqual(await scan(s.pid), [], 'PSK found in the front');
    const audit = await readAudit(auditFile);
    assert.ok(audit.some((l) => l.op === 'put-psk' && l.outcome === 'ok'), `no put-psk audit line: ${JSON.stringify(audit.map((l) => l.op))}`);
    assert.ok(audit.filter((l) => l.client === 'cn:front' && /psk/i.test(String(l.op)) && l.outcome === 'ok').length >= 2, 'PSK operations of the front not audited');
  });
});
