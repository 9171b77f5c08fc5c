// Interop with Python's `ssl` module (3.11 on OpenSSL 3.0) against the keyward echo server:
// every key type with ALPN, every group (Python can pin one curve), and every suite by
// restricting the server (Python cannot choose TLS 1.3 suites), which also shows the
// server's preference order winning over the client's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import type { KeywardServerOptions } from '../../src/node/server.js';
import { pythonSsl, type PythonSslOptions, type PythonSslReport } from '../support/peers.js';
import { getPki, KEY_TYPES, type KeyType, type PkiFixtures } from '../support/pki.js';
import { certificate, describeRun, GROUPS, KEY_TYPE_NAMES, onlySession, receivedText, startEchoServer, SUITES, type EchoServer, type ServerSession } from '../support/keywardServer.js';

let pki: PkiFixtures;
const servers = new Map<KeyType, EchoServer>();

before(async () => {
  pki = await getPki();
  for (const kt of KEY_TYPES) servers.set(kt, await startEchoServer({ certificates: [certificate(pki.server[kt])], ALPNProtocols: ['echo', 'http/1.1'] }));
});

after(async () => {
  for (const s of servers.values()) await s.close();
});

/** One Python connection that verifies against the fixture CA and waits for its echo. */
async function pythonEcho(server: EchoServer, opts: PythonSslOptions = {}): Promise<{ report: PythonSslReport; session: ServerSession }> {
  const sent = `py-${randomBytes(6).toString('hex')}`;
  const mark = server.mark();
  const run = await pythonSsl(server.port, { cafile: pki.ca.certPath, minVersion: 'TLSv1_3', send: sent, until: sent, timeoutMs: 10_000, ...opts });
  const why = describeRun(run);
  assert.ok(run.report, `no report from python\n${why}`);
  assert.equal(run.report.ok, true, `${run.report.error}\n${why}`);
  assert.equal(run.report.version, 'TLSv1.3');
  assert.equal(run.report.received, sent, 'echo');
  const session = onlySession(server, mark);
  assert.equal(receivedText(session), sent);
  return { report: run.report, session };
}

describe('python ssl: key types, with ALPN', () => {
  for (const kt of KEY_TYPES) {
    it(kt, async () => {
      const { report, session } = await pythonEcho(servers.get(kt)!, { alpn: ['http/1.1', 'echo'] });
      // Server preference: "echo" comes first on the server even though Python lists it second.
      assert.equal(report.alpn, 'echo');
      assert.equal(session.alpnProtocol, 'echo');
      assert.equal(session.negotiated.signatureScheme, KEY_TYPE_NAMES[kt].scheme);
    });
  }
});

describe('python ssl: groups (set_ecdh_curve)', () => {
  for (const g of GROUPS) {
    it(g.python, async () => {
      const { session } = await pythonEcho(servers.get('ecdsa-p384')!, { ecdhCurve: g.python });
      assert.equal(session.negotiated.group, g.group);
      assert.ok(!session.negotiated.helloRetry);
    });
  }
  it('default groups: X25519 (the share Python sends)', async () => {
    const { session } = await pythonEcho(servers.get('ecdsa-p256')!);
    assert.equal(session.negotiated.group, NamedGroup.x25519);
  });
});

describe('python ssl: suites chosen by the server', () => {
  it('default server order gives TLS_AES_128_GCM_SHA256 although Python prefers AES-256', async () => {
    const { report } = await pythonEcho(servers.get('rsa-2048')!);
    assert.equal(report.cipher, 'TLS_AES_128_GCM_SHA256');
  });

  const single = (suite: CipherSuite): KeywardServerOptions => ({ certificates: [certificate(pki.server['ed25519'])], tls13CipherSuites: [suite] });
  for (const s of SUITES) {
    it(`server configured with only ${s.name}`, async () => {
      const server = await startEchoServer(single(s.suite));
      try {
        const { report, session } = await pythonEcho(server);
        assert.equal(report.cipher, s.name);
        assert.equal(report.bits, s.suite === CipherSuite.TLS_AES_128_GCM_SHA256 ? 128 : 256);
        assert.equal(session.negotiated.cipherName, s.name);
      } finally {
        await server.close();
      }
    });
  }

  it('server order ChaCha20 first wins', async () => {
    const server = await startEchoServer({
      certificates: [certificate(pki.server['ecdsa-p256'])],
      tls13CipherSuites: [CipherSuite.TLS_CHACHA20_POLY1305_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_AES_128_GCM_SHA256],
    });
    try {
      const { report } = await pythonEcho(server);
      assert.equal(report.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    } finally {
      await server.close();
    }
  });
});
