/**
 * TLS 1.3 resumption on keyward's server with real clients: openssl s_client -sess_out /
 * -sess_in, Python ssl, node:tls, curl (two URLs in one run), gnutls-cli --resume. Every
 * resumed handshake is checked on the server (isSessionReused) and against the key holder:
 * it signs for the full handshake only (the key sits in a key process).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startKeyProcess, type KeyProcessKey } from '../../src/keys/keyProcess.js';
import { createHttpsServer, tlsSocketOf } from '../../src/node/http.js';
import type { KeywardServerOptions } from '../../src/node/server.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { ControlledKey } from '../node/helpers.js';
import { closeServer, describeRun, listen, startEchoServer, type EchoServer } from '../support/keywardServer.js';
import { curl, curlResolve, gnutlsCli, LOOPBACK, opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { runProcess } from '../support/processes.js';

let pki: PkiFixtures;
let keyProcess: KeyProcessKey;
let dir: string;

before(async () => {
  pki = await getPki();
  dir = await mkdtemp(join(tmpdir(), 'keyward-resumption-'));
  // 'prefer': the test is about which operations reach the key process, not its hardening.
  keyProcess = await startKeyProcess({ keyPath: pki.server['ecdsa-p256'].keyPath, nonDumpable: 'prefer' });
});

after(async () => {
  await keyProcess?.close();
  await rm(dir, { recursive: true, force: true });
});

/** An echo server whose certificate key is the key process, behind a counter of the sign calls it receives. */
async function server(opts: Partial<KeywardServerOptions> = {}): Promise<{ echo: EchoServer; key: ControlledKey }> {
  const key = new ControlledKey(keyProcess);
  const echo = await startEchoServer({ certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key }], ...opts });
  return { echo, key };
}

/** What the server saw of its connections, in order: resumed or not. */
const reused = (echo: EchoServer) => echo.sessions.map((s) => s.negotiated.resumed === true);

