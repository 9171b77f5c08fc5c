// Proves the real-peer harness against node:tls / https servers: every peer connects with
// every key type it supports over TLS 1.3 and 1.2, the parsers read what the server saw,
// and the timeout path kills a peer that never finishes.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import {
  curl,
  curlResolve,
  gnutlsCli,
  nodeTlsClient,
  opensslClient,
  parseGnutlsOutput,
  parseOpensslOutput,
  pythonSsl,
} from '../support/peers.js';
import { getPki, KEY_TYPES, type KeyType, type PkiFixtures } from '../support/pki.js';
import { processAlive, runProcess } from '../support/processes.js';

type Version = 'TLSv1.3' | 'TLSv1.2';
const VERSIONS: Version[] = ['TLSv1.3', 'TLSv1.2'];

/** What the server saw of its most recent connection. */
interface Seen {
  protocol?: string;
  cipher?: string;
  cipherOpenssl?: string;
  servername?: string;
  clientAuthorized?: boolean;
  clientCn?: string;
}

interface EchoServer {
  port: number;
  last: () => Seen;
  close: () => Promise<void>;
}

/**
 * A node:tls echo server: replies "echo:<data>". SNI names under example.test / *.wild.test
 * get the `sni` certificate of the same key type. With `requestCert`, clients must present a
 * certificate from the test CA.
 */
function startEchoServer(pki: PkiFixtures, keyType: KeyType, extra: tls.TlsOptions = {}): Promise<EchoServer> {
  let seen: Seen = {};
  const sniContext = tls.createSecureContext({ key: pki.sni[keyType].keyPem, cert: pki.sni[keyType].chainPem });
  const server = tls.createServer(
    {
      key: pki.server[keyType].keyPem,
      cert: pki.server[keyType].chainPem,
      ALPNProtocols: ['http/1.1', 'echo'],
      SNICallback: (name, cb) => cb(null, name === 'example.test' || name.endsWith('.wild.test') ? sniContext : undefined),
      ...extra,
    },
    (sock) => {
      const c = sock.getCipher();
      const peer = sock.getPeerCertificate();
      seen = {
        protocol: sock.getProtocol() ?? undefined,
        cipher: c.standardName,
        cipherOpenssl: c.name,
        servername: serverNameOf(sock),
        clientAuthorized: sock.authorized,
        clientCn: peer && peer.subject ? String(peer.subject.CN) : undefined,
      };
      sock.on('data', (d: Buffer) => sock.write(`echo:${d.toString('utf8')}`));
      sock.on('error', () => {});
    },
  );
  server.on('tlsClientError', () => {});
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        last: () => seen,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            // Clients that linger must not hold the test open.
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
  });
}

/** The SNI a server-side socket received (node sets `servername`, typed loosely). */
function serverNameOf(sock: tls.TLSSocket): string | undefined {
  const name = (sock as unknown as { servername?: unknown }).servername;
  return typeof name === 'string' ? name : undefined;
}

/** The server's standard suite name contains GnuTLS's cipher name ("AES-256-GCM" -> "AES_256_GCM"). */
function sameCipherGnutls(gnutlsCipher: string | undefined, standardName: string | undefined): boolean {
  return gnutlsCipher !== undefined && standardName !== undefined && standardName.includes(gnutlsCipher.replace(/-/g, '_'));
}

const SIG_BY_KEY: Record<KeyType, RegExp> = {
  'ecdsa-p256': /ECDSA/i,
  'ecdsa-p384': /ECDSA/i,
  'rsa-2048': /RSA/i,
  'ed25519': /ED25519/i,
};

let pki: PkiFixtures;
const servers = new Map<KeyType, EchoServer>();

before(async () => {
  pki = await getPki();
  for (const kt of KEY_TYPES) servers.set(kt, await startEchoServer(pki, kt));
});

after(async () => {
  for (const s of servers.values()) await s.close();
});

function server(kt: KeyType): EchoServer {
  const s = servers.get(kt);
  assert.ok(s, `server for ${kt}`);
  return s;
}

