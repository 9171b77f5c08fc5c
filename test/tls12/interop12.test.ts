// TLS 1.2 interop with real peers: openssl s_client, curl, gnutls-cli, Python ssl and
// node:tls against keyward servers with ECDSA P-256, P-384, RSA-2048 and Ed25519 keys
// (ECDHE), RSA key exchange, and PSK / ECDHE_PSK, plus the RFC 8446 downgrade sentinel.
// Every server listens on 127.0.0.1:0; every peer run is bounded in time.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { localPsk } from '../../src/keys/localPsk.js';
import { curl, curlResolve, gnutlsCli, nodeTlsClient, opensslClient, parseGnutlsOutput, parseOpensslOutput, pythonSsl } from '../support/peers.js';
import { getPki, type KeyType, type PkiFixtures } from '../support/pki.js';
import {
  certificate,
  describeRun,
  onlySession,
  parseServerHello,
  plaintextHandshakes,
  receivedText,
  startEchoServer,
  startRecordProxy,
  waitUntil,
  type EchoServer,
} from '../support/keywardServer.js';

const TIMEOUT = 10_000;
const SENTINEL = Buffer.from('444f574e47524401', 'hex');
const PSK = randomBytes(32);
const PSK_IDENTITY = 'keyward-client';

let pki: PkiFixtures;
const servers = {} as Record<KeyType, EchoServer>;
let pskServer: EchoServer;

before(async () => {
  pki = await getPki();
  for (const t of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'ed25519'] as const) {
    servers[t] = await startEchoServer({ certificates: [certificate(pki.server[t])], rsaKeyExchange: t === 'rsa-2048', ALPNProtocols: ['http/1.1'] });
  }
  pskServer = await startEchoServer({ certificates: [certificate(pki.server['ecdsa-p256'])], psk: { holder: localPsk(new Map([[PSK_IDENTITY, PSK]])), identityHint: 'keyward' } });
});

after(async () => {
  for (const s of Object.values(servers)) await s.close();
  await pskServer.close();
});

const ECDHE_SUITES: Record<KeyType, string[]> = {
  'ecdsa-p256': ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  'ecdsa-p384': ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  ed25519: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  'rsa-2048': ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305'],
};
const KEY_TYPES = Object.keys(ECDHE_SUITES) as KeyType[];

/** One openssl -tls1_2 run that must echo and negotiate `cipher` (and `group` when given). */
async function opensslEcho(server: EchoServer, args: string[], expect: { cipher: string; group?: string }) {
  const sent = `t12-${randomBytes(6).toString('hex')}`;
  const mark = server.mark();
  const run = await opensslClient(server.port, { cafile: pki.ca.certPath, args: ['-tls1_2', '-verify_ip', '127.0.0.1', ...args], input: `${sent}\n`, waitFor: sent, timeoutMs: TIMEOUT });
  const s = parseOpensslOutput(run);
  const why = describeRun(run);
  assert.equal(s.protocol, 'TLSv1.2', why);
  assert.equal(s.cipher, expect.cipher, why);
  assert.equal(s.verifyCode, 0, why);
  if (expect.group) assert.equal(s.group, expect.group, why);
  assert.ok(run.stdout.includes(sent), why);
  const session = onlySession(server, mark);
  assert.equal(session.protocol, 'TLSv1.2');
  assert.equal(session.cipher?.name, expect.cipher);
  await waitUntil(() => receivedText(session).includes(sent), 'the echo');
  return { run, summary: s, session };
}

