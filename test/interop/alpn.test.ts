// ALPN (RFC 7301) with real clients: the server's preference wins among the protocols both
// offer, no overlap is refused with no_application_protocol, and a client without ALPN is
// served without it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gnutlsCli, opensslClient, parseGnutlsOutput, parseOpensslOutput, pythonSsl } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { certificate, describeRun, onlySession, startEchoServer, token, type EchoServer } from '../support/keywardServer.js';

let pki: PkiFixtures;
let server: EchoServer;

before(async () => {
  pki = await getPki();
  server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], ALPNProtocols: ['h2', 'echo', 'http/1.1'] });
});

after(() => server.close());


describe('ALPN: overlap chosen by server preference', () => {
  it('openssl -alpn http/1.1,echo gets echo', async () => {
    const sent = token('alpn');
    const mark = server.mark();
    const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-tls1_3', '-alpn', 'http/1.1,echo'], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).alpn, 'echo', why);
    assert.ok(run.stdout.includes(sent), why);
    const s = onlySession(server, mark);
    assert.equal(s.alpnProtocol, 'echo');
    assert.equal(s.negotiated.alpnProtocol, 'echo');
  });

  it('gnutls-cli --alpn http/1.1 --alpn echo gets echo', async () => {
    const sent = token('alpn');
    const mark = server.mark();
    const run = await gnutlsCli(server.port, {
      cafile: pki.ca.certPath,
      priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3',
      args: ['--alpn', 'http/1.1', '--alpn', 'echo'],
      input: `${sent}\n`,
      waitFor: sent,
      timeoutMs: 10_000,
    });
    const why = describeRun(run);
    assert.equal(parseGnutlsOutput(run).alpn, 'echo', why);
    assert.ok(run.stdout.includes(sent), why);
    assert.equal(onlySession(server, mark).alpnProtocol, 'echo');
  });

  it('python with [http/1.1, h2] gets h2', async () => {
    const sent = token('alpn');
    const mark = server.mark();
    const run = await pythonSsl(server.port, { cafile: pki.ca.certPath, alpn: ['http/1.1', 'h2'], send: sent, until: sent, timeoutMs: 10_000 });
    assert.equal(run.report?.alpn, 'h2', describeRun(run));
    assert.equal(run.report?.received, sent);
    assert.equal(onlySession(server, mark).alpnProtocol, 'h2');
  });

  it('a client without ALPN is served without it', async () => {
    const sent = token('alpn');
    const mark = server.mark();
    const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-tls1_3'], input: `${sent}\n`, waitFor: sent, timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.match(run.stdout, /^No ALPN negotiated/m, why);
    assert.ok(run.stdout.includes(sent), why);
    const s = onlySession(server, mark);
    assert.equal(s.alpnProtocol, false);
    assert.equal(s.negotiated.alpnProtocol, undefined);
  });
});

describe('ALPN: no overlap', () => {
  it('openssl -alpn spdy/3,foo sees no_application_protocol; the server logs the alert it sent', async () => {
    const mark = server.mark();
    const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-tls1_3', '-alpn', 'spdy/3,foo'], input: 'never\n', timeoutMs: 10_000 });
    const why = describeRun(run);
    assert.equal(parseOpensslOutput(run).handshakeOk, false, why);
    assert.match(run.stderr, /no application protocol|alert number 120/, why);
    const { sessions, errors } = server.since(mark);
    assert.equal(sessions.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].alertSent, 120, errors[0].error.message);
  });

  it('gnutls-cli --alpn foo receives alert 120', async () => {
    const run = await gnutlsCli(server.port, { cafile: pki.ca.certPath, priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3', args: ['--alpn', 'foo'], input: 'never\n', timeoutMs: 10_000 });
    const summary = parseGnutlsOutput(run);
    assert.equal(summary.handshakeCompleted, false, describeRun(run));
    assert.equal(summary.alert, 120, describeRun(run));
  });
});