describe('openssl s_client', () => {
  for (const kt of KEY_TYPES) {
    for (const v of VERSIONS) {
      it(`${kt} over ${v}`, async () => {
        const s = server(kt);
        const run = await opensslClient(s.port, {
          cafile: pki.ca.certPath,
          args: [v === 'TLSv1.3' ? '-tls1_3' : '-tls1_2'],
          input: 'hello\n',
          waitFor: 'echo:hello',
        });
        assert.equal(run.timedOut, false);
        const info = parseOpensslOutput(run);
        assert.equal(info.handshakeOk, true, run.stdout + run.stderr);
        assert.equal(info.protocol, v);
        assert.equal(s.last().protocol, v);
        assert.equal(info.cipher, s.last().cipherOpenssl);
        assert.equal(info.verifyCode, 0);
        assert.equal(info.verifyMessage, 'ok');
        assert.match(info.peerSignatureType ?? '', SIG_BY_KEY[kt]);
        assert.ok(info.group, 'a key-exchange group is reported');
        assert.match(run.stdout, /echo:hello/);
      });
    }
  }

  it('reports forced TLS 1.3 suite, group, signature scheme and ALPN', async () => {
    const s = server('rsa-2048');
    const run = await opensslClient(s.port, {
      cafile: pki.ca.certPath,
      args: ['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256', '-groups', 'P-384', '-sigalgs', 'rsa_pss_rsae_sha256', '-alpn', 'echo'],
    });
    const info = parseOpensslOutput(run);
    assert.equal(info.protocol, 'TLSv1.3');
    assert.equal(info.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(s.last().cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(info.group, 'P-384');
    assert.equal(info.serverTempKey, 'ECDH, secp384r1, 384 bits');
    assert.equal(info.peerSignatureType, 'RSA-PSS');
    assert.equal(info.peerSigningDigest, 'SHA256');
    assert.equal(info.alpn, 'echo');
  });

  it('reports a forced TLS 1.2 suite and X25519', async () => {
    const s = server('ecdsa-p256');
    const run = await opensslClient(s.port, {
      cafile: pki.ca.certPath,
      args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256', '-groups', 'X25519:P-256'],
    });
    const info = parseOpensslOutput(run);
    assert.equal(info.protocol, 'TLSv1.2');
    assert.equal(info.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal(s.last().cipher, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    assert.equal(info.group, 'X25519');
  });

  it('sends commands one read at a time: k triggers a KeyUpdate, data still flows', async () => {
    const s = server('ecdsa-p256');
    const run = await opensslClient(s.port, { cafile: pki.ca.certPath, args: ['-tls1_3'], input: ['k\n', 'after-update\n'], waitFor: 'echo:after-update' });
    const info = parseOpensslOutput(run);
    assert.equal(info.keyUpdates, 1, run.stdout);
    assert.match(run.stdout, /echo:after-update/);
  });

  it('sends SNI and verifies the SNI certificate', async () => {
    const s = server('ecdsa-p384');
    const run = await opensslClient(s.port, {
      cafile: pki.ca.certPath,
      servername: 'api.wild.test',
      args: ['-verify_hostname', 'api.wild.test'],
    });
    const info = parseOpensslOutput(run);
    assert.equal(info.verifyCode, 0);
    assert.equal(s.last().servername, 'api.wild.test');
    assert.match(run.stdout, /subject=CN = example\.test/);
  });

  it('reports a verification failure against the wrong CA', async () => {
    const s = server('ecdsa-p256');
    const run = await opensslClient(s.port, { cafile: pki.untrusted.ca.certPath });
    const info = parseOpensslOutput(run);
    assert.equal(info.handshakeOk, true);
    assert.notEqual(info.verifyCode, 0);
  });

  it('presents a client certificate the server accepts', async () => {
    const s = await startEchoServer(pki, 'ecdsa-p256', { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem });
    try {
      const run = await opensslClient(s.port, {
        cafile: pki.ca.certPath,
        args: ['-cert', pki.client.chainPath, '-key', pki.client.keyPath],
        input: 'hi\n',
        waitFor: 'echo:hi',
      });
      assert.match(run.stdout, /echo:hi/);
      assert.equal(s.last().clientAuthorized, true);
      assert.equal(s.last().clientCn, 'keyward-test-client');
    } finally {
      await s.close();
    }
  });
});

describe('gnutls-cli', () => {
  for (const kt of KEY_TYPES) {
    for (const v of VERSIONS) {
      it(`${kt} over ${v}`, async () => {
        const s = server(kt);
        const run = await gnutlsCli(s.port, {
          cafile: pki.ca.certPath,
          priority: `NORMAL:-VERS-ALL:+VERS-${v === 'TLSv1.3' ? 'TLS1.3' : 'TLS1.2'}`,
          input: 'hello\n',
          waitFor: 'echo:hello',
        });
        assert.equal(run.timedOut, false);
        const info = parseGnutlsOutput(run);
        assert.equal(info.handshakeCompleted, true, run.stdout + run.stderr);
        assert.equal(info.trusted, true);
        assert.equal(info.protocol, v);
        assert.equal(s.last().protocol, v);
        assert.ok(sameCipherGnutls(info.cipher, s.last().cipher), `${info.cipher} vs ${s.last().cipher}`);
        assert.match(info.signature ?? '', SIG_BY_KEY[kt]);
        assert.match(run.stdout, /echo:hello/);
      });
    }
  }

  it('honours a priority string for group, cipher and signature', async () => {
    const s = server('rsa-2048');
    const run = await gnutlsCli(s.port, {
      cafile: pki.ca.certPath,
      priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519:-CIPHER-ALL:+AES-128-GCM:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA384',
      args: ['--alpn', 'echo'],
    });
    const info = parseGnutlsOutput(run);
    assert.equal(info.protocol, 'TLSv1.3');
    assert.equal(info.group, 'X25519');
    assert.equal(info.keyExchange, 'ECDHE-X25519');
    assert.equal(info.cipher, 'AES-128-GCM');
    assert.equal(s.last().cipher, 'TLS_AES_128_GCM_SHA256');
    assert.equal(info.signature, 'RSA-PSS-RSAE-SHA384');
    assert.equal(info.alpn, 'echo');
  });

  it('TLS 1.2 with P-384 and ChaCha20', async () => {
    const s = server('ecdsa-p384');
    const run = await gnutlsCli(s.port, {
      cafile: pki.ca.certPath,
      priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-GROUP-ALL:+GROUP-SECP384R1:-CIPHER-ALL:+CHACHA20-POLY1305:-KX-ALL:+ECDHE-ECDSA',
    });
    const info = parseGnutlsOutput(run);
    assert.equal(info.protocol, 'TLSv1.2');
    assert.equal(info.group, 'P-384');
    assert.equal(info.cipher, 'CHACHA20-POLY1305');
    assert.equal(s.last().cipher, 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256');
  });

  it('sends SNI and checks the name', async () => {
    const s = server('ed25519');
    const run = await gnutlsCli(s.port, { cafile: pki.ca.certPath, servername: 'example.test' });
    const info = parseGnutlsOutput(run);
    assert.equal(info.trusted, true);
    assert.equal(s.last().servername, 'example.test');
  });

  it('reports an alert when nothing can be agreed', async () => {
    const s = server('ecdsa-p256');
    // An ECDSA-only server cannot sign with RSA-PSS.
    const run = await gnutlsCli(s.port, { cafile: pki.ca.certPath, priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256' });
    const info = parseGnutlsOutput(run);
    assert.equal(info.handshakeCompleted, false);
    assert.equal(info.alert, 40);
    assert.notEqual(run.code, 0);
  });

  it('presents a client certificate', async () => {
    const s = await startEchoServer(pki, 'ecdsa-p256', { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem });
    try {
      const run = await gnutlsCli(s.port, {
        cafile: pki.ca.certPath,
        args: ['--x509certfile', pki.clients['rsa-2048'].chainPath, '--x509keyfile', pki.clients['rsa-2048'].keyPath],
        input: 'hi\n',
        waitFor: 'echo:hi',
      });
      assert.match(run.stdout, /echo:hi/);
      assert.equal(s.last().clientAuthorized, true);
      assert.equal(s.last().clientCn, 'keyward-test-client-rsa-2048');
    } finally {
      await s.close();
    }
  });
});

describe('python ssl', () => {
  for (const kt of KEY_TYPES) {
    for (const v of VERSIONS) {
      it(`${kt} over ${v}`, async () => {
        const s = server(kt);
        const pyVersion = v === 'TLSv1.3' ? 'TLSv1_3' : 'TLSv1_2';
        const run = await pythonSsl(s.port, { cafile: pki.ca.certPath, minVersion: pyVersion, maxVersion: pyVersion, send: 'hello', until: 'echo:hello' });
        assert.equal(run.timedOut, false);
        assert.ok(run.report, run.stdout + run.stderr);
        assert.equal(run.report.ok, true, run.report.error);
        assert.equal(run.report.version, v);
        assert.equal(run.report.cipher, s.last().cipherOpenssl);
        assert.equal(run.report.received, 'echo:hello');
        assert.equal(run.code, 0);
      });
    }
  }

  it('TLS 1.2 cipher choice, one curve, ALPN and SNI', async () => {
    const s = server('ecdsa-p256');
    const run = await pythonSsl(s.port, {
      cafile: pki.ca.certPath,
      servername: 'x.wild.test',
      maxVersion: 'TLSv1_2',
      ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305',
      ecdhCurve: 'prime256v1',
      alpn: ['echo'],
      send: 'x',
      until: 'echo:x',
    });
    assert.ok(run.report?.ok, run.stdout + run.stderr);
    assert.equal(run.report.cipher, 'ECDHE-ECDSA-CHACHA20-POLY1305');
    assert.equal(run.report.alpn, 'echo');
    assert.equal(s.last().servername, 'x.wild.test');
  });

  it('reports certificate verification failure as a JSON error', async () => {
    const s = server('ecdsa-p256');
    const run = await pythonSsl(s.port, { cafile: pki.untrusted.ca.certPath });
    assert.equal(run.code, 1);
    assert.equal(run.report?.ok, false);
    assert.equal(run.report?.reason, 'CERTIFICATE_VERIFY_FAILED');
  });

  it('presents a client certificate', async () => {
    const s = await startEchoServer(pki, 'ecdsa-p256', { requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem });
    try {
      const run = await pythonSsl(s.port, {
        cafile: pki.ca.certPath,
        certfile: pki.clients.ed25519.chainPath,
        keyfile: pki.clients.ed25519.keyPath,
        send: 'hi',
        until: 'echo:hi',
      });
      assert.ok(run.report?.ok, run.stdout + run.stderr);
      assert.equal(s.last().clientAuthorized, true);
      assert.equal(s.last().clientCn, 'keyward-test-client-ed25519');
    } finally {
      await s.close();
    }
  });
});

describe('node:tls client', () => {
  for (const kt of KEY_TYPES) {
    for (const v of VERSIONS) {
      it(`${kt} over ${v}`, async () => {
        const s = server(kt);
        const r = await nodeTlsClient(s.port, { ca: pki.ca.certPem, minVersion: v, maxVersion: v, send: 'hello', until: 'echo:hello' });
        assert.equal(r.timedOut, false);
        assert.equal(r.connected, true, r.error);
        assert.equal(r.authorized, true, r.authorizationError);
        assert.equal(r.protocol, v);
        assert.equal(r.cipher, s.last().cipher);
        assert.equal(r.received, 'echo:hello');
        assert.equal(r.peerCommonName, 'localhost');
      });
    }
  }

  it('reports group, ALPN and SNI', async () => {
    const s = server('ecdsa-p256');
    const r = await nodeTlsClient(s.port, {
      ca: pki.ca.certPem,
      servername: 'example.test',
      ecdhCurve: 'P-384',
      ALPNProtocols: ['echo'],
      closeAfterMs: 50,
    });
    assert.equal(r.authorized, true, r.authorizationError);
    assert.equal(r.ephemeralKey, 'secp384r1');
    assert.equal(r.alpn, 'echo');
    assert.equal(r.peerCommonName, 'example.test');
    assert.equal(s.last().servername, 'example.test');
  });

  it('reports a verification error without throwing', async () => {
    const s = server('ecdsa-p256');
    const r = await nodeTlsClient(s.port, { ca: pki.untrusted.ca.certPem });
    assert.equal(r.authorized, false);
    assert.ok(r.error, 'an error is reported');
    assert.equal(r.timedOut, false);
  });
});

describe('curl', () => {
  interface HttpsServer {
    port: number;
    close: () => Promise<void>;
  }
  const https = new Map<KeyType, HttpsServer>();

  before(async () => {
    for (const kt of KEY_TYPES) {
      const srv = http2.createSecureServer(
        { key: pki.server[kt].keyPem, cert: pki.server[kt].chainPem, allowHTTP1: true },
        (req, res) => {
          const sock = req.socket as tls.TLSSocket;
          res.end(`${req.httpVersion} ${sock.getProtocol()} ${sock.getCipher().name}`);
        },
      );
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      https.set(kt, {
        port: (srv.address() as net.AddressInfo).port,
        close: () => new Promise<void>((r) => srv.close(() => r())),
      });
    }
  });

  after(async () => {
    for (const s of https.values()) await s.close();
  });

  for (const kt of KEY_TYPES) {
    for (const v of VERSIONS) {
      it(`${kt} over ${v}, HTTP/2 and HTTP/1.1`, async () => {
        const s = https.get(kt);
        assert.ok(s);
        const versionArgs = v === 'TLSv1.3' ? ['--tlsv1.3'] : ['--tlsv1.2', '--tls-max', '1.2'];
        const h2 = await curl(`https://localhost:${s.port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', s.port)], http: '2', args: versionArgs });
        assert.equal(h2.code, 0, h2.stderr);
        assert.equal(h2.httpVersion, '2');
        assert.equal(h2.status, 200);
        assert.equal(h2.alpn, 'h2');
        assert.equal(h2.tlsVersion, v);
        const [httpVersion, serverProtocol, serverCipher] = h2.body.split(' ');
        assert.equal(httpVersion, '2.0');
        assert.equal(serverProtocol, v);
        assert.equal(h2.cipher, serverCipher);

        const h1 = await curl(`https://127.0.0.1:${s.port}/`, { cacert: pki.ca.certPath, http: '1.1', args: versionArgs });
        assert.equal(h1.code, 0, h1.stderr);
        assert.equal(h1.httpVersion, '1.1');
        assert.match(h1.body, new RegExp(`^1\\.1 ${v.replace('.', '\\.')} `));
      });
    }
  }

  it('fails cleanly against an untrusted certificate', async () => {
    const s = https.get('ecdsa-p256');
    assert.ok(s);
    const r = await curl(`https://127.0.0.1:${s.port}/`, { cacert: pki.untrusted.ca.certPath });
    assert.equal(r.code, 60);
    assert.equal(r.httpVersion, '0');
  });
});

describe('timeouts', () => {
  let silent: net.Server;
  let silentPort: number;
  const held: net.Socket[] = [];

  before(async () => {
    // Accepts connections and never says a word: a TLS client waits for ServerHello forever.
    silent = net.createServer((sock) => {
      held.push(sock);
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    silentPort = (silent.address() as net.AddressInfo).port;
  });

  after(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('kills s_client that never finishes its handshake', async () => {
    const t0 = Date.now();
    const run = await opensslClient(silentPort, { timeoutMs: 1500 });
    const elapsed = Date.now() - t0;
    assert.equal(run.timedOut, true);
    assert.equal(run.signal, 'SIGKILL');
    assert.ok(elapsed >= 1400 && elapsed < 5000, `took ${elapsed} ms`);
    assert.ok(run.pid !== undefined && !processAlive(run.pid), 'child is gone');
    assert.equal(parseOpensslOutput(run).handshakeOk, false);
  });

  it('kills gnutls-cli that never finishes its handshake', async () => {
    const run = await gnutlsCli(silentPort, { timeoutMs: 1000 });
    assert.equal(run.timedOut, true);
    assert.ok(run.pid !== undefined && !processAlive(run.pid));
  });

  it('python gives up on its own before the hard limit and still reports', async () => {
    const run = await pythonSsl(silentPort, { timeoutMs: 5000 });
    assert.equal(run.timedOut, false);
    assert.equal(run.report?.ok, false);
    assert.match(run.report?.error ?? '', /timed out|Timeout/i);
  });

  it('curl that never gets an answer is killed', async () => {
    const run = await curl(`https://127.0.0.1:${silentPort}/`, { timeoutMs: 1000 });
    assert.equal(run.timedOut, true);
    assert.equal(run.httpVersion, undefined);
  });

  it('node:tls client times out and destroys its socket', async () => {
    const r = await nodeTlsClient(silentPort, { timeoutMs: 800 });
    assert.equal(r.timedOut, true);
    assert.equal(r.connected, false);
  });

  it('runProcess kills a child that ignores its input and rejects a missing program', async () => {
    const run = await runProcess('sleep', ['30'], { timeoutMs: 300 });
    assert.equal(run.timedOut, true);
    assert.ok(run.pid !== undefined && !processAlive(run.pid));
    await assert.rejects(runProcess('keyward-no-such-program', [], { timeoutMs: 1000 }), /cannot run keyward-no-such-program/);
  });
});
