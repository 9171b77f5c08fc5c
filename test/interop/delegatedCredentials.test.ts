// Delegated credentials (RFC 9345) from keyward servers to real clients. NSS's `tstclnt -B`
// accepts the credential ("Received a Delegated Credential") with the certificate key in
// keyd and in a key process; keyd's audit log shows the one credential it signed and no
// sign for those handshakes. From the same server, clients that do not offer DCs (tstclnt
// without -B, openssl s_client, curl) get the certificate key's signature: one keyd sign
// each. keyward's own client offers them when asked and sees the credential used. A
// manager whose renewals fail until its credential is gone makes the server fall back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DelegatedCredentialManager } from '../../src/keys/delegatedCredentials.js';
import { LocalKey } from '../../src/keys/localKey.js';
import { connect } from '../../src/node/clientSocket.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { FakeClock, TestIssuer } from '../support/dcClock.js';
import { startDcFronts, type DcFronts } from '../support/dcFronts.js';
import { delegationCert } from '../support/delegationPki.js';
import { tempDir } from '../support/keydFixture.js';
import { describeRun, onlySession, startEchoServer, waitUntil, type EchoServer, type ServerSession } from '../support/keywardServer.js';
import { createNssDb, tstclnt } from '../support/nss.js';
import { curl, curlResolve, opensslClient, parseOpensslOutput } from '../support/peers.js';

let fronts: DcFronts;
let dir: { dir: string; cleanup: () => Promise<void> };
let db: string;
const servers = new Map<string, EchoServer>();

before(async () => {
  dir = await tempDir('keyward-dc-nss-');
  fronts = await startDcFronts();
  db = await createNssDb(dir.dir, [{ nickname: 'keyward test CA', certPath: fronts.pki.ca.certPath }]);
  for (const h of [fronts.keyd, fronts.keyProcess]) servers.set(h.name, await startEchoServer({ certificates: [h.certificate] }));
});

after(async () => {
  for (const s of servers.values()) await s.close();
  await fronts?.close();
  await dir?.cleanup();
});

/** The one session `server` established by `run`. */
async function sessionOf(server: EchoServer, run: () => Promise<unknown>): Promise<ServerSession> {
  const mark = server.mark();
  await run();
  await waitUntil(() => server.since(mark).sessions.length + server.since(mark).errors.length > 0, 'the server to finish the handshake');
  return onlySession(server, mark);
}

describe('delegated credentials served by keyward', () => {
  for (const name of ['keyd', 'key process']) {
    it(`tstclnt -B accepts the credential, the certificate key in ${name}`, async () => {
      const server = servers.get(name)!;
      const before = await fronts.audit();
      let summary;
      const session = await sessionOf(server, async () => {
        const run = await tstclnt(server.port, { db, host: 'localhost', delegatedCredentials: true });
        summary = run.summary;
        assert.equal(run.summary.handshakeOk, true, describeRun(run));
      });
      assert.equal(summary!.delegatedCredential, true, 'Received a Delegated Credential');
      assert.equal(summary!.signatureScheme, 'ecdsa_secp256r1_sha256');
      assert.equal(session.negotiated.delegatedCredential, true);
      assert.equal(session.negotiated.signatureScheme, SignatureScheme.ecdsa_secp256r1_sha256);
      const after = await fronts.audit();
      assert.deepEqual(after, before, 'no keyd operation for this handshake');
      assert.equal(after.delegatedCredential, 1, 'keyd signed one credential, at start');
    });
  }

  it('clients that do not offer DCs get the key holder signature from the same server: one keyd sign each', async () => {
    const server = servers.get('keyd')!;
    const ca = fronts.pki.ca.certPath;
    const before = await fronts.audit();
    const runs: Array<[string, () => Promise<unknown>]> = [
      ['tstclnt without -B', async () => assert.equal((await tstclnt(server.port, { db, host: 'localhost' })).summary.delegatedCredential, false)],
      [
        'openssl s_client',
        async () => {
          const run = await opensslClient(server.port, { servername: 'localhost', cafile: ca });
          const s = parseOpensslOutput(run);
          assert.ok(s.handshakeOk && s.verifyCode === 0, describeRun(run));
        },
      ],
      [
        'curl',
        async () => {
          const run = await curl(`https://localhost:${server.port}/`, { cacert: ca, resolve: [curlResolve('localhost', server.port)], args: ['--max-time', '5'] });
          // The echo server answers no HTTP; the verified TLS handshake is what counts here.
          assert.equal(run.tlsVersion, 'TLSv1.3', describeRun(run));
          assert.match(run.stderr, /SSL certificate verify ok/, describeRun(run));
        },
      ],
    ];
    for (const [what, run] of runs) {
      const session = await sessionOf(server, run);
      assert.equal(session.negotiated.delegatedCredential, undefined, what);
      assert.equal(session.negotiated.version, 'TLSv1.3', what);
    }
    const after = await fronts.audit();
    assert.equal(after.sign - before.sign, runs.length, 'keyd signed once per handshake');
    assert.equal(after.delegatedCredential, before.delegatedCredential);
  });

  it("keyward's client offers them when asked and verifies the credential", async () => {
    const server = servers.get('key process')!;
    for (const offer of [true, false]) {
      const socket = connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: fronts.pki.ca.certPem, delegatedCredentials: offer });
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      assert.equal(socket.negotiated.delegatedCredential, offer ? true : undefined);
      socket.end();
    }
  });

  it('a renewal that fails until the credential is gone: the server falls back to the key holder', async () => {
    // The manager's clock starts an hour before now, so its one-hour credential ends now.
    const cert = await delegationCert();
    const clock = new FakeClock(Date.now() - 3600_000 + 30_000);
    const issuer = new TestIssuer(cert, clock);
    const m = new DelegatedCredentialManager({ issuer, certificate: cert.der, now: clock.now, timers: clock });
    assert.equal(await m.start(), true);
    issuer.failing = true;
    await clock.advance(Date.now() - clock.t, m);
    assert.ok(m.stats.failures > 0 && m.stats.expirations === 1, JSON.stringify(m.stats));
    const server = await startEchoServer({ certificates: [{ cert: cert.pem, key: new LocalKey(cert.privateKey), delegatedCredentials: m }] });
    try {
      const session = await sessionOf(server, async () => {
        // The self-signed test certificate is not in the NSS database: the handshake is what counts.
        const run = await tstclnt(server.port, { db, host: 'localhost', delegatedCredentials: true, args: ['-o'] });
        assert.equal(run.summary.delegatedCredential, false, describeRun(run));
      });
      assert.equal(session.negotiated.delegatedCredential, undefined);
    } finally {
      m.stop();
      await server.close();
    }
  });
});
