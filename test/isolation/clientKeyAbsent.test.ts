/**
 * "The key is absent from the client": `keyward connect` with its client key in a key
 * process, or its TLS 1.2 PSK in a PSK process, holds none of the secret's bytes anywhere
 * in its memory (native heap included) while the connection is open; with the key or PSK
 * file read in-process the same scan finds them (the control that proves the scan works).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { sServer, stopSServers } from '../client/clientHelpers.js';
import { tempDir } from '../support/keydFixture.js';
import { startConnect } from '../support/keywardCli.js';
import { keySecretNeedles, scanProcessMemory, type Needle } from '../support/memscan.js';
import { getPki, type PkiFixtures } from '../support/pki.js';

const PSK = Buffer.from('5f3e8a1c9b2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f', 'hex');
const IDENTITY = 'sensor-42';

let pki: PkiFixtures;
let dir: { dir: string; cleanup: () => Promise<void> };
let pskPath: string;
const cleanups: Array<() => unknown> = [];

before(async () => {
  pki = await getPki();
  dir = await tempDir('client-memscan-');
  pskPath = join(dir.dir, 'psks.txt');
  await writeFile(pskPath, `${IDENTITY}:${PSK.toString('hex')}\n`, { mode: 0o600 });
});
after(async () => {
  for (const c of cleanups) await c();
  stopSServers();
  await dir?.cleanup();
});

/** A mutual-TLS node:tls server that answers and keeps each connection open. */
async function mtlsServer(): Promise<number> {
  const s = tls.createServer({ key: pki.server['ecdsa-p256'].keyPem, cert: pki.server['ecdsa-p256'].chainPem, requestCert: true, rejectUnauthorized: true, ca: pki.ca.certPem }, (c) => {
    c.on('error', () => undefined);
    c.write('welcome\n');
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  cleanups.push(() => s.close());
  return (s.address() as AddressInfo).port;
}

/** `openssl s_server -psk ... -nocert` on a free port. */
async function pskServer(): Promise<number> {
  const s = await sServer(['-nocert', '-psk', PSK.toString('hex'), '-psk_identity', IDENTITY, '-tls1_2', '-cipher', 'ECDHE-PSK-CHACHA20-POLY1305']);
  return s.port;
}

/** Runs `keyward connect ARGS` and resolves once it printed its connected line (the connection stays open). */
async function connected(args: string[]): Promise<ChildProcess> {
  return (await startConnect(args, cleanups)).child;
}

async function scan(child: ChildProcess, needles: readonly Needle[]): Promise<string[]> {
  const r = await scanProcessMemory(child.pid!, needles);
  assert.ok(r.regions > 10 && r.bytesScanned > 1_000_000, 'the scan read the process');
  child.kill('SIGKILL');
  return r.found;
}

const pskNeedles = (): Needle[] => [
  { name: 'PSK', bytes: PSK },
  { name: 'PSK hex', bytes: Buffer.from(PSK.toString('hex')) },
];

describe('client secrets absent from the keyward connect process', () => {
  it('client key in the key process: none of its bytes; in process: found (control)', async () => {
    const port = await mtlsServer();
    const base = [`localhost:${port}`, '--ca', pki.ca.certPath, '--cert', pki.client.chainPath, '--key', pki.client.keyPath];
    const needles = keySecretNeedles(pki.client.keyPem);
    assert.deepEqual(await scan(await connected([...base, '--key-process']), needles), []);
    const control = await scan(await connected(base), needles);
    assert.ok(control.length > 0, 'the in-process key is found');
  });

  it('TLS 1.2 PSK in the PSK process: none of its bytes; read in process: found (control)', async () => {
    const port = await pskServer();
    const base = [`localhost:${port}`, '--psk-file', pskPath, '--psk-identity', IDENTITY, '--cipher', 'TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256'];
    assert.deepEqual(await scan(await connected([...base, '--psk-process']), pskNeedles()), []);
    const port2 = await pskServer();
    const control = await scan(await connected([`localhost:${port2}`, ...base.slice(1)]), pskNeedles());
    assert.ok(control.length > 0, 'the in-process PSK is found');
  });
});
