/**
 * `keyward proxy` with PSKs, as an IoT deployment runs it (a PSK-only front before an MQTT
 * broker, a PSK client toward one), against real peers:
 * - server mode, the PSKs in a key process (flags): openssl s_client -psk over TLS 1.3 and
 *   TLS 1.2 and gnutls-cli over TLS 1.3 reach an upstream; the access log and the PROXY v2
 *   header name the identity; a scan of the proxy's memory finds no PSK-equivalent secret
 *   (and finds the PSK with --psk-file alone, the control); a device added to the PSK file
 *   connects after SIGHUP;
 * - server mode with a certificate and PSKs on one port (--tls13-psk-identity);
 * - server mode from a configuration file, the PSKs in keyd: SIGHUP turns TLS 1.3 PSKs on
 *   and limits TLS 1.2 to the one suite listed;
 * - client mode, the PSK in keyd: openssl s_server -nocert -psk as the target over TLS 1.3
 *   (the groups and suite the file asks for), then over TLS 1.2 after a reload; the same scan;
 * - a reload that would switch modes is refused;
 * - usage errors naming the flag or the file's field, never showing the PSK; --insecure.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCa } from '../../src/cli/pki.js';
import type { Keyd } from '../../src/keyd/server.js';
import { sServer, stopSServers } from '../client/clientHelpers.js';
import { fetchText, metricValue, type KeydPki } from '../support/keydFixture.js';
import type { RunResult } from '../support/processes.js';
import { startPskKeyd } from '../support/pskKeyd.js';
import { runKeyward, startKeyward, type KeywardChild } from '../support/keywardCli.js';
import { scanProcessMemory, type Needle } from '../support/memscan.js';
import { gnutlsCli, opensslClient } from '../support/peers.js';
import { connectTls, echoHandler, logLines, makeProxyPki, startUpstream, waitFor, type TestUpstream } from './harness.js';

const READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;
const ID = 'sensor-7';
const PSK = randomBytes(32);
const HEX = PSK.toString('hex');

let root: { dir: string; cleanup: () => Promise<void> };
let kpki: KeydPki;
let keyd: Keyd;
let pskFile: string;
let up: TestUpstream;
const children: KeywardChild[] = [];

before(async () => {
  let put: RunResult;
  ({ root, kpki, keyd, pskFile, put } = await startPskKeyd('keyward-proxy-psk-', ID, HEX));
  assert.equal(put.code, 0, put.stderr);
  up = await startUpstream(echoHandler, { expectProxyHeader: true });
});

after(async () => {
  await Promise.all(children.map((c) => c.stop()));
  stopSServers();
  await up?.close();
  await keyd?.close();
  await root?.cleanup();
});

async function proxy(args: string[]): Promise<KeywardChild> {
  const c = await startKeyward(['proxy', ...args], { ready: READY });
  children.push(c);
  return c;
}

/** The keyd link of the `front` client, as a configuration file's section. */
function keydSection() {
  const f = kpki.clients.front;
  return { addresses: [`tls://127.0.0.1:${keyd.tlsAddress!.port}`], ca: kpki.caPath, cert: f.certPath, key: f.keyPath };
}

/** The PSK and what RFC 8446 7.1 derives from it alone: none of it may be in a key-isolated proxy. */
function pskNeedles(): Needle[] {
  const early = createHmac('sha256', Buffer.alloc(32)).update(PSK).digest();
  const label = Buffer.from('tls13 ext binder', 'latin1');
  const emptyHash = createHash('sha256').digest();
  const info = Buffer.concat([Buffer.of(0, 32, label.length), label, Buffer.of(emptyHash.length), emptyHash, Buffer.of(1)]);
  return [
    { name: 'PSK bytes', bytes: PSK },
    { name: 'PSK hex', bytes: Buffer.from(HEX, 'latin1') },
    { name: 'Early Secret', bytes: early },
    { name: 'binder key', bytes: createHmac('sha256', early).update(info).digest() },
  ];
}

async function scan(pid: number): Promise<string[]> {
  const r = await scanProcessMemory(pid, pskNeedles());
  assert.ok(r.bytesScanned > 10_000_000 && r.regions > 10, `scan too small: ${JSON.stringify(r)}`);
  return r.found;
}

