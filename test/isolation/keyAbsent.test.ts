/**
 * "The key is absent from the front": `keyward serve` with --key-process and with --keyd
 * serves real handshakes (openssl s_client, curl), then a scan of the serving process's
 * whole memory (/proc/PID/mem, native heap included) finds none of the server key's
 * secret components, its DER or its PEM text. The same scan of a `serve --key` server
 * (key in-process) finds them, so the test can fail; and the key process's own memory
 * holds the key, so the scan sees keys where they are.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { connectKeydAdmin } from '../../src/keys/remoteKey.js';
import type { Keyd } from '../../src/keyd/server.js';
import { makeKeydPki, startTestKeyd, tempDir, type KeydPki } from '../support/keydFixture.js';
import { startServe, type KeywardChild } from '../support/keywardCli.js';
import { keySecretNeedles, scanProcessMemory, type Needle } from '../support/memscan.js';
import { curl, curlResolve, opensslClient, parseOpensslOutput } from '../support/peers.js';
import { getPki, type CertFiles, type PkiFixtures } from '../support/pki.js';

let root: { dir: string; cleanup: () => Promise<void> };
let pki: PkiFixtures;
let kpki: KeydPki;
let keyd: Keyd;
let cert: CertFiles;
let needles: Needle[];
const servers: KeywardChild[] = [];
const FRONT = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'keyHolderFront.js');

/** Several real handshakes (and page loads) against the front, so every code path that touches the key has run. */
async function handshakes(s: { port: number }): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const o = await opensslClient(s.port, { servername: 'localhost', cafile: pki.ca.certPath, args: ['-verify_return_error'] });
    assert.ok(parseOpensslOutput(o).handshakeOk, `openssl: ${o.stdout}\n${o.stderr}`);
  }
  for (const http of ['1.1', '2'] as const) {
    const c = await curl(`https://localhost:${s.port}/`, { cacert: pki.ca.certPath, resolve: [curlResolve('localhost', s.port)], http });
    assert.equal(c.status, 200, c.stderr);
  }
}

async function scan(pid: number): Promise<string[]> {
  const r = await scanProcessMemory(pid, needles);
  // A scan that read almost nothing would prove nothing.
  assert.ok(r.bytesScanned > 10_000_000 && r.regions > 10, `scan too small: ${JSON.stringify(r)}`);
  return r.found;
}

before(async () => {
  root = await tempDir('keyward-absent-');
  pki = await getPki();
  cert = pki.server['ecdsa-p256'];
  needles = keySecretNeedles(cert.keyPem);
  kpki = await makeKeydPki(root.dir, ['front']);
  ({ keyd } = await startTestKeyd(root.dir, kpki));
  const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
  try {
    await admin.putKey(createPrivateKey(cert.keyPem), ['localhost']);
  } finally {
    admin.close();
  }
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await keyd?.close();
  await root?.cleanup();
});

describe('the key is absent from the serving process', { timeout: 120_000 }, () => {
  test('control: serve --key (in-process key) holds it, and the scan finds it', async () => {
    const s = await startServe(['--cert', cert.chainPath, '--key', cert.keyPath]);
    servers.push(s);
    await handshakes(s);
    const found = await scan(s.pid);
    assert.ok(found.some((n) => n.startsWith('scalar')), `expected the EC scalar in an in-process-key server; found: ${found.join(', ') || 'nothing'}`);
  });

  test('serve --key-process: none of the key in the front; the key process has it', async () => {
    const s = await startServe(['--cert', cert.chainPath, '--key-process', '--key', cert.keyPath]);
    servers.push(s);
    await handshakes(s);
    assert.deepEqual(await scan(s.pid), [], 'key material found in the front');
    const [keyPid] = s.keyProcessPids();
    assert.ok(keyPid, s.stdout());
    const inKeyProcess = await scan(keyPid);
    assert.ok(inKeyProcess.some((n) => n.startsWith('scalar')), `key process scan found: ${inKeyProcess.join(', ') || 'nothing'}`);
  });

  test('serve --keyd (mutual TLS): none of the key in the front', async () => {
    const front = kpki.clients.front;
    const s = await startServe([
      '--cert', cert.chainPath,
      '--keyd', `tls://127.0.0.1:${keyd.tlsAddress!.port}`,
      '--keyd-ca', kpki.caPath, '--keyd-cert', front.certPath, '--keyd-key', front.keyPath,
    ]);
    servers.push(s);
    await handshakes(s);
    assert.deepEqual(await scan(s.pid), [], 'key material found in the front');
  });

  test('serve() embedded in another program (keyHolderFront serve): none of the key in it', async () => {
    const proc = spawn(process.execPath, [FRONT, 'serve', '--cert', cert.chainPath, '--key', cert.keyPath, '--backend', 'keyprocess'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    try {
      let out = '';
      proc.stdout.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`front not ready: ${out}`)), 20_000);
        proc.once('exit', (code) => reject(new Error(`front exited (${code}): ${out}`)));
        proc.stdout.on('data', (d: string) => {
          out += d;
          if (/^READY \d+$/m.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const port = Number(/^LISTENING (\d+)$/m.exec(out)?.[1]);
      const keyPid = Number(/^KEYPROCESS (\d+)$/m.exec(out)?.[1]);
      await handshakes({ port });
      assert.deepEqual(await scan(proc.pid!), [], 'key material found in the embedding program');
      assert.ok((await scan(keyPid)).some((n) => n.startsWith('scalar')));
    } finally {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
  });
});
