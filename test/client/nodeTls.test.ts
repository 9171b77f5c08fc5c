/**
 * keyward's client against node:tls servers: every server key type in TLS 1.3 and 1.2, each
 * TLS 1.3 suite, a HelloRetryRequest (the client sends a share for its first group only),
 * KeyUpdate both ways, ALPN, exporters matching the server's, and each certificate failure
 * ending the handshake with its alert (seen by the server) and a readable authorizationError.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { CertificateVerificationError, verifyChain } from '../../src/node/peerVerification.js';
import { waitUntil } from '../support/keywardServer.js';
import { getPki, KEY_TYPES, type PkiFixtures } from '../support/pki.js';
import { exchange as echo, handshake as connectTo } from './clientHelpers.js';

let pki: PkiFixtures;
const servers: tls.Server[] = [];

before(async () => {
  pki = await getPki();
});
after(() => {
  for (const s of servers) s.close();
});

interface NodeServer {
  port: number;
  /** Errors of failed handshakes, as node reports them (they name the alert the client sent). */
  clientErrors: Error[];
  /** Exporter output of each connection, label "EXPORTER-test", context "ctx". */
  exported: Buffer[];
}

async function nodeServer(opts: tls.TlsOptions): Promise<NodeServer> {
  const ns: NodeServer = { port: 0, clientErrors: [], exported: [] };
  const server = tls.createServer(opts, (c) => {
    ns.exported.push(c.exportKeyingMaterial(32, 'EXPORTER-test', Buffer.from('ctx')));
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end());
    c.on('error', () => undefined);
  });
  server.on('tlsClientError', (err) => ns.clientErrors.push(err));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  ns.port = (server.address() as AddressInfo).port;
  return ns;
}



const handshake = (port: number, opts: Partial<KeywardConnectOptions> = {}) => connectTo(port, pki.ca.certPem, opts);

async function close(c: KeywardClientSocket): Promise<void> {
  c.end();
  if (!c.destroyed) await once(c, 'close');
}

async function failure(port: number, opts: Partial<KeywardConnectOptions>): Promise<Error & { code?: string }> {
  const c = connect({ port, host: 'localhost', ca: pki.ca.certPem, handshakeTimeout: 5_000, ...opts });
  const [err] = await once(c, 'error');
  return err as Error & { code?: string };
}

describe('client vs node:tls: key types and versions', () => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    for (const kt of KEY_TYPES) {
      it(`${version} with a ${kt} server`, async () => {
        const s = await nodeServer({ key: pki.server[kt].keyPem, cert: pki.server[kt].chainPem, maxVersion: version, ALPNProtocols: ['h2', 'http/1.1'] });
        const c = await handshake(s.port, { ALPNProtocols: ['http/1.1'] });
        assert.equal(c.getProtocol(), version);
        assert.equal(c.authorized, true);
        assert.equal(c.authorizationError, null);
        assert.equal(c.alpnProtocol, 'http/1.1');
        assert.equal(c.servername, 'localhost');
        assert.equal(c.getPeerCertificate().subject.CN, 'localhost');
        assert.equal(await echo(c, `hello ${kt}`), `hello ${kt}`);
        assert.deepEqual(c.exportKeyingMaterial(32, 'EXPORTER-test', Buffer.from('ctx')), s.exported[0], 'both ends export the same keying material');
        await close(c);
      });
    }
  }
});

describe('client vs node:tls: suites, groups, HelloRetryRequest, KeyUpdate', () => {
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    it(suite, async () => {
      const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
      const c = await handshake(s.port, { cipherSuites: [suite] });
      assert.equal(c.getCipher()?.standardName, suite);
      assert.equal(await echo(c, 'x'.repeat(40_000)), 'x'.repeat(40_000));
      await close(c);
    });
  }

  for (const [curve, group] of [['P-256', 'prime256v1'], ['P-384', 'secp384r1'], ['P-521', 'secp521r1'], ['X448', 'X448']] as const) {
    it(`server accepting only ${curve}: a HelloRetryRequest for it`, async () => {
      const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem, ecdhCurve: curve });
      const c = await handshake(s.port, { groups: ['X25519', 'P-256', 'P-384', 'P-521', 'X448'] });
      assert.equal(c.negotiated.helloRetry, true);
      assert.equal(c.getEphemeralKeyInfo()?.name, group);
      assert.equal(await echo(c, 'after retry'), 'after retry');
      await close(c);
    });
  }

  it('X25519MLKEM768 first: the hybrid where the server has it (OpenSSL 3.5, Node 24), else a retry for X25519', async () => {
    const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
    const c = await handshake(s.port, { groups: ['X25519MLKEM768', 'X25519'] });
    const [major, minor] = process.versions.openssl.split('.').map(Number);
    const serverHasHybrid = major > 3 || (major === 3 && minor >= 5);
    assert.equal(c.getEphemeralKeyInfo()?.name, serverHasHybrid ? 'X25519MLKEM768' : 'X25519');
    assert.equal(c.negotiated.helloRetry, serverHasHybrid ? undefined : true);
    assert.equal(await echo(c, 'hybrid'), 'hybrid');
    await close(c);
  });

  it('no HelloRetryRequest when the first group is the server\'s', async () => {
    const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
    const c = await handshake(s.port, { groups: ['P-256', 'X25519'] });
    assert.equal(c.negotiated.helloRetry, undefined);
    assert.equal(c.getEphemeralKeyInfo()?.name, 'prime256v1');
    await close(c);
  });

  it('KeyUpdate both ways: ours, and the one the server sends when we ask', async () => {
    const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
    const c = await handshake(s.port);
    for (let i = 0; i < 3; i++) {
      c.keyUpdate(i % 2 === 0);
      assert.equal(await echo(c, `round ${i}`), `round ${i}`);
    }
    await close(c);
  });

  it('TLS 1.2 ECDHE with each group the server restricts to', async () => {
    for (const curve of ['P-256', 'P-384', 'X25519']) {
      const s = await nodeServer({ key: pki.server['rsa-2048'].keyPem, cert: pki.server['rsa-2048'].chainPem, maxVersion: 'TLSv1.2', ecdhCurve: curve });
      const c = await handshake(s.port);
      assert.equal(c.getProtocol(), 'TLSv1.2');
      assert.equal(c.negotiated.extendedMasterSecret, true);
      assert.equal(await echo(c, curve), curve);
      await close(c);
    }
  });
});

