/**
 * `keyward serve --max-version/--groups/--cipher` (and tls.* in its configuration file), run
 * as the real command against openssl s_client: the FFDHE groups of RFC 7919 over TLS 1.3,
 * the suite asked for, the versions the suites and flags leave; the same group names in
 * `keyward connect` and in `keyward proxy` (both modes); a bad name or version pair exits 2
 * naming the flag (or FILE:LINE and the field).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from '../../src/node/clientSocket.js';
import { tempDir } from '../support/keydFixture.js';
import { runKeyward, startConnect, startKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { echoHandler, startUpstream, type TestUpstream } from '../proxy/harness.js';

const PROXY_READY = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"keyward proxy listening"/;
const GET = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

let pki: PkiFixtures;
let root: { dir: string; cleanup: () => Promise<void> };
let up: TestUpstream;
const children: KeywardChild[] = [];
const cleanups: Array<() => unknown> = [];

before(async () => {
  pki = await getPki();
  root = await tempDir('serve-tls-choices-');
  up = await startUpstream(echoHandler);
});

after(async () => {
  for (const c of cleanups) c();
  await Promise.all(children.map((c) => c.stop()));
  await up?.close();
  await root?.cleanup();
});

/** The P-256 certificate, its key in a key process. */
const certArgs = () => ['--cert', pki.server['ecdsa-p256'].chainPath, '--key-process', '--key', pki.server['ecdsa-p256'].keyPath];

async function serveWith(args: string[]): Promise<KeywardChild> {
  const s = await startServe(args);
  children.push(s);
  return s;
}

/** s_client with `args`, asking for the page over HTTP/1.1 when the handshake succeeds. */
function sClient(port: number, args: string[], input: string | undefined = GET) {
  return opensslClient(port, {
    args: [...args, '-alpn', 'http/1.1'],
    cafile: pki.ca.certPath,
    servername: 'localhost',
    ...(input !== undefined ? { input, waitFor: /^private key: /m } : {}),
    timeoutMs: 10_000,
  });
}

/** s_client's run ended without a session: the server refused what it offered. */
function refused(r: Awaited<ReturnType<typeof opensslClient>>, what: string): void {
  const s = parseOpensslOutput(r);
  assert.equal(s.protocol, undefined, `${what}: no session expected\n${r.stdout}`);
  assert.match(r.stderr, /alert (handshake failure|protocol version)/, what);
}

