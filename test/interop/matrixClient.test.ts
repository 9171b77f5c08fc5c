// The client-role interop matrix: keyward's client (the library's connect, its certificate
// key in this process or a key process, and `keyward connect`) against openssl s_server,
// gnutls-serv and node:tls servers, in the cells test/client/ leaves out: ECDSA P-521 and
// Ed448 server certificates, an RSASSA-PSS one (rsa_pss_pss_sha256), TLS 1.2-only servers on P-521, HelloRetryRequest to ffdhe2048,
// client certificates asked for with and without one configured, -num_tickets 0 and 10, a
// ~60 KB server certificate, small server records, and a TLS 1.2 HelloRequest (refused with
// a warning no_renegotiation).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { LocalKey } from '../../src/keys/localKey.js';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { SignatureScheme } from '../../src/tls/crypto/signatureSchemes.js';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { exchange, freePort, handshake as connectTo, sendSeen, sServer, stopSServers, type SServer } from '../client/clientHelpers.js';
import { startConnect } from '../support/keywardCli.js';
import { waitUntil } from '../support/keywardServer.js';
import { getMatrixCerts, type MatrixCerts } from '../support/matrixCerts.js';

let certs: MatrixCerts;
let clientKey: KeyProcessKey;
const children: ChildProcess[] = [];
const cleanups: Array<() => unknown> = [];
const nodeServers: tls.Server[] = [];

before(async () => {
  certs = await getMatrixCerts();
  const c = certs.byType['ecdsa-p521'];
  clientKey = await startKeyProcess({ keyPath: c.keyPath, expectedPublicKey: new LocalKey(c.keyPem).publicKey });
});
after(async () => {
  stopSServers();
  for (const c of children) c.kill();
  for (const f of cleanups) f();
  for (const s of nodeServers) s.close();
  await clientKey?.close();
});

const handshake = (port: number, opts: Partial<KeywardConnectOptions> = {}) => connectTo(port, certs.pki.ca.certPem, opts);

/** s_server with a matrix certificate (or the fixture P-256 one) and `args`. */
function server(cert: { chainPath: string; keyPath: string }, args: string[] = []): Promise<SServer> {
  return sServer(['-cert', cert.chainPath, '-key', cert.keyPath, ...args]);
}

/** The handshake's failure, with the alert it names. */
async function failure(port: number, opts: Partial<KeywardConnectOptions> = {}): Promise<Error & { alertSent?: number; alertReceived?: number }> {
  const c = connect({ port, host: 'localhost', ca: certs.pki.ca.certPem, handshakeTimeout: 5_000, ...opts });
  const [err] = await once(c, 'error');
  c.destroy();
  return err as Error & { alertSent?: number; alertReceived?: number };
}

describe('keyward client x openssl s_server: server certificates', () => {
  for (const [type, scheme12] of [
    ['ecdsa-p521', SignatureScheme.ecdsa_secp256r1_sha256],
    ['ed448', SignatureScheme.ed448],
    ['rsa-pss', SignatureScheme.rsa_pss_pss_sha256],
  ] as const) {
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      it(`${type} server, ${version}`, async () => {
        const s = await server(certs.byType[type], [version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2']);
        const c = await handshake(s.port);
        assert.equal(c.getProtocol(), version);
        assert.equal(c.authorized, true);
        // In TLS 1.2 an ECDSA scheme names only the hash: s_server picks SHA-256 for P-521.
        assert.equal(c.negotiated.signatureScheme, version === 'TLSv1.3' && type === 'ecdsa-p521' ? SignatureScheme.ecdsa_secp521r1_sha512 : scheme12);
        await sendSeen(c, s, `to ${type} ${version}`);
      });
    }
  }

  it('a ~60 KB certificate, TLS 1.3 and TLS 1.2', async () => {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const s = await server(certs.large, [version]);
      const c = await handshake(s.port);
      assert.equal(c.authorized, true);
      assert.ok(c.getPeerX509Certificate()!.raw.length > 55_000, `certificate of ${c.getPeerX509Certificate()!.raw.length} bytes`);
      await sendSeen(c, s, `large ${version}`);
    }
  });
});

