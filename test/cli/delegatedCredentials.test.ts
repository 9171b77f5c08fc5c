/**
 * `keyward serve|proxy --delegated-credentials [--dc-validity D]` as an operator runs them
 * (child processes): serve with the key in a key process and in the process itself, proxy
 * with the key in keyd and its settings from a configuration file; each says at start that
 * credentials are on, `tstclnt -B` gets one, a client that does not offer them gets the
 * key holder's signature, serve's page says a credential signed keyward's client's
 * handshake, and the proxy's metrics count handshakes by who signed. A
 * certificate that cannot delegate, and bad or lone --dc-validity values, are refused at
 * start with the reason.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { issueCertificate } from '../../src/cli/pki.js';
import type { Keyd } from '../../src/keyd/server.js';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import { connect } from '../../src/node/clientSocket.js';
import { fetchText, metricValue, startTestKeyd, tempDir } from '../support/keydFixture.js';
import { runKeyward, startKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { describeRun } from '../support/keywardServer.js';
import { createNssDb, tstclnt } from '../support/nss.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { SERVER_DNS, SERVER_IPS, getPki, type PkiFixtures } from '../support/pki.js';

const PROXY_READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let db: string;
let keyd: Keyd;
let upstream: Server;
/** A DC-capable ECDSA certificate (chain) and its key file. */
let dcChain: string;
let dcKey: string;

before(async () => {
  root = await tempDir('keyward-dc-cli-');
  pki = await getPki();
  db = await createNssDb(root.dir, [{ nickname: 'keyward test CA', certPath: pki.ca.certPath }]);
  const issued = await issueCertificate(pki.ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: SERVER_DNS, ipAddresses: SERVER_IPS, usage: 'server', delegation: true });
  dcChain = join(root.dir, 'dc-chain.pem');
  dcKey = join(root.dir, 'dc-key.pem');
  await writeFile(dcChain, issued.chainPem);
  await writeFile(dcKey, issued.keyPem, { mode: 0o600 });
  ({ keyd } = await startTestKeyd(root.dir, undefined, {
    listen: { unix: join(root.dir, 'keyd.sock') },
    clients: [{ id: 'unix', keys: ['*'], psks: [], admin: true, delegatedCredentials: true }],
  }));
  const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
  try {
    await admin.putKey(createPrivateKey(issued.keyPem), ['localhost']);
  } finally {
    admin.close();
  }
  upstream = createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  upstream?.close();
  await keyd?.close();
  await root?.cleanup();
});

/** tstclnt with and without -B: a credential, then the key holder's signature. */
async function assertServesCredentialsToThoseWhoAsk(port: number): Promise<void> {
  const withDc = await tstclnt(port, { db, host: 'localhost', delegatedCredentials: true });
  assert.equal(withDc.summary.handshakeOk, true, describeRun(withDc));
  assert.equal(withDc.summary.delegatedCredential, true, describeRun(withDc));
  const without = await tstclnt(port, { db, host: 'localhost' });
  assert.equal(without.summary.handshakeOk, true, describeRun(without));
  assert.equal(without.summary.delegatedCredential, false);
}

/** serve's page over keyward's client, offering delegated credentials. */
async function page(port: number): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.certPem, ALPNProtocols: ['http/1.1'], delegatedCredentials: true });
  socket.setEncoding('utf8');
  let text = '';
  socket.on('data', (d: string) => (text += d));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  return text;
}

describe('--delegated-credentials', () => {
  for (const [where, args] of [
    ['a key process', ['--key-process', '--key']],
    ['this process (--key)', ['--key']],
  ] as const) {
    test(`serve, the key in ${where}: said at start, served to tstclnt -B, not to others`, async () => {
      let child: KeywardChild | undefined;
      try {
        child = await startServe(['--cert', dcChain, ...args, dcKey, '--delegated-credentials', '--dc-validity', '2h']);
        assert.match(child.stdout(), /keyward: .*dc-chain\.pem: delegated credentials on: the current one expires at \S+ and is renewed before/);
        await assertServesCredentialsToThoseWhoAsk(child.port);
        assert.match(await page(child.port), /^signed by: a delegated credential \(RFC 9345\)/m, "the page says who signed keyward's client's handshake");
      } finally {
        await child?.stop();
      }
    });
  }

  test('proxy from a configuration file, the key in keyd: the start log says so, the metrics count who signed', async () => {
    const cfg = join(root.dir, 'front.json');
    await writeFile(
      cfg,
      JSON.stringify({
        upstream: `127.0.0.1:${(upstream.address() as { port: number }).port}`,
        certificates: [{ cert: dcChain }],
        keyd: { addresses: [`unix:${keyd.unixPath}`] },
        delegatedCredentials: { validity: '30m' },
        metrics: { listen: '127.0.0.1:0' },
      }),
    );
    const child = await startKeyward(['proxy', '--config', cfg, '--listen', '127.0.0.1:0'], { ready: PROXY_READY });
    try {
      const lines = child
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const start = lines.find((l) => l.msg === 'keyward proxy listening')!;
      const certs = start.certificates as Array<{ delegatedCredentials?: string }>;
      assert.match(String(certs[0].delegatedCredentials), /^delegated credentials on: the current one expires at /);
      await assertServesCredentialsToThoseWhoAsk(child.port);
      const run = await opensslClient(child.port, { servername: 'localhost', cafile: pki.ca.certPath });
      assert.ok(parseOpensslOutput(run).handshakeOk, describeRun(run));
      const metrics = (await fetchText(String(start.metrics))).text;
      assert.equal(metricValue(metrics, 'keyward_proxy_handshakes_total', { key_holder: 'delegated-credential', outcome: 'ok' }), 1);
      assert.equal(metricValue(metrics, 'keyward_proxy_handshakes_total', { key_holder: 'keyd', outcome: 'ok' }), 2, 'tstclnt without -B and openssl');
    } finally {
      await child.stop();
    }
  });

  test('refused at start with the reason: a certificate without DelegationUsage, a bad or lone --dc-validity', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--cert', pki.server['ecdsa-p256'].chainPath, '--key', pki.server['ecdsa-p256'].keyPath, '--delegated-credentials'], /--delegated-credentials: .*server-ecdsa-p256-chain\.pem: delegated credentials off: the certificate has no DelegationUsage extension/],
      [['--cert', dcChain, '--key', dcKey, '--delegated-credentials', '--dc-validity', '1m'], /--dc-validity 1m: a delegated credential is valid from 5 minutes to 7 days/],
      [['--cert', dcChain, '--key', dcKey, '--delegated-credentials', '--dc-validity', 'soon'], /--dc-validity soon: expected a duration such as 30m, 1h or 2d/],
      [['--cert', dcChain, '--key', dcKey, '--dc-validity', '1h'], /--dc-validity needs --delegated-credentials/],
    ];
    for (const [args, message] of cases) {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    const cfg = join(root.dir, 'bad.json');
    await writeFile(cfg, '{\n  "certificates": [ { "cert": "dc-chain.pem" } ],\n  "delegatedCredentials": { "validity": "9d" }\n}\n');
    const r = await runKeyward(['serve', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.json:3: delegatedCredentials\.validity: a delegated credential is valid from 5 minutes to 7 days/);
  });
});