describe('client vs node:tls: certificate failures', () => {
  it('an unknown CA: unknown_ca, UNABLE_TO_VERIFY_LEAF_SIGNATURE; rejectUnauthorized false connects unauthorized', async () => {
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      const s = await nodeServer({ key: pki.untrusted.server.keyPem, cert: pki.untrusted.server.certPem, maxVersion: version });
      const err = await failure(s.port, {});
      assert.equal(err.code, 'ERR_TLS_ALERT_SENT_UNKNOWN_CA', version);
      assert.match(err.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      await waitUntil(() => s.clientErrors.length > 0, 'the server to report the failed handshake');
      assert.match(s.clientErrors[0].message, /unknown ca/i, 'the server saw the alert');
      const c = await handshake(s.port, { rejectUnauthorized: false });
      assert.equal(c.authorized, false);
      assert.equal((c.authorizationError as CertificateVerificationError).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      assert.equal(await echo(c, 'still works'), 'still works');
      await close(c);
    }
  });

  it('a wrong host name: bad_certificate, ERR_TLS_CERT_ALTNAME_INVALID; checkServerIdentity can accept it', async () => {
    const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
    const err = await failure(s.port, { servername: 'wrong.test' });
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_BAD_CERTIFICATE');
    assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
    await waitUntil(() => s.clientErrors.length > 0, 'the server to report the failed handshake');
    assert.match(s.clientErrors[0].message, /bad certificate/i);
    const seen: string[] = [];
    const c = await handshake(s.port, { servername: 'wrong.test', checkServerIdentity: (host, cert) => void seen.push(`${host} ${cert.subject.CN}`) });
    assert.deepEqual(seen, ['wrong.test localhost']);
    assert.equal(c.authorized, true);
    await close(c);
  });

  it('an IP address is checked against IP SANs and sends no SNI', async () => {
    const s = await nodeServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem });
    const c = await handshake(s.port, { host: '127.0.0.1' });
    assert.equal(c.servername, false);
    assert.equal(c.authorized, true);
    await close(c);
  });

  it('an expired or not yet valid chain: certificate_expired, bad_certificate (the verifier at another time)', () => {
    const chain = [new X509Certificate(pki.server['ecdsa-p256'].certPem)];
    const ca = [new X509Certificate(pki.ca.certPem)];
    const at = (now: Date) => {
      try {
        verifyChain(chain, { ca, purpose: 'serverAuth', hostname: 'localhost', now });
        return 'ok';
      } catch (e) {
        return `${(e as CertificateVerificationError).code} ${(e as CertificateVerificationError).alert}`;
      }
    };
    assert.equal(at(new Date()), 'ok');
    assert.equal(at(new Date(Date.now() + 20 * 365 * 86_400_000)), 'CERT_HAS_EXPIRED 45');
    assert.equal(at(new Date(Date.now() - 20 * 365 * 86_400_000)), 'CERT_NOT_YET_VALID 42');
  });

  it('a client certificate offered as a server certificate: INVALID_PURPOSE (serverAuth EKU)', async () => {
    const s = await nodeServer({ key: pki.client.keyPem, cert: pki.client.chainPem });
    const err = await failure(s.port, { checkServerIdentity: () => undefined });
    assert.equal(err.code, 'ERR_TLS_ALERT_SENT_UNSUPPORTED_CERTIFICATE');
    assert.match(err.message, /INVALID_PURPOSE/);
  });
});

