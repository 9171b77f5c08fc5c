// Version negotiation with real clients. With the default configuration a client limited to
// TLS 1.2 gets TLS 1.2 and TLS 1.0/1.1 clients get protocol_version; a server with
// minVersion TLSv1.3 refuses TLS 1.2 with a protocol_version alert from every peer's point of
// view (openssl, node:tls, gnutls-cli, Python, curl), and goes on serving TLS 1.3 clients.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { curl, curlResolve, gnutlsCli, nodeTlsClient, opensslClient, parseGnutlsOutput, parseOpensslOutput, pythonSsl } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { certificate, describeRun, onlySession, startEchoServer, type EchoServer } from '../support/keywardServer.js';

let pki: PkiFixtures;
let server: EchoServer;
let defaults: EchoServer;

before(async () => {
  pki = await getPki();
  server = await startEchoServer({ certificates: [certificate(pki.server['rsa-2048'])], minVersion: 'TLSv1.3' });
  defaults = await startEchoServer({ certificates: [certificate(pki.server['rsa-2048'])] });
});

after(async () => {
  await server.close();
  await defaults.close();
});

describe('the default configuration', () => {
  it('serves a TLS 1.2-only client with TLS 1.2', async () => {
    const sent = `v12-${randomBytes(6).toString('hex')}`;
    const mark = defaults.mark();
    const run = await opensslClient(defaults.port, { cafile: pki.ca.certPath, args: ['-tls1_2', '-verify_ip', '127.0.0.1'], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
    const summary = parseOpensslOutput(run);
    assert.equal(summary.protocol, 'TLSv1.2', describeRun(run));
    assert.equal(summary.verifyCode, 0, describeRun(run));
    assert.ok(run.stdout.includes(sent), describeRun(run));
    assert.equal(onlySession(defaults, mark).protocol, 'TLSv1.2');
  });

  for (const flag of ['-tls1_1', '-tls1']) {
    it(`refuses openssl s_client ${flag} with protocol_version`, async () => {
      const mark = defaults.mark();
      // SECLEVEL=0: OpenSSL 3.0 would not even offer TLS 1.0/1.1 otherwise.
      const run = await opensslClient(defaults.port, { args: [flag, '-cipher', 'DEFAULT@SECLEVEL=0'], input: 'never\n', timeoutMs: 10_000 });
      assert.equal(parseOpensslOutput(run).handshakeOk, false, describeRun(run));
      assert.match(run.stderr, /alert protocol version|alert number 70/, describeRun(run));
      const { sessions, errors } = defaults.since(mark);
      assert.equal(sessions.length, 0);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].alertSent, 70, errors[0].error.message);
    });
  }
});

/** The refused handshake left exactly one server-side error, with protocol_version sent. */
function assertRefusedOnServer(mark: ReturnType<EchoServer['mark']>): void {
  const { sessions, errors } = server.since(mark);
  assert.equal(sessions.length, 0, 'no session for a TLS 1.2 client');
  assert.equal(errors.length, 1, `one tlsClientError, saw ${errors.map((e) => e.error.message).join('; ')}`);
  assert.equal(errors[0].alertSent, 70, errors[0].error.message);
}

describe('minVersion TLSv1.3: a TLS 1.2-only client gets protocol_version', () => {
  it('openssl s_client -tls1_2', async () => {
    const mark = server.mark();
    const run = await opensslClient(server.port, { args: ['-tls1_2'], input: 'never\n', timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).handshakeOk, false, why);
    assert.match(run.stderr, /alert protocol version|alert number 70/, why);
    assertRefusedOnServer(mark);
  });

  it('node:tls maxVersion TLSv1.2', async () => {
    const mark = server.mark();
    const r = await nodeTlsClient(server.port, { ca: pki.ca.certPem, maxVersion: 'TLSv1.2', timeoutMs: 10_000 });
    assert.equal(r.connected, false, JSON.stringify(r));
    assert.equal(r.errorCode, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', JSON.stringify(r));
    assertRefusedOnServer(mark);
  });

  it('gnutls-cli +VERS-TLS1.2 only', async () => {
    const mark = server.mark();
    const run = await gnutlsCli(server.port, { cafile: pki.ca.certPath, priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2', input: 'never\n', timeoutMs: 10_000 });
    const summary = parseGnutlsOutput(run);
    assert.equal(summary.handshakeCompleted, false, describeRun(run));
    assert.equal(summary.alert, 70, describeRun(run));
    assertRefusedOnServer(mark);
  });

  it('python maximum_version TLSv1_2', async () => {
    const mark = server.mark();
    const run = await pythonSsl(server.port, { cafile: pki.ca.certPath, maxVersion: 'TLSv1_2', timeoutMs: 10_000 });
    assert.equal(run.report?.ok, false, describeRun(run));
    assert.equal(run.report?.reason, 'TLSV1_ALERT_PROTOCOL_VERSION', describeRun(run));
    assertRefusedOnServer(mark);
  });

  it('curl --tls-max 1.2', async () => {
    const mark = server.mark();
    const res = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.ca.certPath,
      resolve: [curlResolve('localhost', server.port)],
      args: ['--tlsv1.2', '--tls-max', '1.2'],
      timeoutMs: 10_000,
    });
    assert.equal(res.code, 35, `curl exit 35 (TLS connect error)\n${describeRun(res)}`);
    assert.match(res.stderr, /protocol version/, describeRun(res));
    assertRefusedOnServer(mark);
  });

  it('the server still serves TLS 1.3 afterwards', async () => {
    const sent = `v13-${randomBytes(6).toString('hex')}`;
    const mark = server.mark();
    const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-verify_ip', '127.0.0.1'], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
    const summary = parseOpensslOutput(run);
    assert.equal(summary.protocol, 'TLSv1.3', describeRun(run));
    assert.equal(summary.verifyCode, 0, describeRun(run));
    assert.ok(run.stdout.includes(sent), describeRun(run));
    assert.equal(onlySession(server, mark).protocol, 'TLSv1.3');
  });
});
