/**
 * TLS 1.3 external PSKs with real peers, the PSK in keyd or in a key process (never in the
 * process that runs TLS): `openssl s_client -tls1_3 -psk` against a keyward server (psk_dhe_ke,
 * and psk_ke with -allow_no_dhe_kex), the keyward client against `openssl s_server -psk
 * -nocert`, gnutls-cli with +ECDHE-PSK and +PSK, keyward client and server with the PSK only
 * in keyd (each step audited with the identity), a wrong PSK and an unknown identity
 * (decrypt_error), an unlisted identity beside a certificate (the certificate handshake),
 * tickets after a PSK handshake, and a PSK-only client meeting a certificate.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyd } from '../../src/keyd/server.js';
import type { Tls13PskOperations } from '../../src/keys/keyOperations.js';
import { startPskProcess, type KeyProcessPsk } from '../../src/keys/keyProcess.js';
import { connectKeydAdmin, connectRemotePsk, type RemotePsk } from '../../src/keys/remoteKey.js';
import { connect, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { exchange, handshake, sendSeen, sServer, stopSServers } from '../client/clientHelpers.js';
import { makeKeydPki, readAudit, startTestKeyd, tempDir, tlsClientOptions } from '../support/keydFixture.js';
import { certificate, startEchoServer, waitUntil, type EchoServer } from '../support/keywardServer.js';
import { gnutlsCli, opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const PSK = randomBytes(32);
const ID = 'tls13-psk-client';
const HEX = PSK.toString('hex');

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
let keyd: Keyd;
let keydPsk: RemotePsk;
let clientKeydPsk: RemotePsk;
let processPsk: KeyProcessPsk;
const servers: EchoServer[] = [];

before(async () => {
  pki = await getPki();
  dir = await tempDir('tls13-psk-');
  const kpki = await makeKeydPki(dir.dir, ['front', 'admin']);
  keyd = (await startTestKeyd(dir.dir, kpki)).keyd;
  const admin = await connectKeydAdmin(tlsClientOptions(kpki, 'admin', keyd.tlsAddress!));
  try {
    await admin.putPsk(Buffer.from(ID), PSK);
  } finally {
    admin.close();
  }
  keydPsk = await connectRemotePsk(tlsClientOptions(kpki, 'front', keyd.tlsAddress!));
  clientKeydPsk = await connectRemotePsk(tlsClientOptions(kpki, 'front', keyd.tlsAddress!));
  const pskPath = join(dir.dir, 'psks.txt');
  await writeFile(pskPath, `${ID}:${HEX}\n`, { mode: 0o600 });
  processPsk = await startPskProcess({ pskPath });
});

after(async () => {
  stopSServers();
  await Promise.all(servers.map((s) => s.close()));
  await keydPsk?.close();
  await clientKeydPsk?.close();
  await processPsk?.close();
  await keyd?.close();
  await dir?.cleanup();
});

/** A PSK-only keyward echo server (x25519 only, so a client without it gets psk_ke when allowed). */
async function pskServer(holder: Tls13PskOperations, extra: Partial<Parameters<typeof startEchoServer>[0]> = {}): Promise<EchoServer> {
  const s = await startEchoServer({ certificates: [], groups: [NamedGroup.x25519], tls13Psk: { holder, allowPskOnly: true }, ...extra });
  servers.push(s);
  return s;
}

function sClient(port: number, args: string[], input = 'ping\n') {
  return opensslClient(port, { args: ['-tls1_3', '-psk_identity', ID, ...args], input, waitFor: input.trim(), timeoutMs: 10_000 });
}

async function keydAudit(): Promise<Array<Record<string, unknown>>> {
  await keyd.audit.flush();
  return readAudit(join(dir.dir, 'audit.log'));
}

const alertOf = (r: { stdout: string; stderr: string }) => /alert ([a-z ]+?)(?::|$)/m.exec(r.stdout + r.stderr)?.[1];

