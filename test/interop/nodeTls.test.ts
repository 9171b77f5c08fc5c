// Interop with Node's own `node:tls` client against the keyward echo server: each suite
// (`ciphersuites`), each group (`ecdhCurve`), each key type with chain and host-name
// verification, ALPN, SNI, HelloRetryRequest, and a 1 MB echo in both directions.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { nodeTlsClient, type NodeTlsClientOptions, type NodeTlsClientResult } from '../support/peers.js';
import { KEY_TYPES, type PkiFixtures } from '../support/pki.js';
import { certificate, GROUPS, KEY_TYPE_NAMES, onlySession, receivedText, startEchoServer, echoServersPerKeyType, SUITES, type EchoServer, type ServerSession } from '../support/keywardServer.js';

let pki: PkiFixtures;
const serverFor = echoServersPerKeyType((p) => (pki = p), { ALPNProtocols: ['echo', 'h2'] });

function explain(r: NodeTlsClientResult): string {
  return JSON.stringify({ ...r, received: r.received.length > 200 ? `${r.received.slice(0, 200)}...` : r.received });
}

/** Connects, verifying the chain against the fixture CA, sends a line and waits for the echo. */
async function nodeEcho(server: EchoServer, opts: NodeTlsClientOptions = {}, payload?: string): Promise<{ result: NodeTlsClientResult; session: ServerSession; sent: string }> {
  const sent = payload ?? `node-${randomBytes(6).toString('hex')}`;
  const mark = server.mark();
  const result = await nodeTlsClient(server.port, { ca: pki.ca.certPem, minVersion: 'TLSv1.3', send: sent, until: sent.slice(-20), timeoutMs: 10_000, ...opts });
  assert.equal(result.timedOut, false, explain(result));
  assert.equal(result.connected, true, explain(result));
  assert.equal(result.authorized, true, `chain not verified: ${explain(result)}`);
  assert.equal(result.protocol, 'TLSv1.3');
  assert.equal(result.received, sent, 'echo');
  const session = onlySession(server, mark);
  assert.equal(receivedText(session), sent);
  return { result, session, sent };
}

describe('node:tls: cipher suites', () => {
  for (const s of SUITES) {
    it(s.name, async () => {
      const { result, session } = await nodeEcho(serverFor('ecdsa-p256'), { ciphers: s.name });
      assert.equal(result.cipher, s.name);
      assert.equal(session.negotiated.cipherName, s.name);
      assert.equal(session.cipher?.standardName, s.name);
    });
  }
});

describe('node:tls: groups', () => {
  for (const g of GROUPS) {
    it(g.node, async () => {
      const { result, session } = await nodeEcho(serverFor('rsa-2048'), { ecdhCurve: g.node });
      assert.equal(result.ephemeralKey, g.nodeEphemeral);
      assert.equal(session.negotiated.group, g.group);
      assert.ok(!session.negotiated.helloRetry);
    });
  }

  it('HelloRetryRequest: X25519 share first to a P-384-only server', async () => {
    const server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.secp384r1] });
    try {
      const { result, session } = await nodeEcho(server, { ecdhCurve: 'X25519:P-384' });
      assert.equal(result.ephemeralKey, 'secp384r1');
      assert.equal(session.negotiated.helloRetry, true);
      assert.equal(session.negotiated.group, NamedGroup.secp384r1);
    } finally {
      await server.close();
    }
  });

  it('X25519MLKEM768 preferred by the server: chosen from a client that has it (OpenSSL 3.5, Node 24), else X25519', async () => {
    const server = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519] });
    try {
      const [major, minor] = process.versions.openssl.split('.').map(Number);
      const clientHasHybrid = major > 3 || (major === 3 && minor >= 5);
      // OpenSSL 3.0 does not know the name at all: that client offers its default groups.
      const { session } = await nodeEcho(server, clientHasHybrid ? { ecdhCurve: 'X25519MLKEM768:X25519' } : {});
      assert.equal(session.negotiated.group, clientHasHybrid ? NamedGroup.X25519MLKEM768 : NamedGroup.x25519);
      assert.ok(!session.negotiated.helloRetry);
    } finally {
      await server.close();
    }
  });
});

describe('node:tls: key types, SNI and host-name check', () => {
  for (const kt of KEY_TYPES) {
    it(kt, async () => {
      const { result, session } = await nodeEcho(serverFor(kt), { servername: 'localhost' });
      assert.equal(result.peerCommonName, 'localhost');
      assert.equal(session.servername, 'localhost');
      assert.equal(session.negotiated.serverName, 'localhost');
      assert.equal(session.negotiated.signatureScheme, KEY_TYPE_NAMES[kt].scheme);
    });
  }

  it('no SNI: the server sees none, the certificate still matches 127.0.0.1', async () => {
    const { session } = await nodeEcho(serverFor('ecdsa-p256'));
    assert.equal(session.servername, false);
    assert.equal(session.negotiated.serverName, undefined);
  });
});

describe('node:tls: ALPN', () => {
  it('server preference among the overlap', async () => {
    const { result, session } = await nodeEcho(serverFor('ed25519'), { ALPNProtocols: ['h2', 'echo'] });
    assert.equal(result.alpn, 'echo');
    assert.equal(session.alpnProtocol, 'echo');
    assert.equal(session.negotiated.alpnProtocol, 'echo');
  });

  it('no overlap: the client sees no_application_protocol', async () => {
    const server = serverFor('ed25519');
    const mark = server.mark();
    const result = await nodeTlsClient(server.port, { ca: pki.ca.certPem, ALPNProtocols: ['spdy/1'], timeoutMs: 10_000 });
    assert.equal(result.connected, false, explain(result));
    assert.equal(result.errorCode, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', explain(result));
    const { sessions, errors } = server.since(mark);
    assert.equal(sessions.length, 0);
    assert.equal(errors[0]?.alertSent, 120);
  });
});

describe('node:tls: bulk', () => {
  it('1 MB echoed back whole', async () => {
    const payload = `${randomBytes(524_288).toString('hex')}-end-${randomBytes(4).toString('hex')}`;
    const { result } = await nodeEcho(serverFor('ecdsa-p256'), {}, payload);
    assert.equal(result.received.length, payload.length);
  });
});
