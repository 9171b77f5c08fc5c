// What keyward answers TLS 1.2 clients that want what it leaves out on purpose
// (docs/security.md, "TLS 1.2 cipher suites"): CBC suites only, or an FFDHE group as the
// only entry of supported_groups. Both get handshake_failure in answer to the ClientHello,
// with a reason that names the cause; never a ServerKeyExchange on a curve the client did
// not list (RFC 8422 5.1).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gnutlsCli, opensslClient, parseGnutlsOutput, parseOpensslOutput } from '../support/peers.js';
import { getPki } from '../support/pki.js';
import { certificate, describeRun, startEchoServer, waitUntil, type EchoServer } from '../support/keywardServer.js';

const TIMEOUT = 10_000;
let server: EchoServer;

before(async () => {
  const pki = await getPki();
  server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256']), certificate(pki.server['rsa-2048'])] });
});

after(async () => {
  await server?.close();
});

/** The server's one handshake error since `mark`. */
async function refusal(mark: ReturnType<EchoServer['mark']>) {
  await waitUntil(() => server.since(mark).errors.length === 1, 'the refusal');
  return server.since(mark).errors[0];
}

describe('CBC suites are not offered', () => {
  it('openssl s_client -tls1_2 with CBC suites only: handshake_failure, "no CBC"', async () => {
    const mark = server.mark();
    const run = await opensslClient(server.port, { args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES256-SHA:AES128-SHA256:AES256-SHA'], input: 'x\n', timeoutMs: TIMEOUT });
    assert.equal(parseOpensslOutput(run).handshakeOk, false, describeRun(run));
    assert.match(run.stderr, /alert handshake failure/, describeRun(run));
    const e = await refusal(mark);
    assert.equal(e.alertSent, 40);
    assert.match(e.error.message, /no TLS 1\.2 cipher suite keyward implements.*no CBC/);
  });

  it('gnutls-cli with AES-CBC and HMAC only: handshake_failure', async () => {
    const mark = server.mark();
    const run = await gnutlsCli(server.port, { priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC:-MAC-ALL:+SHA1:+SHA256', input: 'x\n', timeoutMs: TIMEOUT });
    assert.equal(parseGnutlsOutput(run).alert, 40, describeRun(run));
    assert.equal((await refusal(mark)).alertSent, 40);
  });
});

describe('a TLS 1.2 client whose supported_groups lists only ffdhe2048', () => {
  it('openssl -groups ffdhe2048 (no supported_groups at all in its TLS 1.2 hello): handshake_failure, no ECDHE on a curve it lacks', async () => {
    const mark = server.mark();
    const run = await opensslClient(server.port, { args: ['-tls1_2', '-groups', 'ffdhe2048'], input: 'x\n', timeoutMs: TIMEOUT });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).handshakeOk, false, why);
    assert.match(run.stderr, /alert handshake failure/, why);
    assert.doesNotMatch(run.stdout + run.stderr, /Server Temp Key|wrong curve/, why);
    const e = await refusal(mark);
    assert.equal(e.alertSent, 40);
    assert.match(e.error.message, /no ECDHE curve in common: the client's supported_groups is absent from a hello with other extensions, and keyward has no DHE suites/);
  });

  it('gnutls-cli GROUP-FFDHE2048 (offering DHE-RSA too): handshake_failure', async () => {
    const mark = server.mark();
    const run = await gnutlsCli(server.port, { priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:+DHE-RSA:-GROUP-ALL:+GROUP-FFDHE2048', input: 'x\n', timeoutMs: TIMEOUT });
    assert.equal(parseGnutlsOutput(run).alert, 40, describeRun(run));
    assert.match((await refusal(mark)).error.message, /no ECDHE curve in common: the client's supported_groups lists ffdhe2048,/);
  });

  it('the same client with TLS 1.3 allowed gets ffdhe2048 there (RFC 7919 in TLS 1.3)', async () => {
    const run = await opensslClient(server.port, { args: ['-groups', 'ffdhe2048'], input: 'x\n', timeoutMs: TIMEOUT });
    const s = parseOpensslOutput(run);
    assert.equal(s.protocol, 'TLSv1.3', describeRun(run));
    assert.equal(s.group, 'ffdhe2048', describeRun(run));
  });
});
