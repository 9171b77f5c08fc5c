/**
 * `keyward proxy` as an operator runs it (a child process): a configuration file whose
 * errors name the file, line and field; flags overriding the file; SIGHUP reloading a new
 * certificate while an open connection keeps working; a bad reload refused with the old
 * configuration kept; the metrics listener; SIGTERM letting an open connection finish and
 * exiting 0; --client's usage errors; --client-ca errors.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchText, metricValue } from '../support/keydFixture.js';
import { runKeyward, startKeyward } from '../support/keywardCli.js';
import { connectTls, echoHandler, makeProxyPki, waitFor, startUpstream, type ProxyPki, type TestUpstream, logLines } from './harness.js';

const READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;

let pki: ProxyPki;
let up: TestUpstream;
before(async () => {
  pki = await makeProxyPki();
  up = await startUpstream(echoHandler);
});
after(async () => {
  await up.close();
  await pki.cleanup();
});

async function echo(s: import('node:tls').TLSSocket, text: string): Promise<string> {
  s.write(text);
  return new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
}

describe('keyward proxy (command)', () => {
  test('configuration errors name the file, the line and the field; all of them at once', async () => {
    const bad = join(pki.dir, 'bad-front.json');
    await writeFile(
      bad,
      [
        '{',
        '  "listen": "127.0.0.1:0",',
        '  "upstream": "nowhere",',
        '  "certificates": [ { "cert": "a.pem", "key": "a-key.pem", "pkcs11": "pkcs11:token=x" } ],',
        '  "limits": {',
        '    "maxConnections": -1,',
        '    "idleTimeout": 5',
        '  },',
        '  "proxyProtocl": true',
        '}',
      ].join('\n'),
    );
    const r = await runKeyward(['proxy', '--config', bad]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad-front\.json:3: upstream: must be HOST:PORT, \[IPV6\]:PORT or unix:\/path, got "nowhere"/);
    assert.match(r.stderr, /bad-front\.json:4: certificates\[0\]\.pkcs11: give one of key, pkcs11, keydKeyId/);
    assert.match(r.stderr, /bad-front\.json:6: limits\.maxConnections: expected an integer from 1/);
    assert.match(r.stderr, /bad-front\.json:7: limits\.idleTimeout: unknown field \(known here: handshakeTimeoutMs, idleTimeoutMs/);
    assert.match(r.stderr, /bad-front\.json:9: proxyProtocl: unknown field/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    const syntax = join(pki.dir, 'syntax.json');
    await writeFile(syntax, '{\n  "listen": "127.0.0.1:0",\n  "upstream": "127.0.0.1:1"\n  "tls": {}\n}\n');
    const s = await runKeyward(['proxy', '--config', syntax]);
    assert.equal(s.code, 2);
    assert.match(s.stderr, /syntax\.json:4: \(top level\): not valid JSON: expected "}", found """ \(column 3\)/);

    const missing = await runKeyward(['proxy', '--config', join(pki.dir, 'none.json')]);
    assert.match(missing.stderr, /none\.json: \(top level\): cannot read the file: ENOENT/);
  });

  test('serve --config: the same file format, checked by role', async () => {
    const f = join(pki.dir, 'serve.json');
    await writeFile(f, JSON.stringify({ listen: '127.0.0.1:0', upstream: '127.0.0.1:80', certificates: [{ cert: 'x.pem' }] }, null, 2));
    const r = await runKeyward(['serve', '--config', f]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /serve\.json:3: upstream: unknown field/);
  });

  test('serve --config: a file that works, a flag overriding its listen address', async () => {
    const f = join(pki.dir, 'serve-ok.json');
    await writeFile(f, JSON.stringify({ listen: '127.0.0.1:9', certificates: [{ cert: 'localhost-chain.pem', key: 'localhost-key.pem' }], keyProcess: true, tls: { alpn: ['http/1.1'] } }, null, 2));
    const child = await startKeyward(['serve', '--config', f, '--listen', '127.0.0.1:0']);
    try {
      assert.match(child.stdout(), /localhost-chain\.pem: private key in a separate key process/);
      const s = await connectTls(child.port, pki, 'localhost', { ALPNProtocols: ['http/1.1'] });
      assert.equal(s.alpnProtocol, 'http/1.1');
      s.destroy();
    } finally {
      await child.stop();
    }
  });

  test('SIGHUP: a new certificate for new connections, the open one keeps working; a bad reload is refused and the old configuration kept; SIGTERM lets the open connection finish, exit 0', async () => {
    const cfg = join(pki.dir, 'front.json');
    const write = (cert: string, key: string) =>
      writeFile(cfg, JSON.stringify({ listen: '127.0.0.1:9', upstream: `127.0.0.1:${up.port}`, certificates: [{ cert, key }], keyProcess: true, metrics: { listen: '127.0.0.1:0' } }, null, 2));
    await write(pki.localhost.chainPath, pki.localhost.keyPath);
    // --listen overrides the file's port 9.
    const child = await startKeyward(['proxy', '--config', cfg, '--listen', '127.0.0.1:0', '--shutdown-grace', '5000'], { ready: READY });
    try {
      const metricsUrl = String(logLines(child).find((l) => l.msg === 'keyward proxy listening')?.metrics);
      assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const noCheck = { checkServerIdentity: () => undefined };
      const open = await connectTls(child.port, pki, 'localhost', noCheck);
      assert.match(open.getPeerX509Certificate()!.subject, /CN=localhost/);
      assert.equal(await echo(open, 'one'), 'one');

      await write(pki.example.chainPath, pki.example.keyPath);
      process.kill(child.pid, 'SIGHUP');
      await waitFor(() => logLines(child).some((l) => l.msg === 'configuration reloaded: new connections use it'), 'the reload line', 10_000);
      const fresh = await connectTls(child.port, pki, 'localhost', noCheck);
      assert.match(fresh.getPeerX509Certificate()!.subject, /CN=example\.test/);
      assert.equal(await echo(open, 'two'), 'two', 'the connection opened before the reload still relays');
      assert.equal(await echo(fresh, 'new'), 'new');
      fresh.destroy();

      await write(join(pki.dir, 'missing-chain.pem'), pki.example.keyPath);
      process.kill(child.pid, 'SIGHUP');
      await waitFor(() => logLines(child).some((l) => l.msg === 'reload refused: keeping the running configuration'), 'the refusal line', 10_000);
      const refused = logLines(child).find((l) => l.msg === 'reload refused: keeping the running configuration')!;
      assert.match(String(refused.reason), /cannot read certificate file .*missing-chain\.pem: ENOENT/);
      const still = await connectTls(child.port, pki, 'localhost', noCheck);
      assert.match(still.getPeerX509Certificate()!.subject, /CN=example\.test/, 'the last good configuration is kept');
      assert.equal(await echo(still, 'kept'), 'kept');
      still.destroy();

      const m = await fetchText(metricsUrl);
      assert.equal(metricValue(m.text, 'keyward_proxy_reloads_total', { outcome: 'ok' }), 1);
      assert.equal(metricValue(m.text, 'keyward_proxy_reloads_total', { outcome: 'refused' }), 1);
      assert.equal(metricValue(m.text, 'keyward_proxy_handshakes_total', { key_holder: 'key-process', outcome: 'ok' }), 3);

      // SIGTERM: stops accepting, the open connection may finish, then exit 0.
      process.kill(child.pid, 'SIGTERM');
      await waitFor(() => logLines(child).some((l) => String(l.msg).startsWith('stopping')), 'the stopping line');
      assert.equal(await echo(open, 'three'), 'three', 'an open connection keeps working during the grace period');
      open.end();
      const exit = await child.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      const access = logLines(child).filter((l) => l.msg === 'connection');
      assert.equal(access.length, 3);
      for (const l of access) {
        assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.match(String(l.client), /^127\.0\.0\.1:\d+$/);
        assert.equal(l.sni, 'localhost');
        assert.equal(typeof l.durationMs, 'number');
      }
      assert.doesNotMatch(child.stdout() + child.stderr(), /PRIVATE KEY/);
    } finally {
      await child.stop();
    }
  });

  test('--client-ca: a client with a certificate from the CA is relayed, one without is refused; the access log names the client', async () => {
    const child = await startKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, '--cert', pki.localhost.chainPath, '--key-process', '--key', pki.localhost.keyPath, '--client-ca', pki.caPath], { ready: READY });
    try {
      const s = await connectTls(child.port, pki, 'localhost', { cert: pki.client.chainPem, key: pki.client.keyPem });
      assert.equal(await echo(s, 'mutual'), 'mutual');
      s.end();
      const bare = await connectTls(child.port, pki).then(
        (t) => new Promise<string>((resolve) => t.once('error', (e) => resolve(e.message)).once('close', () => resolve('closed')).resume()),
        (e: Error) => e.message,
      );
      assert.match(bare, /certificate required|alert number 116|closed|ECONNRESET/i);
      await waitFor(() => logLines(child).some((l) => l.msg === 'connection' && l.clientCn === 'app-client'), 'the access line with the client CN');
      await waitFor(() => logLines(child).some((l) => l.msg === 'connection' && l.outcome === 'ERR_TLS_ALERT_SENT_CERTIFICATE_REQUIRED'), 'the refused handshake in the access log');
    } finally {
      await child.stop();
    }
  });

  test('--client with server-mode flags or without --target says what is wrong; --client-ca names a file it cannot read; bad TLS settings are one line', async () => {
    const c = await runKeyward(['proxy', '--client', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /client mode relays to --target: --upstream \(upstream\) belong to server mode/);
    const t = await runKeyward(['proxy', '--client', '--listen', '127.0.0.1:0']);
    assert.equal(t.code, 2);
    assert.match(t.stderr, /client mode needs --target HOST:PORT/);
    const m = await runKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1', '--cert', pki.localhost.chainPath, '--key', pki.localhost.keyPath, '--client-ca', join(pki.dir, 'no-ca.pem')]);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /cannot read --client-ca file .*no-ca\.pem: ENOENT/);
    const alpn = await runKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1', '--cert', pki.localhost.chainPath, '--key', pki.localhost.keyPath, '--alpn', 'x'.repeat(300)]);
    assert.equal(alpn.code, 2);
    assert.match(alpn.stderr, /^keyward: invalid TLS settings: invalid ALPN protocol name/);
  });
});
