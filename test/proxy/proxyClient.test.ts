/**
 * `keyward proxy --client` (plaintext in, TLS out) as an operator runs it, against a
 * node:tls server that requires a client certificate: 16 MiB each way at once with the
 * client key in a key process and a half-close; a target whose certificate does not verify
 * refused at once with the reason logged; a target that is down answered at once; the
 * configuration file's `client` section.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { createCa, issueCertificate } from '../../src/cli/pki.js';
import { fetchText, metricValue } from '../support/keydFixture.js';
import { startKeyward, type KeywardChild } from '../support/keywardCli.js';
import { freePort, makeProxyPki, readAll, sha256, waitFor, type ProxyPki, logLines } from './harness.js';

const READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;

let pki: ProxyPki;
const closers: Array<() => unknown> = [];
before(async () => {
  pki = await makeProxyPki();
});
after(async () => {
  for (const c of closers.reverse()) await c();
  await pki.cleanup();
});

/** A node:tls server on 127.0.0.1:0; `onSecure` gets each established connection. */
async function tlsServer(options: tls.TlsOptions, onSecure: (c: tls.TLSSocket) => void): Promise<number> {
  const server = tls.createServer({ allowHalfOpen: true, ...options }, (c) => {
    c.on('error', () => undefined);
    onSecure(c);
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function proxyClient(args: string[]): Promise<KeywardChild> {
  return startKeyward(['proxy', '--client', '--listen', '127.0.0.1:0', ...args], { ready: READY }).then((c) => {
    closers.push(() => c.stop());
    return c;
  });
}

/** Connects to the proxy's plaintext port; resolves once the local connection closes, with how long that took. */
async function closedWithin(port: number): Promise<number> {
  const started = Date.now();
  const s: Socket = netConnect(port, '127.0.0.1');
  s.on('error', () => undefined);
  s.resume();
  await once(s, 'close');
  return Date.now() - started;
}

describe('keyward proxy --client', () => {
  test('16 MiB each way at once through a key-process client key to a server requiring client certificates; the local half-close reaches the server, which still answers', async () => {
    const size = 16 << 20;
    const fromServer = randomBytes(size);
    let seenCn: string | undefined;
    const serverPort = await tlsServer({ key: pki.localhost.keyPem, cert: pki.localhost.chainPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (c) => {
      seenCn = (c.getPeerCertificate().subject as { CN?: string } | undefined)?.CN;
      c.write(fromServer);
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      // The client's end arrives as close_notify; the answer goes back after it (half-close).
      c.once('end', () => c.end(`\ndigest ${sha256(Buffer.concat(chunks))}`));
    });
    const child = await proxyClient([
      '--target', `127.0.0.1:${serverPort}`, '--servername', 'localhost', '--ca', pki.caPath,
      '--cert', pki.client.chainPath, '--key-process', '--key', pki.client.keyPath, '--metrics-listen', '127.0.0.1:0',
    ]);
    const start = logLines(child).find((l) => l.msg === 'keyward proxy listening')!;
    assert.equal(start.mode, 'client');
    assert.match(JSON.stringify(start.certificates), /in a separate key process/);

    const fromClient = randomBytes(size);
    const local = netConnect(child.port, '127.0.0.1');
    const received = readAll(local, 60_000);
    local.end(fromClient);
    const all = await received;
    assert.equal(all.length, size + 8 + 64, 'every byte from the server, then the digest sent after our end');
    assert.ok(all.subarray(0, size).equals(fromServer), 'server to client intact');
    assert.equal(all.subarray(size).toString(), `\ndigest ${sha256(fromClient)}`, 'client to server intact');
    assert.equal(seenCn, 'app-client', 'the server verified the client certificate signed in the key process');

    await waitFor(() => logLines(child).some((l) => l.msg === 'connection'), 'the access line');
    const line = logLines(child).find((l) => l.msg === 'connection')!;
    assert.equal(line.outcome, 'ok');
    assert.equal(line.sni, 'localhost');
    assert.equal(line.serverCn, 'localhost');
    assert.equal(line.keyHolder, 'key-process');
    assert.equal(line.bytesFromClient, size);
    assert.equal(line.bytesToClient, size + 72);
    const m = await fetchText(String(start.metrics));
    assert.equal(metricValue(m.text, 'keyward_proxy_handshakes_total', { key_holder: 'key-process', outcome: 'ok' }), 1);
    assert.equal(metricValue(m.text, 'keyward_proxy_bytes_total', { direction: 'from_client' }), size);
    assert.doesNotMatch(child.stdout() + child.stderr(), /PRIVATE KEY/);
  });

  test('a target whose certificate does not verify: the local connection is closed at once, the reason logged (client mode from the configuration file)', async () => {
    const otherCa = await createCa({ commonName: 'someone else' });
    const stranger = await issueCertificate(otherCa, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
    const serverPort = await tlsServer({ key: stranger.keyPem, cert: stranger.chainPem }, (c) => c.end());
    const cfg = join(pki.dir, 'client-front.json');
    await writeFile(cfg, JSON.stringify({ listen: '127.0.0.1:0', client: { target: `127.0.0.1:${serverPort}`, servername: 'localhost', ca: 'ca.pem' }, limits: { handshakeTimeoutMs: 5000 } }, null, 2));
    const child = await startKeyward(['proxy', '--config', cfg], { ready: READY });
    closers.push(() => child.stop());
    const ms = await closedWithin(child.port);
    assert.ok(ms < 2_000, `closed after ${ms} ms`);
    await waitFor(() => logLines(child).some((l) => l.msg === 'connection'), 'the access line');
    const failed = logLines(child).find((l) => l.msg === 'TLS to the target failed: closing the local connection')!;
    assert.equal(failed.code, 'ERR_TLS_ALERT_SENT_UNKNOWN_CA');
    assert.match(String(failed.reason), /the target's certificate did not verify: SELF_SIGNED_CERT_IN_CHAIN: /);
    assert.equal(logLines(child).find((l) => l.msg === 'connection')!.outcome, 'ERR_TLS_ALERT_SENT_UNKNOWN_CA');
  });

  test('a target that is down: the local connection is closed at once, logged and counted', async () => {
    const child = await proxyClient(['--target', `127.0.0.1:${await freePort()}`, '--ca', pki.caPath]);
    const ms = await closedWithin(child.port);
    assert.ok(ms < 2_000, `closed after ${ms} ms`);
    await waitFor(() => logLines(child).some((l) => l.msg === 'connection'), 'the access line');
    assert.equal(logLines(child).find((l) => l.msg === 'target unreachable: closing the local connection')?.reason, 'ECONNREFUSED');
    assert.equal(logLines(child).find((l) => l.msg === 'connection')!.outcome, 'upstream-unreachable');
  });
});