/** openssl s_client with the PSK: `line` must come back through the proxy and the echo upstream. */
async function sClient(port: number, args: string[], line: string): Promise<void> {
  const r = await opensslClient(port, { args: [...args, '-psk', HEX, '-psk_identity', ID], input: `${line}\n`, waitFor: line, timeoutMs: 10_000 });
  assert.ok(r.stdout.includes(line), `${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

/** A plaintext connection to a client-mode proxy: sends `line` and leaves. */
function sendPlain(port: number, line: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(`${line}\n`));
    s.on('error', reject);
    s.on('close', () => resolve());
    s.resume();
  });
}

const access = (c: KeywardChild) => logLines(c).filter((l) => l.msg === 'connection');

describe('keyward proxy with PSKs', { timeout: 120_000 }, () => {
  test('server mode, PSK-only, the PSKs in a key process: openssl over TLS 1.3 and 1.2 and gnutls-cli reach the upstream; the identity is logged and sent upstream; no PSK in the proxy', async () => {
    const headersBefore = up.headers.length;
    const c = await proxy(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--proxy-protocol', '--psk-process', '--psk-file', pskFile, '--tls13-psk', '--metrics-listen', '127.0.0.1:0']);
    const start = logLines(c).find((l) => l.msg === 'keyward proxy listening')!;
    assert.match(JSON.stringify(start.psk), /"holder":"PSKs in a separate key process.*"tls12":true,"tls13":true/);
    await sClient(c.port, ['-tls1_3'], 'over TLS 1.3');
    await sClient(c.port, ['-tls1_2'], 'over TLS 1.2');
    const g = await gnutlsCli(c.port, { priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK', args: ['--pskusername', ID, '--pskkey', HEX], input: 'gnutls\n', waitFor: 'gnutls', timeoutMs: 10_000 });
    assert.match(g.stdout, /PSK authentication\. Connected as 'sensor-7'[\s\S]*gnutls/, g.stdout + g.stderr);

    await waitFor(() => access(c).length === 3, 'three access lines', 10_000);
    assert.deepEqual(
      access(c).map((l) => [l.version, l.pskIdentity, l.keyHolder, l.outcome]),
      [
        ['TLSv1.3', ID, 'key-process', 'ok'],
        ['TLSv1.2', ID, 'key-process', 'ok'],
        ['TLSv1.3', ID, 'key-process', 'ok'],
      ],
    );
    assert.deepEqual(
      up.headers.slice(headersBefore).map((h) => h.tls?.pskIdentity),
      [ID, ID, ID],
    );
    const m = await fetchText(String(start.metrics));
    assert.equal(metricValue(m.text, 'keyward_proxy_key_operation_seconds_count', { key_holder: 'key-process', operation: 'psk', outcome: 'ok' }), 1);
    // Two TLS 1.3 handshakes: binder check, handshake and application secrets, resumption master secret each.
    assert.equal(metricValue(m.text, 'keyward_proxy_key_operation_seconds_count', { key_holder: 'key-process', operation: 'tls13-psk', outcome: 'ok' }), 8);
    assert.deepEqual(await scan(c.pid), []);
    assert.ok(!c.stdout().includes(HEX) && !c.stderr().includes(HEX));

    // A new device: its line appended to the file, SIGHUP, and it connects (a new key process reads the file).
    const newPsk = randomBytes(32).toString('hex');
    await appendFile(pskFile, `sensor-8:${newPsk}\n`);
    process.kill(c.pid, 'SIGHUP');
    await waitFor(() => logLines(c).some((l) => l.msg === 'configuration reloaded: new connections use it'), 'the reload line', 10_000);
    const r = await opensslClient(c.port, { args: ['-tls1_3', '-psk', newPsk, '-psk_identity', 'sensor-8'], input: 'new device\n', waitFor: 'new device', timeoutMs: 10_000 });
    assert.ok(r.stdout.includes('new device'), r.stdout + r.stderr);
    await waitFor(() => access(c).some((l) => l.pskIdentity === 'sensor-8' && l.outcome === 'ok'), 'the new device in the access log', 10_000);
    // The control that shows the scan can fail: --psk-file alone reads the PSK into the proxy.
    const inProcess = await proxy(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--proxy-protocol', '--psk-file', pskFile, '--tls13-psk']);
    await sClient(inProcess.port, ['-tls1_3'], 'PSK in the proxy');
    assert.ok((await scan(inProcess.pid)).includes('PSK bytes'), 'the in-process PSK is found');
  });

  test('server mode with a certificate beside the PSKs: a listed identity gets its PSK, a client without one the certificate, on one port', async () => {
    const ppki = await makeProxyPki();
    try {
      const c = await proxy([
        '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--proxy-protocol',
        '--cert', ppki.localhost.chainPath, '--key-process', '--key', ppki.localhost.keyPath,
        '--psk-process', '--psk-file', pskFile, '--tls13-psk', '--tls13-psk-identity', ID,
      ]);
      await sClient(c.port, ['-tls1_3'], 'a device');
      const s = await connectTls(c.port, ppki);
      s.write('a browser\n');
      await new Promise((resolve) => s.once('data', resolve));
      s.destroy();
      await waitFor(() => access(c).length === 2, 'two access lines', 10_000);
      assert.deepEqual(
        access(c).map((l) => [l.sni, l.pskIdentity, l.outcome]),
        [
          [null, ID, 'ok'],
          ['localhost', null, 'ok'],
        ],
      );
    } finally {
      await ppki.cleanup();
    }
  });

  test('server mode from a configuration file, the PSKs in keyd: SIGHUP turns TLS 1.3 PSKs on and keeps TLS 1.2 to the suite listed', async () => {
    const cfg = join(root.dir, 'psk-front.json');
    const write = (extra: Record<string, unknown>) =>
      writeFile(cfg, JSON.stringify({ listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}`, proxyProtocol: true, keyd: keydSection(), psk: { keyd: true, ...extra }, tls: { ciphers: ['TLS_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CCM_8'] } }, null, 2));
    await write({});
    const c = await proxy(['--config', cfg]);
    // TLS 1.2 PSK only for now: a TLS 1.3 client is refused.
    const refused = await opensslClient(c.port, { args: ['-tls1_3', '-psk', HEX, '-psk_identity', ID], timeoutMs: 10_000 });
    assert.match(refused.stdout + refused.stderr, /alert protocol version|no protocols available|wrong version number/, refused.stdout + refused.stderr);
    await sClient(c.port, ['-tls1_2', '-cipher', 'PSK-AES128-CCM8'], 'CCM_8 before the reload');

    await write({ tls13: true });
    process.kill(c.pid, 'SIGHUP');
    await waitFor(() => logLines(c).some((l) => l.msg === 'configuration reloaded: new connections use it'), 'the reload line', 10_000);
    await sClient(c.port, ['-tls1_3'], 'TLS 1.3 after the reload');
    // A device with the wrong key: refused, and the line names the identity it tried.
    await opensslClient(c.port, { args: ['-tls1_3', '-psk', randomBytes(32).toString('hex'), '-psk_identity', ID], timeoutMs: 10_000 });
    await waitFor(() => access(c).length === 4, 'four access lines', 10_000);
    assert.deepEqual(
      access(c).map((l) => [l.version, l.cipher, l.pskIdentity, l.keyHolder, l.outcome]),
      [
        [null, null, null, null, 'ERR_TLS_ALERT_SENT_PROTOCOL_VERSION'],
        ['TLSv1.2', 'TLS_PSK_WITH_AES_128_CCM_8', ID, 'keyd', 'ok'],
        ['TLSv1.3', 'TLS_AES_128_GCM_SHA256', ID, 'keyd', 'ok'],
        ['TLSv1.3', 'TLS_AES_128_GCM_SHA256', ID, 'keyd', 'ERR_TLS_ALERT_SENT_DECRYPT_ERROR'],
      ],
    );
  });

  test('client mode, the PSK in keyd: openssl s_server -nocert -psk over TLS 1.3 with the groups and suite of the file, then TLS 1.2 only after a reload; no PSK in the proxy', async () => {
    const s13 = await sServer(['-tls1_3', '-nocert', '-psk', HEX, '-psk_identity', ID]);
    const cfg = join(root.dir, 'psk-client.json');
    const write = (port: number, tls: Record<string, unknown>) =>
      writeFile(cfg, JSON.stringify({ listen: '127.0.0.1:0', client: { target: `127.0.0.1:${port}`, pskIdentity: ID }, keyd: keydSection(), psk: { keyd: true }, tls, metrics: { listen: '127.0.0.1:0' } }, null, 2));
    await write(s13.port, { groups: ['P-256'], ciphers: ['TLS_CHACHA20_POLY1305_SHA256'] });
    const c = await proxy(['--config', cfg]);
    const start = logLines(c).find((l) => l.msg === 'keyward proxy listening')!;
    assert.deepEqual((start.psk as Record<string, unknown>).identity, ID);
    await sendPlain(c.port, 'to s_server over TLS 1.3');
    await waitFor(() => s13.output().includes('to s_server over TLS 1.3'), `s_server to print the line:\n${s13.output()}`, 10_000);

    const s12 = await sServer(['-tls1_2', '-nocert', '-psk', HEX, '-psk_identity', ID]);
    await write(s12.port, { maxVersion: 'TLSv1.2' });
    process.kill(c.pid, 'SIGHUP');
    await waitFor(() => logLines(c).some((l) => l.msg === 'configuration reloaded: new connections use it'), 'the reload line', 10_000);
    await sendPlain(c.port, 'to s_server over TLS 1.2');
    await waitFor(() => s12.output().includes('to s_server over TLS 1.2'), `s_server to print the line:\n${s12.output()}`, 10_000);

    await waitFor(() => access(c).length === 2, 'two access lines', 10_000);
    assert.deepEqual(
      access(c).map((l) => [l.version, l.cipher, l.pskIdentity, l.keyHolder, l.outcome]),
      [
        ['TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256', ID, 'keyd', 'ok'],
        ['TLSv1.2', access(c)[1].cipher, ID, 'keyd', 'ok'],
      ],
    );
    assert.match(String(access(c)[1].cipher), /^TLS_(ECDHE_)?PSK_WITH_/);
    assert.ok(access(c).every((l) => /^127\.0\.0\.1:\d+$/.test(String(l.client))), 'the local client is named');
    const m = await fetchText(String(start.metrics));
    assert.equal(metricValue(m.text, 'keyward_proxy_handshakes_total', { version: 'TLSv1.3', group: 'secp256r1', key_holder: 'keyd', outcome: 'ok' }), 1);
    assert.deepEqual(await scan(c.pid), []);

    // A reload cannot turn a client into a server: refused, the client mode kept.
    await writeFile(cfg, JSON.stringify({ listen: '127.0.0.1:0', upstream: `127.0.0.1:${up.port}`, keyd: keydSection(), psk: { keyd: true } }));
    process.kill(c.pid, 'SIGHUP');
    await waitFor(() => logLines(c).some((l) => l.msg === 'reload refused: keeping the running configuration'), 'the refusal', 10_000);
    assert.match(String(logLines(c).find((l) => l.msg === 'reload refused: keeping the running configuration')!.reason), /a reload cannot switch to server mode/);
  });

  test('usage errors name the flag or the field and never show the PSK; --insecure reaches an unverified target, with a warning', async () => {
    const bad = join(root.dir, 'bad-tls.json');
    await writeFile(bad, JSON.stringify({ listen: '127.0.0.1:0', upstream: '127.0.0.1:1', psk: { file: pskFile, tls13: true }, tls: { groups: ['X25519', 'P-999'], ciphers: ['TLS_NOPE'], maxVersion: '1.3' } }, null, 2));
    const serverArgs = ['proxy', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1', '--psk-file', pskFile];
    const clientArgs = ['proxy', '--client', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:1', '--psk-file', pskFile, '--psk-identity', ID];
    const runs: [string[], RegExp][] = [
      [['proxy', '--config', bad], /bad-tls\.json:11: tls\.groups\[1\]: unknown group "P-999"[\s\S]*bad-tls\.json:14: tls\.ciphers\[0\]: unknown cipher suite "TLS_NOPE"[\s\S]*bad-tls\.json:16: tls\.maxVersion: expected one of "TLSv1\.2", "TLSv1\.3", got "1\.3"/],
      [[...serverArgs, '--groups', 'X25519,P-999'], /^keyward: --groups: unknown group "P-999"/],
      [[...serverArgs, '--cipher', 'TLS_NOPE'], /^keyward: --cipher: unknown cipher suite "TLS_NOPE"/],
      [[...serverArgs, '--max-version', '1.3'], /option '--max-version <version>' argument '1\.3' is invalid/],
      [[...serverArgs, '--cipher', 'TLS_PSK_WITH_AES_128_CCM_8', '--min-version', 'TLSv1.3'], /--cipher \(tls\.ciphers\) lists no TLS 1\.3 suite/],
      [[...serverArgs, '--tls13-psk-identity', ID], /--tls13-psk-identity, --tls13-psk-ke and --psk-hash go with --tls13-psk/],
      [[...clientArgs, '--tls13-psk'], /client mode relays to --target: --tls13-psk \(psk\.tls13\) belong to server mode/],
      [[...clientArgs, '--psk-hash', 'sha384', '--max-version', 'TLSv1.2'], /--psk-hash and --tls13-psk-ke are for a TLS 1\.3 PSK: this connection is TLS 1\.2 only/],
      [['proxy', '--client', '--listen', '127.0.0.1:0', '--target', '127.0.0.1:1', '--psk-identity', ID], /--psk-identity needs a PSK source/],
    ];
    for (const [args, re] of runs) {
      const r = await runKeyward(args, { timeoutMs: 15_000 });
      assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.ok(!r.stderr.includes(HEX) && !r.stdout.includes(HEX));
    }
    // --insecure reaches a target whose certificate nothing vouches for, and says so at start.
    const selfSigned = await createCa({ commonName: 'nobody vouches for this' });
    await writeFile(join(root.dir, 'self.pem'), selfSigned.certPem);
    await writeFile(join(root.dir, 'self-key.pem'), selfSigned.keyPem, { mode: 0o600 });
    const target = await sServer(['-cert', join(root.dir, 'self.pem'), '-key', join(root.dir, 'self-key.pem')]);
    const insecure = await proxy(['--client', '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${target.port}`, '--insecure']);
    const warning = logLines(insecure).find((l) => l.level === 40);
    assert.match(String(warning?.msg), /client\.insecure \(--insecure\): the target's certificate is NOT verified/);
    await sendPlain(insecure.port, 'unverified');
    await waitFor(() => target.output().includes('unverified'), `s_server to print the line:\n${target.output()}`, 10_000);
  });
});
