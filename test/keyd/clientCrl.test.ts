/**
 * keyd's client CRL (tls.crl) with real keyd processes. What happens when the CRL in force
 * passes its nextUpdate: warned about at load, the gauge of its nextUpdate, then OpenSSL
 * refuses every new front handshake of that CA (its verdict checked here), keyd logs the
 * error and /healthz answers 503; a fresh CRL restores service without a restart. The
 * warning clock itself (watchCrlExpiry), on a scale of seconds. And `keyward certs revoke`
 * end to end: the CRL it writes is the one keyd takes, a revocation cuts that front off
 * within seconds while the others stay, openssl reads it, and what it refuses.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { createCa, issueCertificate, signCrl, writeAtomic, type Issuer } from '../../src/cli/pki.js';
import { loadClientCrls, watchCrlExpiry } from '../../src/keyd/clientCrl.js';
import { FrameDecoder, FrameType, encodeFrame } from '../../src/keyd/protocol.js';
import { KEYD_CLI, TEST_PASSPHRASE, fetchText, keydConfigJson, metricValue, spawnKeyd, tempDir, writeKeydConfig, type KeydChild } from '../support/keydFixture.js';
import { runKeyward } from '../support/keywardCli.js';
import { runProcess } from '../support/processes.js';

interface Credentials {
  caPem: string;
  certPem: string;
  keyPem: string;
}

let root: { dir: string; cleanup: () => Promise<void> };
let ca: Issuer;
let front: Credentials;
const keyds: KeydChild[] = [];

/** `ms` from now, in whole seconds: a CRL's times have no finer precision. */
const secondsFromNow = (ms: number): Date => new Date(Math.floor((Date.now() + ms) / 1000) * 1000);

/** A CRL of `ca` revoking nothing, valid until `nextUpdate`. */
function crlUntil(issuer: Issuer, nextUpdate: Date, number: bigint): Promise<string> {
  return signCrl(issuer.certPem, createPrivateKey(issuer.keyPem), { revoked: [], number, thisUpdate: new Date(Date.now() - 60_000), nextUpdate });
}

/**
 * A front's connection to keyd (`socket`, or a new one with `who`'s certificate) and its
 * PING answered: 'pong', or how the connection ended.
 */
function ping(port: number, who: Credentials, socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca: who.caPem, servername: 'localhost', cert: who.certPem, key: who.keyPem })): Promise<{ answer: string; socket: TLSSocket }> {
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

/** Whether `socket` closes within `ms`. */
function closesWithin(socket: TLSSocket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
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
  front = { caPem: ca.certPem, ...(await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'front', usage: 'client' })) };
  await writeFile(join(root.dir, 'ca.pem'), ca.certPem);
  await writeFile(join(root.dir, 'keyd-cert.pem'), server.certPem);
  await writeFile(join(root.dir, 'keyd-key.pem'), server.keyPem, { mode: 0o600 });
});

after(async () => {
  for (const k of keyds) await k.kill('SIGTERM');
  await root?.cleanup();
});