describe('keyward client x openssl s_server: negotiation', () => {
  it('TLS 1.2-only server on P-521 alone', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_2', '-groups', 'P-521']);
    const c = await handshake(s.port);
    assert.equal(c.getProtocol(), 'TLSv1.2');
    assert.equal(c.negotiated.group, NamedGroup.secp521r1);
    await sendSeen(c, s, 'p521 tls12');
  });

  it('server of ffdhe2048 only: HelloRetryRequest, then ffdhe2048', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_3', '-groups', 'ffdhe2048']);
    const c = await handshake(s.port);
    assert.equal(c.negotiated.helloRetry, true);
    assert.equal(c.negotiated.group, NamedGroup.ffdhe2048);
    await sendSeen(c, s, 'ffdhe');
  });

  it('server records of 512 bytes (-max_send_frag 512): 3000 bytes arrive whole', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_3', '-max_send_frag', '512']);
    const c = await handshake(s.port);
    const line = `${'z'.repeat(3000)}-end`;
    const got = exchange(c, '', '-end');
    s.child.stdin!.write(`${line}\n`);
    assert.ok((await got).includes(line));
    c.destroy();
  });

  for (const [tickets, expected] of [
    ['0', 0],
    ['10', 10],
  ] as const) {
    it(`-num_tickets ${tickets}: ${expected} session events`, async () => {
      const s = await server(certs.byType['ecdsa-p521'], ['-tls1_3', '-num_tickets', tickets]);
      const c = await handshake(s.port);
      let sessions = 0;
      c.on('session', () => sessions++);
      c.write('ping\n');
      await waitUntil(() => s.output().includes('ping'), 's_server to print ping');
      if (expected > 0) await waitUntil(() => sessions === expected, `${expected} session events (saw ${sessions})`);
      else await new Promise((r) => setTimeout(r, 200));
      assert.equal(sessions, expected);
      c.destroy();
    });
  }

  it('a TLS 1.2 HelloRequest ("r") gets a warning no_renegotiation; s_server then ends the connection', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_2', '-msg']);
    const c = await handshake(s.port);
    // s_server answers the warning with a fatal handshake_failure: an 'error', then 'close'.
    const closed = new Promise((resolve) => c.once('close', resolve));
    const failed = new Promise<Error & { alertReceived?: number }>((resolve) => c.once('error', resolve));
    c.write('first\n');
    await waitUntil(() => s.output().includes('first'), 's_server to print first');
    s.child.stdin!.write('r\n');
    await waitUntil(() => /<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation/.test(s.output()), `the warning in s_server's log:\n${s.output()}`);
    assert.equal((await failed).alertReceived, AlertDescription.handshake_failure);
    await closed;
  });
});

describe('keyward client x openssl s_server: client certificates', () => {
  for (const version of ['-tls1_3', '-tls1_2']) {
    it(`-Verify 1 ${version}: a P-521 client certificate from a key process`, async () => {
      const s = await server(certs.pki.server['ecdsa-p256'], [version, '-Verify', '1', '-CAfile', certs.pki.ca.certPath]);
      const c = await handshake(s.port, { cert: certs.byType['ecdsa-p521'].chainPem, key: clientKey });
      await sendSeen(c, s, `client cert ${version}`);
      assert.match(s.output(), /Client certificate/);
    });
  }

  it('-Verify 1 without a client certificate configured: certificate_required (TLS 1.3), handshake_failure (TLS 1.2)', async () => {
    const s13 = await server(certs.pki.server['ecdsa-p256'], ['-tls1_3', '-Verify', '1', '-CAfile', certs.pki.ca.certPath]);
    // TLS 1.3: the client is done before the server reads its empty Certificate, so the alert comes after.
    const c = await handshake(s13.port);
    const [err] = (await once(c, 'error')) as [Error & { alertReceived?: number }];
    assert.equal(err.alertReceived, AlertDescription.certificate_required, err.message);
    const s12 = await server(certs.pki.server['ecdsa-p256'], ['-tls1_2', '-Verify', '1', '-CAfile', certs.pki.ca.certPath]);
    const err12 = await failure(s12.port);
    assert.equal(err12.alertReceived, AlertDescription.handshake_failure, err12.message);
  });

  it('-verify 1 (optional) without one: connected, no certificate sent', async () => {
    const s = await server(certs.pki.server['ecdsa-p256'], ['-tls1_3', '-verify', '1', '-CAfile', certs.pki.ca.certPath]);
    const c = await handshake(s.port);
    await sendSeen(c, s, 'anonymous');
    assert.doesNotMatch(s.output(), /Client certificate/);
  });
});