describe('keyward serve: --max-version, --groups, --cipher', { timeout: 90_000 }, () => {
  let flagged: KeywardChild;

  it('--groups ffdhe2048,x25519 --cipher: s_client -groups ffdhe2048 gets DH 2048 and the suite; other groups and suites are refused', async () => {
    flagged = await serveWith([...certArgs(), '--groups', 'ffdhe2048,x25519', '--cipher', 'TLS_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384']);
    const ff = await sClient(flagged.port, ['-tls1_3', '-groups', 'ffdhe2048']);
    const s = parseOpensslOutput(ff);
    assert.equal(s.serverTempKey, 'DH, 2048 bits', ff.stdout);
    assert.equal(s.group, 'ffdhe2048');
    assert.equal(s.protocol, 'TLSv1.3');
    assert.equal(s.cipher, 'TLS_AES_256_GCM_SHA384');
    assert.equal(s.verifyCode, 0);
    // The server's own view of the same connection.
    assert.match(ff.stdout, /^group: ffdhe2048$/m);
    assert.match(ff.stdout, /^cipher: TLS_AES_256_GCM_SHA384$/m);

    refused(await sClient(flagged.port, ['-tls1_3', '-groups', 'P-256'], undefined), 'a group not in --groups');
    refused(await sClient(flagged.port, ['-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'], undefined), 'a TLS 1.3 suite not in --cipher');
    refused(await sClient(flagged.port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], undefined), 'a TLS 1.2 suite not in --cipher');
    const tls12 = parseOpensslOutput(await sClient(flagged.port, ['-tls1_2'], undefined));
    assert.equal(tls12.protocol, 'TLSv1.2');
    assert.equal(tls12.cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    assert.equal(tls12.group, 'X25519', 'TLS 1.2 has no DHE suite: the ECDHE group of the list');
  });

  it('keyward connect --groups ffdhe2048, and the node API groups option, negotiate it with that server', async () => {
    const { stderr } = await startConnect(['127.0.0.1:' + flagged.port, '--ca', pki.ca.certPath, '--servername', 'localhost', '--groups', 'ffdhe2048'], cleanups);
    assert.match(stderr, /^connected version=TLSv1\.3 suite=TLS_AES_256_GCM_SHA384 group=ffdhe2048 /m);

    const socket = tlsConnect({ host: '127.0.0.1', port: flagged.port, servername: 'localhost', ca: pki.ca.certPem, groups: ['ffdhe3072', 'ffdhe2048'] });
    try {
      await once(socket, 'secureConnect');
      // The server prefers ffdhe2048; the client's first share (ffdhe3072) is not in its list: a HelloRetryRequest.
      assert.deepEqual(socket.getEphemeralKeyInfo(), { type: 'DH', name: 'ffdhe2048', size: 2048 });
      assert.equal(socket.negotiated.helloRetry, true);
    } finally {
      socket.destroy();
    }
  });

  it('--max-version TLSv1.2: a TLS 1.3 hello is refused, TLS 1.2 is served', async () => {
    const s = await serveWith([...certArgs(), '--max-version', 'TLSv1.2']);
    refused(await sClient(s.port, ['-tls1_3'], undefined), 'TLS 1.3 above --max-version');
    assert.equal(parseOpensslOutput(await sClient(s.port, [], undefined)).protocol, 'TLSv1.2');
  });

  it('from the configuration file (tls.groups, tls.ciphers): ffdhe3072 and ChaCha20, TLS 1.3 only as the suites say; a flag overrides the file', async () => {
    const config = join(root.dir, 'serve.json');
    await writeFile(config, JSON.stringify({ tls: { groups: ['ffdhe3072'], ciphers: ['TLS_CHACHA20_POLY1305_SHA256'] } }));
    const s = await serveWith(['--config', config, ...certArgs()]);
    const r = parseOpensslOutput(await sClient(s.port, ['-groups', 'ffdhe3072:X25519'], undefined));
    assert.equal(r.serverTempKey, 'DH, 3072 bits');
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    refused(await sClient(s.port, ['-tls1_2'], undefined), 'TLS 1.2 without a TLS 1.2 suite');
    const flag = await serveWith(['--config', config, ...certArgs(), '--groups', 'ffdhe4096']);
    assert.equal(parseOpensslOutput(await sClient(flag.port, ['-groups', 'ffdhe3072:ffdhe4096'], undefined)).serverTempKey, 'DH, 4096 bits');
  });

  it('keyward proxy takes the ffdhe names too: server mode to s_client, client mode to serve', async () => {
    const server = await startKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${up.port}`, ...certArgs(), '--groups', 'ffdhe3072'], { ready: PROXY_READY });
    children.push(server);
    const echoed = await opensslClient(server.port, { args: ['-tls1_3', '-groups', 'ffdhe3072'], cafile: pki.ca.certPath, servername: 'localhost', input: 'ping\n', waitFor: /^ping$/m, timeoutMs: 10_000 });
    assert.equal(parseOpensslOutput(echoed).serverTempKey, 'DH, 3072 bits');
    assert.match(echoed.stdout, /^ping$/m, 'relayed to the upstream and back');

    const client = await startKeyward(
      ['proxy', '--client', '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${flagged.port}`, '--servername', 'localhost', '--ca', pki.ca.certPath, '--groups', 'ffdhe2048', '--cipher', 'TLS_AES_256_GCM_SHA384'],
      { ready: PROXY_READY },
    );
    children.push(client);
    const pageText = await new Promise<string>((resolve, reject) => {
      const sock = connect(client.port, '127.0.0.1', () => sock.write(GET));
      let text = '';
      sock.setTimeout(10_000, () => sock.destroy(new Error(`no page through the proxy: ${text}`)));
      sock.on('data', (d) => (text += String(d)));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
    });
    assert.match(pageText, /^group: ffdhe2048$/m, pageText);
    assert.match(pageText, /^cipher: TLS_AES_256_GCM_SHA384$/m);
  });

  it('a bad name or version pair exits 2 naming the flag or the field', async () => {
    const bad = join(root.dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ tls: { groups: ['ffdhe2048', 'ffdhe6144'], ciphers: ['TLS_NOPE'] } }, null, 2));
    const runs: [string[], RegExp][] = [
      [['--groups', 'ffdhe2048,ffdhe6144'], /^keyward: --groups: unknown group "ffdhe6144" \(known: .*ffdhe2048, ffdhe3072, ffdhe4096\)$/m],
      [['--groups', ','], /^keyward: --groups: expected a comma-separated list, got ","$/m],
      [['--cipher', 'TLS_NOPE'], /^keyward: --cipher: unknown cipher suite "TLS_NOPE"/m],
      [['--min-version', 'TLSv1.3', '--max-version', 'TLSv1.2'], /^keyward: --min-version \(tls\.minVersion\) TLSv1\.3 is above --max-version \(tls\.maxVersion\) TLSv1\.2$/m],
      [['--cipher', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', '--min-version', 'TLSv1.3'], /^keyward: --cipher \(tls\.ciphers\) lists no TLS 1\.3 suite/m],
      [['--config', bad], /bad\.json:5: tls\.groups\[1\]: unknown group "ffdhe6144"[\s\S]*bad\.json:8: tls\.ciphers\[0\]: unknown cipher suite "TLS_NOPE"/],
    ];
    for (const [args, message] of runs) {
      const r = await runKeyward(['serve', '--listen', '127.0.0.1:0', ...certArgs(), ...args], { timeoutMs: 15_000 });
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.doesNotMatch(r.stdout, /listening/);
    }
    const proxy = await runKeyward(['proxy', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1', ...certArgs(), '--groups', 'ffdhe8192'], { timeoutMs: 15_000 });
    assert.equal(proxy.code, 2);
    assert.match(proxy.stderr, /^keyward: --groups: unknown group "ffdhe8192"/m);
  });
});
