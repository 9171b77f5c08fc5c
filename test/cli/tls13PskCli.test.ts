/**
 * The TLS 1.3 external-PSK flags of `keyward serve` and `keyward connect`, run as the real
 * commands: a server with a certificate and `--tls13-psk-identity` gives an unlisted
 * identity the certificate handshake and a listed one its PSK; the same from a
 * configuration file; bad combinations are one clear line and exit code 2, never a PSK.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../support/keydFixture.js';
import { runKeyward, startServe, type KeywardChild } from '../support/keywardCli.js';
import { opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const PSK = randomBytes(32);
const HEX = PSK.toString('hex');
let pki: PkiFixtures;
let root: { dir: string; cleanup: () => Promise<void> };
let pskFile: string;
const servers: KeywardChild[] = [];

before(async () => {
  pki = await getPki();
  root = await tempDir('tls13-psk-cli-');
  pskFile = join(root.dir, 'psks.txt');
  await writeFile(pskFile, `known:${HEX}\n`, { mode: 0o600 });
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await root?.cleanup();
});

const GET = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

async function page(port: number, identity: string) {
  return opensslClient(port, {
    args: ['-tls1_3', '-psk', HEX, '-psk_identity', identity, '-alpn', 'http/1.1'],
    cafile: pki.ca.certPath,
    servername: 'localhost',
    input: GET,
    waitFor: /HTTP\/1\.1 200/,
    timeoutMs: 10_000,
  });
}

describe('serve --tls13-psk and connect with a PSK, from the command line', { timeout: 60_000 }, () => {
  it('beside a certificate: a listed identity gets its PSK, any other the certificate', async () => {
    const files = pki.server['ecdsa-p256'];
    const s = await startServe(['--cert', files.chainPath, '--key-process', '--key', files.keyPath, '--psk-process', '--psk-file', pskFile, '--tls13-psk', '--tls13-psk-identity', 'known', '--alpn', 'http/1.1']);
    servers.push(s);
    const psk = await page(s.port, 'known');
    assert.match(psk.stdout, /HTTP\/1\.1 200/, psk.stderr);
    assert.equal(parseOpensslOutput(psk).peerSignatureType, undefined, 'no CertificateVerify in a PSK handshake');
    const other = await page(s.port, 'stranger');
    assert.match(other.stdout, /HTTP\/1\.1 200/, other.stderr);
    const cert = parseOpensslOutput(other);
    assert.equal(cert.verifyCode, 0);
    assert.equal(cert.peerSignatureType, 'ECDSA');
  });

  it('from a configuration file: a PSK-only server whose PSKs a key process holds', async () => {
    const config = join(root.dir, 'serve.json');
    await writeFile(config, JSON.stringify({ psk: { process: true, file: pskFile, tls13: true }, tls: { alpn: ['http/1.1'] } }));
    const s = await startServe(['--config', config]);
    servers.push(s);
    assert.match(s.stdout(), /PSKs in a separate key process/);
    const psk = await page(s.port, 'known');
    assert.match(psk.stdout, /HTTP\/1\.1 200/, psk.stderr);
  });

  it('usage errors name the flag, and never show the PSK', async () => {
    const serve: [string[], RegExp][] = [
      [['--tls13-psk'], /--tls13-psk need a PSK source/],
      [['--psk-file', pskFile, '--tls13-psk-identity', 'known'], /--tls13-psk-identity, --tls13-psk-ke and --psk-hash go with --tls13-psk/],
      [['--psk-file', pskFile, '--psk-hash', 'sha384'], /go with --tls13-psk/],
      [['--cert', pki.server['ecdsa-p256'].chainPath, '--key', pki.server['ecdsa-p256'].keyPath, '--psk-file', pskFile, '--tls13-psk'], /--tls13-psk with --cert needs --tls13-psk-identity/],
      [['--psk-file', pskFile, '--tls13-psk', '--psk-hash', 'md5'], /argument 'md5' is invalid/],
    ];
    const connect: [string[], RegExp][] = [
      [['--psk-hash', 'sha384'], /--psk-hash and --tls13-psk-ke need a PSK/],
      [['--psk-file', pskFile, '--psk-identity', 'known', '--tls-version', '1.2', '--tls13-psk-ke'], /are for a TLS 1\.3 PSK: this connection is TLS 1\.2 only/],
    ];
    const runs = [...serve.map(([a, re]) => [['serve', '--listen', '127.0.0.1:0', ...a], re] as const), ...connect.map(([a, re]) => [['connect', '127.0.0.1:9', ...a], re] as const)];
    for (const [args, re] of runs) {
      const r = await runKeyward(args, { timeoutMs: 15_000 });
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(!r.stderr.includes(HEX) && !r.stdout.includes(HEX));
    }
  });
});
