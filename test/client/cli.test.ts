/**
 * `keyward connect`: stdin to the server, the server to stdout, the end of stdin not
 * closing the connection, the one "connected ..." line, exit codes (0 after close_notify,
 * 1 with the alert or on truncation); a client key in the key process against
 * `keyward serve --client-ca --require-client-cert`, whose page names the client; a client
 * key in keyd with `--keyd-bound` against a node:tls server asking for certificates, in TLS
 * 1.3 and 1.2 (without it, a keyd that requires bound mode refuses).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { startTestKeyd, tempDir } from '../support/keydFixture.js';
import { KEYWARD_BIN, runKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { runProcess, type RunResult } from '../support/processes.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
const closers: Array<() => unknown> = [];

before(async () => {
  pki = await getPki();
});
after(async () => {
  for (const c of closers) await c();
});

/** A node:tls server whose connection handler is `onConnection`. */
async function server(onConnection: (c: tls.TLSSocket) => void, opts: tls.TlsOptions = {}): Promise<number> {
  const s = tls.createServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem, ...opts }, (c) => {
    c.on('error', () => undefined);
    onConnection(c);
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => s.close());
  return (s.address() as AddressInfo).port;
}

/** `keyward connect ARGS` with `input` on stdin, which then ends at once. */
function connectCli(args: string[], input: string): Promise<RunResult> {
  return runProcess(process.execPath, [KEYWARD_BIN, 'connect', ...args], { input, keepOpenMs: 0, timeoutMs: 20_000 });
}

const CONNECTED = /^connected version=(\S+) suite=(\S+) group=(\S+) sigalg=(\S+) alpn=(\S+) subject=(\S+)$/m;

it('relays stdin and stdout, keeps the connection after stdin ends, prints the connected line, exits 0 on close_notify', async () => {
  // The reply comes 300 ms after the request: stdin has ended long before.
  const port = await server(
    (c) => c.once('data', (d) => setTimeout(() => c.end(`reply to ${String(d).trim()}\n`), 300)),
    { ALPNProtocols: ['h2'] },
  );
  const run = await connectCli([`localhost:${port}`, '--ca', pki.ca.certPath, '--alpn', 'h2,http/1.1', '--groups', 'P-256,X25519'], 'hello\n');
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'reply to hello\n');
  const m = CONNECTED.exec(run.stderr);
  assert.ok(m, run.stderr);
  assert.deepEqual(m.slice(1), ['TLSv1.3', m[2], 'secp256r1', 'ecdsa_secp256r1_sha256', 'h2', 'CN=localhost']);
  assert.match(m[2], /^TLS_AES_(128|256)_GCM_SHA(256|384)$/);
});

it('TLS 1.2 with a chosen suite; alpn=- when none', async () => {
  const port = await server((c) => c.once('data', () => c.end('ok\n')));
  const run = await connectCli([`localhost:${port}`, '--ca', pki.ca.certPath, '--tls-version', '1.2', '--cipher', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256'], 'x\n');
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^connected version=TLSv1\.2 suite=TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 group=X25519 sigalg=\S+ alpn=- subject=CN=localhost$/m);
});

it('an untrusted server: exit 1 naming the alert sent', async () => {
  const port = await server(() => undefined, { key: pki.untrusted.server.keyPem, cert: pki.untrusted.server.certPem });
  const run = await connectCli([`localhost:${port}`, '--ca', pki.ca.certPath], '');
  assert.equal(run.code, 1);
  assert.match(run.stderr, /sent unknown_ca/);
  assert.doesNotMatch(run.stderr, /^connected/m);
});

it('a close without close_notify: exit 1, truncated', async () => {
  const port = await server((c) => c.once('data', () => c.write('partial', () => c.destroy())));
  const run = await connectCli([`localhost:${port}`, '--ca', pki.ca.certPath], 'x\n');
  assert.equal(run.code, 1);
  assert.equal(run.stdout, 'partial');
  assert.match(run.stderr, /truncated/);
});

it('usage errors exit 2 with the problem named', async () => {
  const bad = await runKeyward(['connect', 'no-port']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /expected HOST:PORT/);
  const noCert = await runKeyward(['connect', 'localhost:1', '--key', 'k.pem']);
  assert.equal(noCert.code, 2);
  assert.match(noCert.stderr, /needs its certificate: --cert/);
});

it('a client key in the key process, accepted by keyward serve --client-ca --require-client-cert; without it, refused', async () => {
  const serve: KeywardChild = await startServe(['--cert', pki.server['ecdsa-p256'].chainPath, '--key', pki.server['ecdsa-p256'].keyPath, '--alpn', 'http/1.1', '--client-ca', pki.ca.certPath, '--require-client-cert']);
  closers.push(() => serve.stop());
  const request = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  const run = await connectCli([`localhost:${serve.port}`, '--ca', pki.ca.certPath, '--cert', pki.client.chainPath, '--key', pki.client.keyPath, '--key-process'], request);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /client: CN=keyward-test-client.* \(verified\)/);
  const refused = await connectCli([`localhost:${serve.port}`, '--ca', pki.ca.certPath], request);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /received certificate_required/);
});

it('a client key in keyd with --keyd-bound: TLS 1.3 and 1.2 accepted by a node:tls server with requestCert; without it, refused', async () => {
  const root = await tempDir('connect-keyd-');
  closers.push(() => root.cleanup());
  const { keyd } = await startTestKeyd(
    root.dir,
    undefined,
    { listen: { unix: join(root.dir, 'keyd.sock') }, clients: [{ id: 'unix', keys: ['*'], bound: true }] },
    { keys: [{ ops: new LocalKey(pki.client.keyPem), serverNames: [] }] },
  );
  closers.push(() => keyd.close());
  const port = await server((c) => c.once('data', () => c.end(`hello ${String(c.getPeerCertificate().subject.CN)}\n`)), { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem });
  const args = [`localhost:${port}`, '--ca', pki.ca.certPath, '--cert', pki.client.chainPath, '--keyd', `unix:${keyd.unixPath}`];
  for (const version of ['1.3', '1.2']) {
    const run = await connectCli([...args, '--keyd-bound', '--tls-version', version], 'x\n');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hello keyward-test-client\n');
    assert.match(run.stderr, new RegExp(`^connected version=TLSv${version.replace('.', '\\.')} `, 'm'));
  }
  const refused = await connectCli([...args, '--tls-version', '1.2'], 'x\n');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /internal_error/);
});