// The tests wait on keyd and on time: they run side by side.
describe('client CRL', { concurrency: true }, () => {

  test('watchCrlExpiry: a warning at load within the first mark, one at each later mark, the expiry; nothing after it is cleared', async () => {
    const events: string[] = [];
    // A wait past setTimeout's limit would fire at once, warn and loop: the far CRL must not.
    const overflows: string[] = [];
    const onWarning = (w: Error): void => {
      if (w.name === 'TimeoutOverflowWarning') overflows.push(w.message);
    };
    process.on('warning', onWarning);
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
    process.off('warning', onWarning);
    assert.deepEqual(overflows, [], 'no timer past setTimeout\'s limit');
  });

  test('a CRL not valid yet (thisUpdate ahead: a CA host whose clock runs fast) is refused like one out of date, naming the file', async () => {
    const early = join(root.dir, 'early-crl.pem');
    await writeFile(early, await signCrl(ca.certPem, createPrivateKey(ca.keyPem), { revoked: [], number: 1n, thisUpdate: secondsFromNow(600_000), nextUpdate: secondsFromNow(86_400_000) }));
    await assert.rejects(loadClientCrls(early, join(root.dir, 'ca.pem')), /early-crl\.pem: CRL 1 \(issuer CN=crl expiry CA, O=keyward\) is valid only from \S+ \(its thisUpdate\): every front would be refused until then/);
    // A nextUpdate past what a CRL can encode is refused when signing, never written malformed.
    await assert.rejects(signCrl(ca.certPem, createPrivateKey(ca.keyPem), { revoked: [], number: 1n, thisUpdate: new Date(), nextUpdate: new Date(Date.UTC(10000, 0, 1)) }), /a CRL date must fall in the years 1950 to 9999/);
  });

  test('a client CRL past its nextUpdate: OpenSSL refuses every new front handshake, keyd says so (log, /healthz 503), and a fresh CRL restores service without a restart', async () => {
    const crlPath = join(root.dir, 'crl.pem');
    await writeFile(crlPath, await crlUntil(ca, secondsFromNow(86_400_000), 1n));
    const json = keydConfigJson(root.dir, undefined, {
      tls: { cert: join(root.dir, 'keyd-cert.pem'), key: join(root.dir, 'keyd-key.pem'), clientCa: join(root.dir, 'ca.pem'), crl: crlPath },
    });
    const keyd = await spawnKeyd(await writeKeydConfig(root.dir, json));
    keyds.push(keyd);
    const port = keyd.tls!.port;
    const metricsUrl = `http://127.0.0.1:${keyd.metrics!.port}`;
    const gauge = async (): Promise<number> => metricValue((await fetchText(`${metricsUrl}/metrics`)).text, 'keyd_client_crl_next_update_timestamp_seconds');
    assert.match(keyd.stdout(), /"level":40,.*"msg":"client CRL runs out in 23 h 59 min: load a new one before \S+ \(keyward certs revoke\), or every front of CN=crl expiry CA, O=keyward is refused"/, 'within 7 days of its nextUpdate: warned about at load');
    const established = await ping(port, front);
    assert.equal(established.answer, 'pong', 'a front is served while the CRL is current');

    // A CRL that runs out in seconds, put in force by the reload (a spawn under load takes longer than a reload).
    const nextUpdate = secondsFromNow(5000);
    await writeAtomic(crlPath, await crlUntil(ca, nextUpdate, 2n), 0o644);
    for (let i = 0; i < 40 && (await gauge()) !== nextUpdate.getTime() / 1000; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await gauge(), nextUpdate.getTime() / 1000, 'the gauge shows the nextUpdate in force');
    assert.ok(Date.now() < nextUpdate.getTime() - 500, 'reloaded in time for the test to mean anything');
    assert.match(keyd.stdout(), /"level":40,.*"msg":"client CRL runs out in [1-5] s: load a new one before/);
    assert.equal((await fetchText(`${metricsUrl}/healthz`)).status, 200);

    await new Promise((r) => setTimeout(r, nextUpdate.getTime() - Date.now() + 300));
    // OpenSSL checks the CRL in the handshake only: the connection made before stays served.
    assert.equal((await ping(port, front, established.socket)).answer, 'pong', 'the established connection is not re-checked');
    established.socket.destroy();
    // A new handshake: OpenSSL's check of the client certificate fails (the CRL is out of
    // date) and node:tls closes the connection once the handshake is done, without an alert:
    // the TLS 1.3 front finished its side and sees the connection end at its first request.
    const refused = await ping(port, front);
    assert.match(refused.answer, /^(closed|ECONNRESET)$/, 'every new front handshake is refused');
    assert.equal(keyd.stdout().match(/"msg":"front connected"/g)?.length, 1, 'keyd never took the refused front');
    assert.equal(await openSslVerdict(await readFile(crlPath)), 'CRL_HAS_EXPIRED', "OpenSSL's verdict on the certificate under that CRL");
    const health = await fetchText(`${metricsUrl}/healthz`);
    assert.deepEqual(health, { status: 503, text: 'client CRL out of date: every front of CN=crl expiry CA, O=keyward is refused until a new one is loaded\n' });
    assert.match(keyd.stdout(), /"level":50,.*"msg":"client CRL out of date: every front of CN=crl expiry CA, O=keyward is refused until a new one is loaded"/);

    // A fresh CRL, written as certs revoke writes it (whole, by rename): in force within the poll interval.
    const fresh = secondsFromNow(86_400_000);
    await writeAtomic(crlPath, await crlUntil(ca, fresh, 3n), 0o644);
    for (let i = 0; i < 50 && (await fetchText(`${metricsUrl}/healthz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await fetchText(`${metricsUrl}/healthz`)).status, 200, 'healthy again without a restart');
    const again = await ping(port, front);
    assert.equal(again.answer, 'pong', 'fronts are served again');
    again.socket.destroy();
    assert.equal(await gauge(), fresh.getTime() / 1000);

    const check = await runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', join(root.dir, 'keyd.json'), '--check'], { env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE } });
    assert.match(check.stdout, /ok +tls\.crl: \S+crl\.pem: 1 CRL\(s\) of tls\.clientCa, 0 certificate\(s\) revoked, next update by \S+ \(in 23 h 59 min\)\n/);
    assert.match(check.stdout, /ok +tls\.crl: warning: \S+crl\.pem runs out in 23 h 59 min; after that every front of its CA is refused/);
  });

  test('two CAs of one name in tls.clientCa (a CA rotation): the CRL of the second is taken, its fronts served; the first, with no CRL, is named at start and by --check, its fronts refused', async () => {
    const dir = join(root.dir, 'rotation');
    const [oldPki, newPki] = [join(dir, 'old'), join(dir, 'new')];
    for (const p of [oldPki, newPki]) assert.equal((await runKeyward(['certs', 'init', p])).code, 0);
    const made = await runKeyward(['certs', 'revoke', '--dir', newPki]);
    assert.equal(made.code, 0, made.stderr);
    const [oldCa, newCa] = await Promise.all([readFile(join(oldPki, 'ca-cert.pem'), 'utf8'), readFile(join(newPki, 'ca-cert.pem'), 'utf8')]);
    const clientCa = join(dir, 'client-ca.pem');
    await writeFile(clientCa, oldCa + newCa);
    const json = keydConfigJson(dir, undefined, {
      tls: { cert: join(newPki, 'keyd-cert.pem'), key: join(newPki, 'keyd-key.pem'), clientCa, crl: join(newPki, 'crl.pem') },
    });
    const config = await writeKeydConfig(dir, json);
    const keyd = await spawnKeyd(config);
    keyds.push(keyd);
    const oldFp = new X509Certificate(oldCa).fingerprint256.replace(/:/g, '').toLowerCase();
    const uncovered = `tls.clientCa holds the CA CN=keyward private CA, O=keyward (SHA-256 ${oldFp}), but ${join(newPki, 'crl.pem')} has no CRL of it: every front of that CA is refused`;
    assert.ok(keyd.stdout().includes(`${uncovered} (UNABLE_TO_GET_CRL)`), keyd.stdout());
    const credentials = async (p: string): Promise<Credentials> => ({ caPem: newCa, certPem: await readFile(join(p, 'front-cert.pem'), 'utf8'), keyPem: await readFile(join(p, 'front-key.pem'), 'utf8') });
    const served = await ping(keyd.tls!.port, await credentials(newPki));
    assert.equal(served.answer, 'pong', "a front of the second CA is served");
    served.socket.destroy();
    assert.match((await ping(keyd.tls!.port, await credentials(oldPki))).answer, /^(closed|ECONNRESET)$/, 'a front of the CA without a CRL is refused');
    // keyd's log is written asynchronously: the refusal's line may follow the client's close.
    const refusal = /"reason":"UNABLE_TO_GET_CRL","msg":"closing connection: client certificate refused"/;
    for (let i = 0; i < 50 && !refusal.test(keyd.stdout()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(keyd.stdout(), refusal);
    const check = await runProcess(process.execPath, [KEYD_CLI, 'keyd', '--config', config, '--check'], { env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE } });
    assert.ok(check.stdout.includes(`tls.crl: warning: ${uncovered}\n`), check.stdout);
  });

  test('keyward certs revoke: the CRL keyd takes; a revocation cuts that front off within seconds and the others stay; openssl reads it; what it refuses', async () => {
    const dir = join(root.dir, 'revoke');
    const pki = join(dir, 'pki');
    const f = (name: string) => join(pki, name);
    const cli = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => runKeyward(args);
    assert.equal((await cli('certs', 'init', pki)).code, 0);
    const pub = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(join(dir, 'b-pub.pem'), pub.publicKey.export({ type: 'spki', format: 'pem' }));
    assert.equal((await cli('certs', 'issue', '--dir', pki, '--public-key', join(dir, 'b-pub.pem'), '--client', '--cn', 'front-b', '--out', join(dir, 'b-cert.pem'))).code, 0);
    const caPem = await readFile(f('ca-cert.pem'), 'utf8');
    const a: Credentials = { caPem, certPem: await readFile(f('front-cert.pem'), 'utf8'), keyPem: await readFile(f('front-key.pem'), 'utf8') };
    const b: Credentials = { caPem, certPem: await readFile(join(dir, 'b-cert.pem'), 'utf8'), keyPem: pub.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };

    // The first CRL, before anything is revoked: what keyd.json names.
    const first = await cli('certs', 'revoke', '--dir', pki);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^wrote \S+crl\.pem: CRL number 1 of CN=keyward private CA, O=keyward, 0 certificate\(s\) revoked in all \(a new CRL\)\n/);
    assert.match(first.stdout, /next update: \S+ \(in 30 d 0 h\); sign it again before then \(keyward certs revoke --dir \S+ --out \S+crl\.pem --days 30\)/);
    assert.ok(first.stdout.includes(`keyd.json, in "tls":\n  "crl": ${JSON.stringify(f('crl.pem'))}\n`), first.stdout);
    assert.equal((await stat(f('crl.pem'))).mode & 0o777, 0o644);
    const json = keydConfigJson(dir, undefined, {
      tls: { cert: f('keyd-cert.pem'), key: f('keyd-key.pem'), clientCa: f('ca-cert.pem'), crl: f('crl.pem') },
      clients: [
        { id: 'cn:front', keys: ['*'] },
        { id: 'cn:front-b', keys: ['*'] },
        { id: 'unix', admin: true },
      ],
    });
    const keyd = await spawnKeyd(await writeKeydConfig(dir, json));
    keyds.push(keyd);
    const port = keyd.tls!.port;
    const connA = await ping(port, a);
    const connB = await ping(port, b);
    assert.deepEqual([connA.answer, connB.answer], ['pong', 'pong'], 'both fronts are served');

    const serialA = new X509Certificate(a.certPem).serialNumber;
    const revoked = await cli('certs', 'revoke', '--dir', pki, f('front-cert.pem'));
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /CRL number 2 of CN=keyward private CA, O=keyward, 1 certificate\(s\) revoked in all\n/);
    assert.ok(revoked.stdout.includes(`  revoked: ${serialA.toLowerCase()} (CN=front, ${f('front-cert.pem')})\n`), revoked.stdout);
    const t0 = Date.now();
    assert.ok(await closesWithin(connA.socket, 5000), "front A's connection is cut");
    const cutMs = Date.now() - t0;
    assert.ok(cutMs < 5000, `cut after ${cutMs} ms`);
    assert.match((await ping(port, a)).answer, /^(closed|ECONNRESET)$/, 'and A cannot connect again');
    assert.equal((await ping(port, b, connB.socket)).answer, 'pong', "front B's connection stays");
    const newB = await ping(port, b);
    assert.equal(newB.answer, 'pong', 'and B connects anew');
    newB.socket.destroy();
    connB.socket.destroy();

    const second = await readFile(f('crl.pem'), 'utf8');
    const text = await runProcess('openssl', ['crl', '-in', f('crl.pem'), '-CAfile', f('ca-cert.pem'), '-noout', '-text']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stderr + text.stdout, /verify OK/);
    assert.match(text.stdout, /X509v3 CRL Number: *\n *2\n/);
    assert.match(text.stdout, new RegExp(`Serial Number: ${serialA}\\n`));

    // Signed again with no certificate (the renewal from cron): the entries stay, the number grows.
    const renewed = await cli('certs', 'revoke', '--dir', pki, '--days', '2');
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.match(renewed.stdout, /CRL number 3 of CN=keyward private CA, O=keyward, 1 certificate\(s\) revoked in all\n +next update: \S+ \(in 2 d 0 h\)/);
    const again = await cli('certs', 'revoke', '--dir', pki, '--serial', serialA);
    assert.match(again.stdout, new RegExp(`CRL number 4 .*\\n  already revoked \\(since \\S+\\): ${serialA.toLowerCase()} \\(--serial\\)\\n`));

    // Refused, the CRL left as it was: a certificate of another CA, a CRL of another CA at --out.
    const kept = await readFile(f('crl.pem'), 'utf8');
    const other = await createCa({ commonName: 'other CA' });
    const stranger = await issueCertificate(other, { keyType: 'ecdsa-p256', commonName: 'stranger', usage: 'client' });
    await writeFile(join(dir, 'stranger.pem'), stranger.certPem);
    const notOurs = await cli('certs', 'revoke', '--dir', pki, join(dir, 'stranger.pem'));
    assert.equal(notOurs.code, 2);
    assert.match(notOurs.stderr, /stranger\.pem \(CN=stranger\) was not issued by the CA \S+ca-cert\.pem but by CN=other CA, O=keyward: this CA's CRL cannot revoke it/);
    await writeFile(join(dir, 'other-crl.pem'), await crlUntil(other, secondsFromNow(86_400_000), 7n));
    const otherCrl = await cli('certs', 'revoke', '--dir', pki, '--out', join(dir, 'other-crl.pem'), f('front-cert.pem'));
    assert.equal(otherCrl.code, 2);
    assert.match(otherCrl.stderr, /other-crl\.pem holds a CRL signed by CN=other CA, O=keyward, not by this CA: certs revoke writes only its own CA's CRL; give another --out/);
    assert.equal(await readFile(f('crl.pem'), 'utf8'), kept);

    // keyd logs each CRL's number, and refuses an older CRL put back (number 2 after 4): the one in force stays.
    for (let i = 0; i < 50 && !/"number":"4"/.test(keyd.stdout()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(keyd.stdout(), /"number":"4",.*"msg":"client CRL loaded"/);
    await writeAtomic(f('crl.pem'), second, 0o644);
    for (let i = 0; i < 50 && !/CRL not reloaded/.test(keyd.stdout()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(keyd.stdout(), /"err":"the CRL of CN=keyward private CA, O=keyward has number 2, lower than the 4 in force: an older CRL","msg":"client CRL not reloaded; the previous one stays in force"/);
    assert.doesNotMatch(first.stdout + revoked.stdout + renewed.stdout + notOurs.stderr + keyd.stdout(), /PRIVATE KEY/);
  });
});