describe('TLS 1.3 external PSK with real peers, the PSK in a key holder', { timeout: 90_000 }, () => {
  for (const [name, holder] of [
    ['keyd', () => keydPsk],
    ['the key process', () => processPsk],
  ] as const) {
    it(`openssl s_client -psk against a keyward server, the PSK in ${name}: psk_dhe_ke, and psk_ke with -allow_no_dhe_kex`, async () => {
      const s = await pskServer(holder());
      const mark = s.mark();
      const dhe = await sClient(s.port, ['-psk', HEX]);
      assert.match(dhe.stdout, /ping/, dhe.stdout + dhe.stderr);
      assert.equal(parseOpensslOutput(dhe).group, 'X25519');
      const ke = await sClient(s.port, ['-psk', HEX, '-allow_no_dhe_kex', '-groups', 'P-256'], 'pong\n');
      assert.match(ke.stdout, /pong/, ke.stdout + ke.stderr);
      assert.equal(parseOpensslOutput(ke).serverTempKey, undefined, 'psk_ke: no key exchange');
      const { sessions, errors } = s.since(mark);
      assert.deepEqual(errors, []);
      assert.deepEqual(sessions.map((x) => [x.negotiated.pskIdentity, x.negotiated.group, x.negotiated.peerCertificates]), [
        [ID, NamedGroup.x25519, undefined],
        [ID, undefined, undefined],
      ]);
    });
  }

  it('a wrong PSK and an unknown identity get decrypt_error alike (keyd and the key process)', async () => {
    for (const holder of [keydPsk, processPsk]) {
      const s = await pskServer(holder);
      const wrong = await sClient(s.port, ['-psk', randomBytes(32).toString('hex')]);
      const unknown = await opensslClient(s.port, { args: ['-tls1_3', '-psk', HEX, '-psk_identity', 'nobody-here'], timeoutMs: 10_000 });
      assert.equal(alertOf(wrong), 'decrypt error', wrong.stderr);
      assert.equal(alertOf(unknown), 'decrypt error', unknown.stderr);
      await waitUntil(() => s.errors.length === 2, 'two refused handshakes');
      assert.deepEqual(s.errors.map((e) => e.alertSent), [51, 51]);
    }
    const verify = (await keydAudit()).filter((l) => l.op === 'tls13-psk-verify-binder');
    assert.ok(verify.some((l) => l.outcome === 'bad-binder' && l.pskIdentity === Buffer.from(ID).toString('hex')), 'keyd audits the wrong binder');
    assert.ok(verify.some((l) => l.outcome === 'unknown-psk-identity' && l.pskIdentity === Buffer.from('nobody-here').toString('hex')), 'keyd audits the unknown identity');
  });

  it('the keyward client against openssl s_server -psk -nocert, the PSK in keyd: psk_dhe_ke, and psk_ke with -allow_no_dhe_kex', async () => {
    const dhe = await sServer(['-tls1_3', '-nocert', '-psk', HEX, '-psk_identity', ID]);
    const c = await handshake(dhe.port, pki.ca.certPem, { tls13Psk: { holder: clientKeydPsk, identity: ID } });
    assert.equal(c.negotiated.pskIdentity, ID);
    assert.equal(c.negotiated.group, NamedGroup.x25519);
    assert.equal(c.getPeerX509Certificate(), undefined, 'no certificate');
    await sendSeen(c, dhe, 'psk_dhe_ke through keyd');
    const ke = await sServer(['-tls1_3', '-nocert', '-psk', HEX, '-psk_identity', ID, '-allow_no_dhe_kex']);
    const c2 = await handshake(ke.port, pki.ca.certPem, { tls13Psk: { holder: clientKeydPsk, identity: ID, keyExchange: 'psk_ke' } });
    assert.equal(c2.negotiated.group, undefined);
    await sendSeen(c2, ke, 'psk_ke through keyd');
  });

  it('gnutls-cli with a TLS 1.3 PSK (+ECDHE-PSK, and +PSK alone for psk_ke) against the keyward server, the PSK in keyd', async () => {
    const s = await pskServer(keydPsk);
    const mark = s.mark();
    for (const kx of ['+ECDHE-PSK', '+PSK']) {
      const r = await gnutlsCli(s.port, {
        priority: `NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:${kx}`,
        args: ['--pskusername', ID, '--pskkey', HEX],
        input: `hello ${kx}\n`,
        waitFor: `hello ${kx}`,
        timeoutMs: 10_000,
      });
      assert.match(r.stdout, /PSK authentication\. Connected as 'tls13-psk-client'/, r.stdout + r.stderr);
      assert.ok(r.stdout.includes(`hello ${kx}`), r.stdout);
    }
    const { sessions, errors } = s.since(mark);
    assert.deepEqual(errors, []);
    assert.deepEqual(sessions.map((x) => [x.negotiated.pskIdentity, x.negotiated.group]), [
      [ID, NamedGroup.x25519],
      [ID, undefined],
    ]);
  });

  it('keyward client and server with the PSK only in keyd; keyd audits every step with the identity', async () => {
    const before = (await keydAudit()).length;
    const s = await pskServer(keydPsk);
    // X25519 first, as the server has only it: one ClientHello, one binder, on every Node.
    const c = await handshake(s.port, pki.ca.certPem, { tls13Psk: { holder: clientKeydPsk, identity: ID }, groups: ['X25519'] });
    assert.equal(c.negotiated.pskIdentity, ID);
    assert.equal(await exchange(c, 'through keyd twice'), 'through keyd twice');
    c.destroy();
    const lines = (await keydAudit()).slice(before).filter((l) => String(l.op).startsWith('tls13-psk-'));
    const ops = lines.map((l) => l.op).sort();
    // The server asks for the resumption master secret too: it sends tickets after the handshake.
    assert.deepEqual(ops, [
      'tls13-psk-application-secrets',
      'tls13-psk-application-secrets',
      'tls13-psk-binder',
      'tls13-psk-handshake-secrets',
      'tls13-psk-handshake-secrets',
      'tls13-psk-resumption-secret',
      'tls13-psk-verify-binder',
    ]);
    for (const l of lines) {
      assert.equal(l.pskIdentity, Buffer.from(ID).toString('hex'));
      assert.equal(l.outcome, 'ok');
      assert.doesNotMatch(JSON.stringify(l), new RegExp(HEX, 'i'), 'no PSK in the audit');
    }
  });

  it('beside a certificate: an unlisted identity gets the certificate handshake; a listed one with a wrong PSK decrypt_error', async () => {
    const s = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], tls13Psk: { holder: keydPsk, identities: [ID] } });
    servers.push(s);
    const stranger = await opensslClient(s.port, { args: ['-tls1_3', '-psk', HEX, '-psk_identity', 'stranger'], cafile: pki.ca.certPath, servername: 'localhost', input: 'cert\n', waitFor: 'cert', timeoutMs: 10_000 });
    const summary = parseOpensslOutput(stranger);
    assert.equal(summary.verifyCode, 0, stranger.stdout);
    assert.equal(summary.peerSignatureType, 'ECDSA');
    const wrong = await opensslClient(s.port, { args: ['-tls1_3', '-psk', randomBytes(32).toString('hex'), '-psk_identity', ID], timeoutMs: 10_000 });
    assert.equal(alertOf(wrong), 'decrypt error', wrong.stderr);
    const good = await sClient(s.port, ['-psk', HEX]);
    assert.match(good.stdout, /ping/);
    assert.deepEqual(s.sessions.map((x) => x.negotiated.pskIdentity), [undefined, ID]);
  });

  it('tickets after a PSK handshake (the holder gives the resumption master secret): openssl resumes without the PSK, the identity kept', async () => {
    const s = await pskServer(keydPsk);
    const sess = join(dir.dir, 'psk.sess');
    const first = await sClient(s.port, ['-psk', HEX, '-sess_out', sess]);
    assert.match(first.stdout, /ping/);
    // No -psk now: a PSK-only server takes this connection only by resuming the ticket.
    const second = await opensslClient(s.port, { args: ['-tls1_3', '-sess_in', sess], input: 'again\n', waitFor: 'again', timeoutMs: 10_000 });
    assert.match(second.stdout, /again/, second.stdout + second.stderr);
    assert.equal(s.sessions.at(-1)!.negotiated.resumed, true);
    assert.equal(s.sessions.at(-1)!.negotiated.pskIdentity, ID, 'the ticket carries the identity the PSK handshake authenticated');
  });

  it('a PSK-only client meeting a certificate: refused without trust anchors, verified with them', async () => {
    const s = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])] });
    servers.push(s);
    const opts: KeywardConnectOptions = { port: s.port, host: 'localhost', tls13Psk: { holder: keydPsk, identity: ID }, handshakeTimeout: 10_000 };
    const refused = connect(opts);
    const [err] = (await once(refused, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_HANDSHAKE_FAILURE');
    assert.match(err.message, /did not take the PSK/);
    const verified = await handshake(s.port, pki.ca.certPem, { tls13Psk: { holder: keydPsk, identity: ID } });
    assert.equal(verified.authorized, true);
    assert.equal(verified.negotiated.pskIdentity, undefined);
    verified.destroy();
  });
});