describe('keyward server: TLS 1.3 resumption with real clients', () => {
  it('openssl s_client -sess_out, then -sess_in: "Reused, TLSv1.3", no second signature', async () => {
    const { echo, key } = await server();
    try {
      const file = join(dir, 'openssl.sess');
      const args = ['-tls1_3'];
      const first = await opensslClient(echo.port, { args: [...args, '-sess_out', file], cafile: pki.ca.certPath, servername: 'localhost', input: 'one\n', waitFor: 'one' });
      assert.match(first.stdout, /^New, TLSv1\.3/m, describeRun(first));
      const second = await opensslClient(echo.port, { args: [...args, '-sess_in', file], cafile: pki.ca.certPath, servername: 'localhost', input: 'two\n', waitFor: 'two' });
      const summary = parseOpensslOutput(second);
      assert.equal(summary.reused, true, describeRun(second));
      assert.match(second.stdout, /^Reused, TLSv1\.3/m);
      assert.deepEqual(reused(echo), [false, true]);
      assert.equal(key.log.started, 1, 'the key process signed for the full handshake only');
    } finally {
      await echo.close();
    }
  });

  it('psk_ke (openssl -allow_no_dhe_kex, no group in common): refused by default, resumed with allowPskOnlyKeyExchange', async () => {
    for (const allow of [false, true]) {
      const { echo, key } = await server({ groups: [NamedGroup.x25519], allowPskOnlyKeyExchange: allow });
      try {
        const file = join(dir, `psk-ke-${allow}.sess`);
        const first = await opensslClient(echo.port, { args: ['-tls1_3', '-sess_out', file], servername: 'localhost', input: 'one\n', waitFor: 'one' });
        assert.match(first.stdout, /^New, TLSv1\.3/m, describeRun(first));
        const second = await opensslClient(echo.port, { args: ['-tls1_3', '-sess_in', file, '-allow_no_dhe_kex', '-groups', 'P-256'], servername: 'localhost', input: 'two\n', waitFor: 'two', keepOpenMs: 2000 });
        if (allow) {
          assert.match(second.stdout, /^Reused, TLSv1\.3/m, describeRun(second));
          assert.equal(echo.sessions[1].negotiated.group, undefined, 'no key exchange');
        } else {
          assert.doesNotMatch(second.stdout, /^Reused/m);
          assert.equal(echo.errors[0]?.alertSent, 40, 'handshake_failure: psk_ke refused and no group in common');
        }
        assert.equal(key.log.started, 1);
      } finally {
        await echo.close();
      }
    }
  });

  it('Python ssl: wrap_socket(session=...) reuses the session (session_reused)', async () => {
    const { echo, key } = await server();
    try {
      const script = String.raw`
import json, socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
session, out = None, []
for text in (b"one", b"two"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(text)
            assert s.recv(100) == text
            out.append(s.session_reused)
            session = s.session
print(json.dumps(out))
`;
      const run = await runProcess('python3', ['-c', script, String(echo.port), pki.ca.certPath], { timeoutMs: 10_000 });
      assert.equal(run.stdout.trim(), '[false, true]', describeRun(run));
      assert.deepEqual(reused(echo), [false, true]);
      assert.equal(key.log.started, 1);
    } finally {
      await echo.close();
    }
  });

  it('node:tls: connect({ session }) from the session event; isSessionReused on both sides', async () => {
    const { echo, key } = await server();
    try {
      const once = (session?: Buffer) =>
        new Promise<{ reused: boolean; session?: Buffer }>((resolve, reject) => {
          let got: Buffer | undefined;
          let reusedHere = false;
          const s = tls.connect({ host: LOOPBACK, port: echo.port, servername: 'localhost', ca: pki.ca.certPem, minVersion: 'TLSv1.3', session });
          s.on('session', (b: Buffer) => (got = b));
          s.on('secureConnect', () => {
            reusedHere = s.isSessionReused();
            s.write('ping');
          });
          s.on('data', () => s.end());
          s.on('error', reject);
          s.on('close', () => resolve({ reused: reusedHere, session: got }));
        });
      const a = await once();
      assert.ok(a.session, 'node:tls got a session');
      const b = await once(a.session);
      assert.equal(b.reused, true);
      assert.deepEqual(reused(echo), [false, true]);
      assert.equal(key.log.started, 1);
    } finally {
      await echo.close();
    }
  });

  it('gnutls-cli --resume: "This is a resumed session"', async () => {
    const { echo, key } = await server();
    try {
      const run = await gnutlsCli(echo.port, { cafile: pki.ca.certPath, servername: 'localhost', priority: 'NORMAL:-VERS-ALL:+VERS-TLS1.3', args: ['--resume'], timeoutMs: 10_000 });
      assert.match(run.stdout, /\*\*\* This is a resumed session/, describeRun(run));
      assert.deepEqual(reused(echo), [false, true]);
      assert.equal(key.log.started, 1);
    } finally {
      await echo.close();
    }
  });

  it('curl with two URLs: the second connection resumes (createHttpsServer, Connection: close)', async () => {
    const key = new ControlledKey(keyProcess);
    const seen: boolean[] = [];
    const handler: http.RequestListener = (req, res) => {
      seen.push(tlsSocketOf(req)?.isSessionReused() ?? false);
      res.setHeader('Connection', 'close');
      res.end(`hello ${req.url}\n`);
    };
    const https = createHttpsServer({ certificates: [{ cert: pki.server['ecdsa-p256'].chainPem, key }], handshakeTimeout: 10_000 }, handler);
    const port = await listen(https);
    try {
      const url = `https://localhost:${port}`;
      // curl fetches its URLs in argument order: /a (among the extra arguments), then /b.
      const res = await curl(`${url}/b`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', port)], args: ['--tlsv1.3', `${url}/a`], timeoutMs: 10_000 });
      assert.equal(res.code, 0, describeRun(res));
      assert.match(res.stdout, /hello \/a\n[\s\S]*hello \/b\n/);
      assert.deepEqual(seen, [false, true], describeRun(res));
      assert.match(res.stderr, /SSL re-using session ID/, 'curl says it resumed');
      assert.equal(key.log.started, 1);
    } finally {
      await closeServer(https, () => https.tlsAcceptor.destroyAll());
    }
  });
});
