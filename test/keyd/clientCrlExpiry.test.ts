/**
 * What happens when the client CRL in force (tls.crl) passes its nextUpdate, with a real
 * keyd process: warned about at load, the gauge of its nextUpdate, then past it OpenSSL
 * refuses every new front handshake of that CA (the alert checked here), keyd logs the
 * error and /healthz answers 503; a fresh CRL restores service without a restart. And the
 * warning clock itself (watchCrlExpiry), on a scale of seconds.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { createCa, issueCertificate, signCrl, writeAtomic, type IssuedCertificate, type Issuer } from '../../src/cli/pki.js';
import { watchCrlExpiry } from '../../src/keyd/clientCrl.js';
import { FrameDecoder, FrameType, encodeFrame } from '../../src/keyd/protocol.js';
import { KEYD_CLI, TEST_PASSPHRASE, fetchText, keydConfigJson, metricValue, spawnKeyd, tempDir, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';
import { runProcess } from '../support/processes.js';

let root: { dir: string; cleanup: () => Promise<void> };
let ca: Issuer;
let front: IssuedCertificate;
let keyd: KeydChild | undefined;

/** `ms` from now, in whole seconds: a CRL's times have no finer precision. */
const secondsFromNow = (ms: number): Date => new Date(Math.floor((Date.now() + ms) / 1000) * 1000);

/** A CRL of `ca` revoking nothing, valid until `nextUpdate`. */
function crlUntil(nextUpdate: Date, number: bigint): Promise<string> {
  return signCrl(ca.certPem, createPrivateKey(ca.keyPem), { revoked: [], number, thisUpdate: new Date(Date.now() - 60_000), nextUpdate });
}

/** A front's connection to keyd and its PING answered: 'pong', or the error that ended the connection. */
function ping(port: number, socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', cert: front.certPem, key: front.keyPem })): Promise<{ answer: string; socket: typeof socket }> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder(1 << 20);
    const done = (answer: string): void => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ answer, socket });
    };
    const timer = setTimeout(() => done('no answer'), 3000);
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    socket.once('close', () => done('closed'));
    socket.on('data', (d: Buffer) => {
      if (decoder.push(d).some((f) => f.type === FrameType.PONG)) done('pong');
    });
    const send = (): boolean => socket.write(encodeFrame(FrameType.PING, 7, new Uint8Array(0), 1));
    if (socket.readyState === 'open' && !socket.connecting) send();
    else socket.once('secureConnect', send);
  });
}

/** What OpenSSL says of the front's certificate under `crl`: a node:tls server that reports instead of closing. */
async function openSslVerdict(crl: Buffer): Promise<string> {
  const { createServer } = await import('node:tls');
  const [cert, key] = await Promise.all([readFile(join(root.dir, 'keyd-cert.pem')), readFile(join(root.dir, 'keyd-key.pem'))]);
  return new Promise((resolve) => {
    const server = createServer({ cert, key, ca: ca.certPem, crl, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (s) => {
      resolve(s.authorized ? 'authorized' : String(s.authorizationError));
      s.destroy();
      server.close();
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, ca: ca.certPem, servername: 'localhost', cert: front.certPem, key: front.keyPem });
      c.on('error', () => undefined);
      setTimeout(() => {
        c.destroy();
        server.close();
        resolve('no connection');
      }, 3000).unref();
    });
  });
}

before(async () => {
  root = await tempDir('keyd-crl-expiry-');
  ca = await createCa({ commonName: 'crl expiry CA' });
  const server = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'keyd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  front = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'front', usage: 'client' });
  await writeFile(join(root.dir, 'ca.pem'), ca.certPem);
  await writeFile(join(root.dir, 'keyd-cert.pem'), server.certPem);
  await writeFile(join(root.dir, 'keyd-key.pem'), server.keyPem, { mode: 0o600 });
});

after(async () => {
  await keyd?.kill('SIGTERM');
  await root?.cleanup();
});

test('watchCrlExpiry: a warning at load within the first mark, one at each later mark, the expiry; nothing after it is cleared', async () => {
  const events: string[] = [];
  const t0 = Date.now();
  const log = { nearing: (issuer: string) => events.push(`nearing ${issuer} ${Date.now() - t0}`), expired: (issuer: string) => events.push(`expired ${issuer} ${Date.now() - t0}`) };
  const stop = watchCrlExpiry(
    {
      schedule: [
        { issuer: 'CN=soon', nextUpdate: new Date(t0 + 1200) },
        { issuer: 'CN=later', nextUpdate: new Date(t0 + 2000) },
        // Past setTimeout's longest delay: waited for in steps, not fired at once.
        { issuer: 'CN=far', nextUpdate: new Date(t0 + 60 * 86_400_000) },
      ],
    },
    log,
    [1500, 600],
  );
  await new Promise((r) => setTimeout(r, 2300));
  const cleared: string[] = [];
  const stopLater = watchCrlExpiry({ schedule: [{ issuer: 'CN=cleared', nextUpdate: new Date(Date.now() + 1000) }] }, { nearing: () => cleared.push('nearing'), expired: () => cleared.push('expired') }, [300]);
  stopLater();
  stop();
  await new Promise((r) => setTimeout(r, 1100));
  const what = events.map((e) => e.replace(/ \d+$/, ''));
  assert.deepEqual(what, ['nearing CN=soon', 'nearing CN=later', 'nearing CN=soon', 'expired CN=soon', 'nearing CN=later', 'expired CN=later'], events.join('; '));
  const at = (i: number) => Number(/ (\d+)$/.exec(events[i])![1]);
  assert.ok(at(0) < 100 && at(2) >= 600 && at(3) >= 1200 && at(4) >= 1400 && at(5) >= 2000, events.join('; '));
  assert.deepEqual(cleared, [], 'a cleared watch reports nothing');
});