describe('keyward client x gnutls-serv and node:tls', () => {
  async function gnutlsServ(cert: { chainPath: string; keyPath: string }, priority: string): Promise<number> {
    const port = await freePort();
    const child = spawn('gnutls-serv', ['--port', String(port), '--echo', '--priority', priority, '--x509certfile', cert.chainPath, '--x509keyfile', cert.keyPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    await waitUntil(() => /IPv4.*done/.test(out), `gnutls-serv to listen:\n${out}`, 10_000);
    return port;
  }

  it('gnutls-serv SECURE256 with a P-521 certificate: AES-256-GCM, P-384, ecdsa_secp521r1_sha512', async () => {
    const port = await gnutlsServ(certs.byType['ecdsa-p521'], 'SECURE256');
    const c = await handshake(port);
    assert.equal(c.negotiated.cipherName, 'TLS_AES_256_GCM_SHA384');
    assert.equal(c.negotiated.group, NamedGroup.secp384r1);
    assert.equal(c.negotiated.signatureScheme, SignatureScheme.ecdsa_secp521r1_sha512);
    assert.equal(await exchange(c, 'g1\n'), 'g1\n');
    c.destroy();
  });

  it('gnutls-serv TLS 1.2 with an Ed448 certificate', async () => {
    const port = await gnutlsServ(certs.byType.ed448, 'NORMAL:-VERS-ALL:+VERS-TLS1.2');
    const c = await handshake(port);
    assert.equal(c.getProtocol(), 'TLSv1.2');
    assert.equal(c.negotiated.signatureScheme, SignatureScheme.ed448);
    assert.equal(await exchange(c, 'g2\n'), 'g2\n');
    c.destroy();
  });

  for (const version of ['TLS1.3', 'TLS1.2']) {
    it(`gnutls-serv ${version} with an RSASSA-PSS certificate, SIGN-RSA-PSS-SHA256 only: rsa_pss_pss_sha256`, async () => {
      const port = await gnutlsServ(certs.byType['rsa-pss'], `NORMAL:-VERS-ALL:+VERS-${version}:-SIGN-ALL:+SIGN-RSA-PSS-SHA256`);
      const c = await handshake(port);
      assert.equal(c.getProtocol(), version === 'TLS1.3' ? 'TLSv1.3' : 'TLSv1.2');
      assert.equal(c.negotiated.signatureScheme, SignatureScheme.rsa_pss_pss_sha256);
      assert.equal(await exchange(c, 'g3\n'), 'g3\n');
      c.destroy();
    });
  }

  it('node:tls server with an Ed448 certificate asking for a client certificate (TLS 1.3 and 1.2)', async () => {
    const seen: (string | undefined)[] = [];
    const s = tls.createServer({ key: certs.byType.ed448.keyPem, cert: certs.byType.ed448.chainPem, ca: certs.pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (sock) => {
      seen.push(sock.getPeerX509Certificate()?.subject);
      sock.on('data', (d) => sock.write(d));
      sock.on('error', () => undefined);
    });
    nodeServers.push(s);
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      const c: KeywardClientSocket = await handshake(port, { maxVersion, cert: certs.byType['ecdsa-p521'].chainPem, key: clientKey });
      assert.equal(c.getProtocol(), maxVersion);
      assert.equal(await exchange(c, maxVersion), maxVersion);
      c.destroy();
    }
    assert.deepEqual(seen, ['CN=localhost', 'CN=localhost']);
  });
});

describe('keyward connect (the command)', () => {
  it('names the ffdhe group it negotiated (after a HelloRetryRequest) and the P-521 signature', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_3', '-groups', 'ffdhe2048']);
    const { stderr } = await startConnect([`127.0.0.1:${s.port}`, '--ca', certs.pki.ca.certPath, '--servername', 'localhost'], cleanups);
    assert.match(stderr, /^connected version=TLSv1\.3 .*group=ffdhe2048 sigalg=ecdsa_secp521r1_sha512 /m);
  });

  it('--groups takes the ffdhe names: ffdhe3072 offered first gets no HelloRetryRequest', async () => {
    const s = await server(certs.byType['ecdsa-p521'], ['-tls1_3', '-groups', 'ffdhe3072', '-msg']);
    const { stderr } = await startConnect([`127.0.0.1:${s.port}`, '--ca', certs.pki.ca.certPath, '--servername', 'localhost', '--groups', 'ffdhe3072,X25519'], cleanups);
    assert.match(stderr, /group=ffdhe3072 /);
    assert.equal((s.output().match(/<<< .*ClientHello/g) ?? []).length, 1, s.output());
  });
});