describe('openssl s_client -tls1_2', () => {
  for (const t of KEY_TYPES) {
    for (const cipher of ECDHE_SUITES[t]) {
      it(`${t} ${cipher}`, async () => {
        const { summary } = await opensslEcho(servers[t], ['-cipher', cipher], { cipher, group: 'X25519' });
        if (t === 'rsa-2048') assert.equal(summary.peerSignatureType, 'RSA-PSS');
        else if (t === 'ed25519') assert.match(summary.peerSignatureType ?? '', /^ed25519$/i);
        else assert.equal(summary.peerSignatureType, 'ECDSA');
      });
    }
  }
  for (const [group, name] of [
    ['P-256', 'P-256'],
    ['P-384', 'P-384'],
    ['X25519', 'X25519'],
  ] as const) {
    // RFC 8422 5.1: supported_groups also limits the curve of the ECDSA certificate, so the
    // P-256 certificate needs P-256 in the list whatever the ECDHE group; P-384 alone goes to the P-384 certificate.
    it(`group ${group}`, async () => {
      const server = group === 'P-384' ? servers['ecdsa-p384'] : servers['ecdsa-p256'];
      const list = group === 'X25519' ? 'X25519:P-256' : group;
      await opensslEcho(server, ['-groups', list], { cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', group: name });
    });
  }
  it('a P-256 certificate is not used when supported_groups lacks P-256 (RFC 8422 5.1)', async () => {
    const mark = servers['ecdsa-p256'].mark();
    const run = await opensslClient(servers['ecdsa-p256'].port, { args: ['-tls1_2', '-groups', 'X25519'], input: 'x\n', timeoutMs: TIMEOUT });
    assert.equal(parseOpensslOutput(run).handshakeOk, false, describeRun(run));
    assert.equal(servers['ecdsa-p256'].since(mark).errors[0]?.alertSent, 40);
  });
  it('RSA PKCS#1 v1.5 signature when that is all the client allows', async () => {
    const { summary } = await opensslEcho(servers['rsa-2048'], ['-sigalgs', 'RSA+SHA256'], { cipher: 'ECDHE-RSA-AES128-GCM-SHA256' });
    assert.equal(summary.peerSignatureType, 'RSA');
  });
  for (const cipher of ['AES128-GCM-SHA256', 'AES256-GCM-SHA384']) {
    it(`RSA key exchange ${cipher}`, async () => void (await opensslEcho(servers['rsa-2048'], ['-cipher', cipher], { cipher })));
  }
  it('RSA key exchange is refused by a server that did not enable it', async () => {
    const mark = servers['ecdsa-p256'].mark();
    const run = await opensslClient(servers['ecdsa-p256'].port, { args: ['-tls1_2', '-cipher', 'AES128-GCM-SHA256'], input: 'x\n', timeoutMs: TIMEOUT });
    assert.equal(parseOpensslOutput(run).handshakeOk, false, describeRun(run));
    assert.equal(servers['ecdsa-p256'].since(mark).errors[0]?.alertSent, 40);
  });
  for (const cipher of ['PSK-AES128-GCM-SHA256', 'ECDHE-PSK-CHACHA20-POLY1305']) {
    it(`PSK ${cipher}`, async () => {
      const sent = `psk-${randomBytes(6).toString('hex')}`;
      const mark = pskServer.mark();
      const run = await opensslClient(pskServer.port, {
        args: ['-tls1_2', '-psk', PSK.toString('hex'), '-psk_identity', PSK_IDENTITY, '-cipher', cipher],
        input: `${sent}\n`,
        waitFor: sent,
        timeoutMs: TIMEOUT,
      });
      const why = describeRun(run);
      assert.equal(parseOpensslOutput(run).cipher, cipher, why);
      assert.ok(run.stdout.includes(sent), why);
      assert.equal(onlySession(pskServer, mark).negotiated.pskIdentity, PSK_IDENTITY);
    });
  }
  it('PSK with a wrong key fails at Finished (bad_record_mac)', async () => {
    const mark = pskServer.mark();
    const run = await opensslClient(pskServer.port, { args: ['-tls1_2', '-psk', 'ab'.repeat(32), '-psk_identity', PSK_IDENTITY, '-cipher', 'PSK-AES128-GCM-SHA256'], input: 'x\n', timeoutMs: TIMEOUT });
    assert.match(run.stderr, /bad record mac|alert number 20/, describeRun(run));
    assert.equal(pskServer.since(mark).errors[0]?.alertSent, 20);
  });
  it('renegotiation ("R") is refused and the connection keeps working', async () => {
    const sent = `after-${randomBytes(6).toString('hex')}`;
    const run = await opensslClient(servers['ecdsa-p256'].port, { args: ['-tls1_2'], input: ['R\n', `${sent}\n`], waitFor: sent, timeoutMs: TIMEOUT });
    assert.match(run.stdout + run.stderr, /RENEGOTIATING/, describeRun(run));
    assert.equal(parseOpensslOutput(run).protocol, 'TLSv1.2', describeRun(run));
  });
});

describe('downgrade sentinel (RFC 8446 4.1.3)', () => {
  it('a client capped at 1.2 sees it; a client offering 1.3 gets 1.3', async () => {
    const proxy = await startRecordProxy(servers['ecdsa-p256'].port);
    try {
      const r12 = await opensslClient(proxy.port, { args: ['-tls1_2'], input: 'x\n', timeoutMs: TIMEOUT });
      assert.equal(parseOpensslOutput(r12).protocol, 'TLSv1.2', describeRun(r12));
      const r13 = await opensslClient(proxy.port, { input: 'x\n', timeoutMs: TIMEOUT });
      assert.equal(parseOpensslOutput(r13).protocol, 'TLSv1.3', describeRun(r13));
      await waitUntil(() => proxy.connections.length === 2 && proxy.connections.every((c) => c.serverRecords().length > 0), 'both connections');
      const hello = (i: number) => parseServerHello(plaintextHandshakes(proxy.connections[i].serverRecords()).find((m) => m.type === 2)!.body);
      assert.deepEqual(hello(0).random.subarray(24), SENTINEL);
      assert.notDeepEqual(hello(1).random.subarray(24), SENTINEL);
    } finally {
      await proxy.close();
    }
  });
});

describe('curl --tls-max 1.2', () => {
  for (const [t, cipher] of [
    ['ecdsa-p256', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
    ['rsa-2048', 'ECDHE-RSA-CHACHA20-POLY1305'],
    ['rsa-2048', 'AES128-GCM-SHA256'],
  ] as const) {
    it(`${t} ${cipher}`, async () => {
      const res = await curl(`https://localhost:${servers[t].port}/`, {
        cacert: pki.ca.certPath,
        resolve: [curlResolve('localhost', servers[t].port)],
        args: ['--tlsv1.2', '--tls-max', '1.2', '--ciphers', cipher, '--max-time', '5'],
        timeoutMs: TIMEOUT,
      });
      // The echo server is not HTTP: curl's request comes back as the "response".
      assert.equal(res.tlsVersion, 'TLSv1.2', describeRun(res));
      assert.equal(res.cipher, cipher, describeRun(res));
    });
  }
});

describe('gnutls-cli TLS 1.2 priorities', () => {
  const cases: [KeyType, string, string, string | undefined][] = [
    ['ecdsa-p256', 'ECDHE-ECDSA', 'AES-128-GCM', 'GROUP-X25519:+GROUP-SECP256R1'],
    ['ecdsa-p384', 'ECDHE-ECDSA', 'AES-256-GCM', 'GROUP-SECP384R1'],
    ['ed25519', 'ECDHE-ECDSA', 'CHACHA20-POLY1305', 'GROUP-SECP256R1'],
    ['rsa-2048', 'ECDHE-RSA', 'AES-128-GCM', 'GROUP-X25519'],
    ['rsa-2048', 'RSA', 'AES-256-GCM', undefined],
  ];
  for (const [t, kx, cipher, group] of cases) {
    it(`${t} ${kx} ${cipher} ${group ?? ''}`, async () => {
      const sent = `g12-${randomBytes(6).toString('hex')}`;
      const groups = group ? `:-GROUP-ALL:+${group}` : '';
      const priority = `NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+${kx}:-CIPHER-ALL:+${cipher}${groups}`;
      const run = await gnutlsCli(servers[t].port, { cafile: pki.ca.certPath, servername: 'localhost', priority, input: `${sent}\n`, waitFor: sent, timeoutMs: TIMEOUT });
      const s = parseGnutlsOutput(run);
      assert.equal(s.protocol, 'TLSv1.2', describeRun(run));
      assert.equal(s.cipher, cipher, describeRun(run));
      assert.equal(s.trusted, true, describeRun(run));
      assert.ok(run.stdout.includes(sent), describeRun(run));
    });
  }
  it('PSK (--pskusername/--pskkey)', async () => {
    const sent = `gpsk-${randomBytes(6).toString('hex')}`;
    const run = await gnutlsCli(pskServer.port, {
      priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-GCM',
      args: ['--pskusername', PSK_IDENTITY, '--pskkey', PSK.toString('hex')],
      input: `${sent}\n`,
      waitFor: sent,
      timeoutMs: TIMEOUT,
    });
    const s = parseGnutlsOutput(run);
    assert.equal(s.keyExchange, 'PSK', describeRun(run));
    assert.ok(run.stdout.includes(sent), describeRun(run));
  });
});

describe('Python ssl maximum_version TLSv1_2', () => {
  for (const t of KEY_TYPES) {
    it(t, async () => {
      const sent = `py12-${randomBytes(6).toString('hex')}`;
      const run = await pythonSsl(servers[t].port, { cafile: pki.ca.certPath, maxVersion: 'TLSv1_2', send: sent, until: sent, timeoutMs: TIMEOUT });
      assert.equal(run.report?.ok, true, describeRun(run));
      assert.equal(run.report?.version, 'TLSv1.2', describeRun(run));
      assert.equal(run.report?.received, sent, describeRun(run));
    });
  }
  it('RSA key exchange', async () => {
    const run = await pythonSsl(servers['rsa-2048'].port, { cafile: pki.ca.certPath, maxVersion: 'TLSv1_2', ciphers: 'AES256-GCM-SHA384', send: 'x', until: 'x', timeoutMs: TIMEOUT });
    assert.equal(run.report?.cipher, 'AES256-GCM-SHA384', describeRun(run));
  });
});

describe('node:tls maxVersion TLSv1.2', () => {
  for (const t of KEY_TYPES) {
    it(t, async () => {
      const sent = `n12-${randomBytes(6).toString('hex')}`;
      const r = await nodeTlsClient(servers[t].port, { ca: pki.ca.certPem, maxVersion: 'TLSv1.2', send: sent, until: sent, ALPNProtocols: ['http/1.1'], timeoutMs: TIMEOUT });
      assert.equal(r.protocol, 'TLSv1.2', JSON.stringify(r));
      assert.equal(r.authorized, true, JSON.stringify(r));
      assert.equal(r.alpn, 'http/1.1', JSON.stringify(r));
      assert.equal(r.received, sent, JSON.stringify(r));
    });
  }

  it('exporter (RFC 5705) agrees with OpenSSL, with and without context', async () => {
    const server = servers['ecdsa-p256'];
    const mark = server.mark();
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: pki.ca.certPem, maxVersion: 'TLSv1.2' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      await waitUntil(() => server.since(mark).sessions.length === 1, 'the server session');
      const serverSocket = server.since(mark).sessions[0].socket;
      for (const ctx of [undefined, Buffer.from('ctx')]) {
        assert.deepEqual(serverSocket.exportKeyingMaterial(32, 'EXPERIMENTAL keyward', ctx), socket.exportKeyingMaterial(32, 'EXPERIMENTAL keyward', ctx as Buffer));
      }
    } finally {
      socket.destroy();
    }
  });

  it('PSK through pskCallback', async () => {
    const r = await nodeTlsClient(pskServer.port, {
      maxVersion: 'TLSv1.2',
      ciphers: 'PSK-AES128-GCM-SHA256',
      pskCallback: () => ({ psk: PSK, identity: PSK_IDENTITY }),
      checkServerIdentity: () => undefined,
      send: 'psk',
      until: 'psk',
      timeoutMs: TIMEOUT,
    });
    assert.equal(r.protocol, 'TLSv1.2', JSON.stringify(r));
    assert.equal(r.cipherOpenssl, 'PSK-AES128-GCM-SHA256', JSON.stringify(r));
    assert.equal(r.received, 'psk', JSON.stringify(r));
  });
});