test('a client CRL past its nextUpdate: OpenSSL refuses every new front handshake, keyd says so (log, /healthz 503), and a fresh CRL restores service without a restart', async () => {
  const crlPath = join(root.dir, 'crl.pem');
  const nextUpdate = secondsFromNow(6000);
  await writeFile(crlPath, await crlUntil(nextUpdate, 1n));
  const json = keydConfigJson(root.dir, undefined, {
    tls: { cert: join(root.dir, 'keyd-cert.pem'), key: join(root.dir, 'keyd-key.pem'), clientCa: join(root.dir, 'ca.pem'), crl: crlPath },
  });
  keyd = await spawnKeyd(await writeKeydConfig(root.dir, json));
  const port = keyd.tls!.port;
  const metricsUrl = `http://127.0.0.1:${keyd.metrics!.port}`;
  assert.ok(Date.now() < nextUpdate.getTime() - 1500, 'keyd started in time for the test to mean anything');
  assert.match(keyd.stdout(), /"level":40,.*"msg":"client CRL runs out in [1-6] s: load a new one before \S+ \(keyward certs revoke\), or every front of CN=crl expiry CA, O=keyward is refused"/);
  assert.equal(metricValue((await fetchText(`${metricsUrl}/metrics`)).text, 'keyd_client_crl_next_update_timestamp_seconds'), nextUpdate.getTime() / 1000);
  assert.equal((await fetchText(`${metricsUrl}/healthz`)).status, 200);
  const established = await ping(port);
  assert.equal(established.answer, 'pong', 'a front is served while the CRL is current');

  await new Promise((r) => setTimeout(r, nextUpdate.getTime() - Date.now() + 300));
  // OpenSSL checks the CRL in the handshake only: the connection made before stays served.
  assert.equal((await ping(port, established.socket)).answer, 'pong', 'the established connection is not re-checked');
  established.socket.destroy();
  // A new handshake: OpenSSL's check of the client certificate fails (the CRL is out of
  // date) and node:tls closes the connection once the handshake is done, without an alert:
  // the TLS 1.3 front finished its side and sees the connection end at its first request.
  const refused = await ping(port);
  assert.match(refused.answer, /^(closed|ECONNRESET)$/, 'every new front handshake is refused');
  assert.equal(keyd.stdout().match(/"msg":"front connected"/g)?.length, 1, 'keyd never took the refused front');
  assert.equal(await openSslVerdict(await readFile(crlPath)), 'CRL_HAS_EXPIRED', "OpenSSL's verdict on the certificate under that CRL");
  const health = await fetchText(`${metricsUrl}/healthz`);
  assert.deepEqual(health, { status: 503, text: 'client CRL out of date: every front of CN=crl expiry CA, O=keyward is refused until a new one is loaded\n' });
  assert.match(keyd.stdout(), /"level":50,.*"msg":"client CRL out of date: every front of CN=crl expiry CA, O=keyward is refused until a new one is loaded"/);

  // A fresh CRL, written as certs revoke writes it (whole, by rename): in force within the poll interval.
  const fresh = secondsFromNow(86_400_000);
  await writeAtomic(crlPath, await crlUntil(fresh, 2n), 0o644);
  for (let i = 0; i < 50 && (await fetchText(`${metricsUrl}/healthz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await fetchText(`${metricsUrl}/healthz`)).status, 200, 'healthy again without a restart');
  const again = await ping(port);
  assert.equal(again.answer, 'pong', 'fronts are served again');
  again.socket.destroy();
  assert.equal(metricValue((await fetchText(`${metricsUrl}/metrics`)).text, 'keyd_client_crl_next_update_timestamp_seconds'), fresh.getTime() / 1000);
  assert.match(keyd.stdout(), /"msg":"client CRL runs out in 23 h 59 min: load a new one before/, 'within 7 days of its nextUpdate: warned about at load');

  const check = await runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', join(root.dir, 'keyd.json'), '--check'], { env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE } });
  assert.match(check.stdout, /ok +tls\.crl: \S+crl\.pem: 1 CRL\(s\) of tls\.clientCa, 0 certificate\(s\) revoked, next update by \S+ \(in 23 h 59 min\)\n/);
  assert.match(check.stdout, /ok +tls\.crl: warning: \S+crl\.pem runs out in 23 h 59 min; after that every front of its CA is refused/);
});
