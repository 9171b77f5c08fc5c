/**
 * Server-side mutual TLS (requestCert / rejectUnauthorized / ca, as node:tls) in TLS 1.3
 * and 1.2, against openssl s_client -cert/-key, curl --cert, gnutls-cli and node:tls
 * clients: accepted clients are `authorized` with their certificate readable; a missing
 * certificate is refused with certificate_required (1.3) or handshake_failure (1.2), an
 * untrusted one with unknown_ca; rejectUnauthorized false accepts both, unauthorized.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { localKey } from '../../src/keys/localKey.js';
import { createHttpsServer } from '../../src/node/http.js';
import { createServer, type KeywardServer, type KeywardServerOptions } from '../../src/node/server.js';
import type { KeywardTLSSocket, TlsHandshakeError } from '../../src/node/tlsSocket.js';
import { waitUntil } from '../support/keywardServer.js';
import { curl, curlResolve, gnutlsCli, opensslClient } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

let pki: PkiFixtures;
const closers: Array<() => void> = [];

before(async () => {
  pki = await getPki();
});
after(() => closers.forEach((c) => c()));

interface MtlsServer {
  port: number;
  accepted: Array<{ authorized: boolean; cn?: string; code?: string }>;
  failures: TlsHandshakeError[];
}

async function mtlsServer(opts: Partial<KeywardServerOptions> = {}): Promise<MtlsServer> {
  const m: MtlsServer = { port: 0, accepted: [], failures: [] };
  const server: KeywardServer = createServer(
    {
      certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key: localKey(pki.server['ecdsa-p256'].keyPem) }],
      requestCert: true,
      ca: pki.ca.certPem,
      ...opts,
    },
    (s: KeywardTLSSocket) => {
      const cert = s.getPeerCertificate();
      m.accepted.push({ authorized: s.authorized, cn: 'subject' in cert ? String(cert.subject.CN) : undefined, code: (s.authorizationError as { code?: string } | null)?.code });
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => undefined);
    },
  );
  server.on('tlsClientError', (err: TlsHandshakeError) => m.failures.push(err));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  m.port = (server.address() as AddressInfo).port;
  closers.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return m;
}


const versionArgs = { 'TLSv1.3': ['-tls1_3'], 'TLSv1.2': ['-tls1_2'] } as const;

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  describe(`mutual TLS ${version} with openssl s_client`, () => {
    it('a client certificate from our CA is verified; CertificateRequest names the CA', async () => {
      const m = await mtlsServer();
      const run = await opensslClient(m.port, { cafile: pki.ca.certPath, args: [...versionArgs[version], '-cert', pki.client.chainPath, '-key', pki.client.keyPath], input: 'ping\n', waitFor: 'ping' });
      assert.match(run.stdout, /ping/);
      assert.deepEqual(m.accepted, [{ authorized: true, cn: 'keyward-test-client', code: undefined }]);
      assert.match(run.stdout, /Acceptable client certificate CA names\n.*keyward/i);
    });

    it('no certificate: refused with its alert', async () => {
      const m = await mtlsServer();
      await opensslClient(m.port, { cafile: pki.ca.certPath, args: [...versionArgs[version]], input: 'ping\n', keepOpenMs: 500 });
      await waitUntil(() => m.failures.length > 0, 'the server to report the failed handshake');
      assert.equal(m.failures[0].code, version === 'TLSv1.3' ? 'ERR_TLS_ALERT_SENT_CERTIFICATE_REQUIRED' : 'ERR_TLS_ALERT_SENT_HANDSHAKE_FAILURE');
      assert.equal(m.accepted.length, 0);
    });

    it('a certificate from another CA: unknown_ca', async () => {
      const m = await mtlsServer();
      await opensslClient(m.port, { cafile: pki.ca.certPath, args: [...versionArgs[version], '-cert', pki.untrusted.client.certPath, '-key', pki.untrusted.client.keyPath], input: 'ping\n', keepOpenMs: 500 });
      await waitUntil(() => m.failures.length > 0, 'the server to report the failed handshake');
      assert.equal(m.failures[0].code, 'ERR_TLS_ALERT_SENT_UNKNOWN_CA');
    });

    it('rejectUnauthorized false: both accepted, unauthorized, with the reason', async () => {
      const m = await mtlsServer({ rejectUnauthorized: false });
      await opensslClient(m.port, { cafile: pki.ca.certPath, args: [...versionArgs[version]], input: 'a\n', waitFor: /^a$/m });
      await opensslClient(m.port, { cafile: pki.ca.certPath, args: [...versionArgs[version], '-cert', pki.untrusted.client.certPath, '-key', pki.untrusted.client.keyPath], input: 'b\n', waitFor: /^b$/m });
      assert.deepEqual(m.accepted, [
        { authorized: false, cn: undefined, code: 'ERR_TLS_NO_CLIENT_CERTIFICATE' },
        { authorized: false, cn: 'untrusted-client', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
      ]);
    });
  });
}

describe('mutual TLS with other clients', () => {
  it('node:tls: accepted with a certificate, each refusal seen by the client with its alert', async () => {
    const m = await mtlsServer();
    const attempt = (opts: tls.ConnectionOptions) =>
      new Promise<string>((resolve) => {
        const c = tls.connect({ port: m.port, host: 'localhost', ca: pki.ca.certPem, ...opts });
        c.on('secureConnect', () => c.write('x'));
        c.on('data', () => {
          c.destroy();
          resolve('ok');
        });
        c.on('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
      });
    assert.equal(await attempt({ cert: pki.client.chainPem, key: pki.client.keyPem }), 'ok');
    // OpenSSL names the alert in the code (its prefix differs between Node 20's and 24's OpenSSL).
    assert.match(await attempt({}), /_ALERT_CERTIFICATE_REQUIRED$/);
    assert.match(await attempt({ cert: pki.untrusted.client.certPem, key: pki.untrusted.client.keyPem }), /_ALERT_UNKNOWN_CA$/);
    assert.equal(await attempt({ cert: pki.client.chainPem, key: pki.client.keyPem, maxVersion: 'TLSv1.2' }), 'ok');
    assert.match(await attempt({ maxVersion: 'TLSv1.2' }), /_ALERT_HANDSHAKE_FAILURE$/);
  });

  it('gnutls-cli with --x509certfile', async () => {
    for (const priority of ['NORMAL:-VERS-ALL:+VERS-TLS1.3', 'NORMAL:-VERS-ALL:+VERS-TLS1.2']) {
      const m = await mtlsServer();
      const run = await gnutlsCli(m.port, { cafile: pki.ca.certPath, servername: 'localhost', priority, args: ['--x509certfile', pki.client.chainPath, '--x509keyfile', pki.client.keyPath], input: 'gnutls\n', waitFor: 'gnutls' });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(m.accepted, [{ authorized: true, cn: 'keyward-test-client', code: undefined }], priority);
    }
  });

  it('curl --cert against createHttpsServer, the page naming the client; without a certificate curl fails', async () => {
    const server = createHttpsServer(
      { certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key: localKey(pki.server['ecdsa-p256'].keyPem) }], requestCert: true, ca: pki.ca.certPem },
      (req, res) => {
        const s = req.socket as unknown as KeywardTLSSocket;
        const cert = s.getPeerCertificate();
        res.end(`client ${'subject' in cert ? cert.subject.CN : '-'} authorized=${s.authorized}`);
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => {
      server.close();
      server.closeAllConnections();
    });
    const port = (server.address() as AddressInfo).port;
    const url = `https://localhost:${port}/`;
    const ok = await curl(url, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', port)], args: ['--cert', pki.client.chainPath, '--key', pki.client.keyPath] });
    assert.equal(ok.body, 'client keyward-test-client authorized=true');
    const refused = await curl(url, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', port)] });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /certificate required|alert/i);
  });
});
