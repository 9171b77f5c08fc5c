/**
 * "A compromised front cannot read the key out of its key process": a front running as
 * a non-root user (this test drops to `nobody` when it runs as root) starts a key process
 * and tries to read its memory through /proc/PID/mem. The key process has made itself
 * non-dumpable, so the kernel refuses; the control, the same key process with the
 * protection turned off, shows that the front could otherwise read the key's private
 * scalar (and that the scan works). As root, `--key-user` adds a separate user, and a
 * front that then drops root reads neither the key file nor the key process's memory,
 * while its key process is still restarted (by the launcher) when killed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dropPrivileges, lookupUser, startKeyProcess } from '../../src/keys/keyProcess.js';
import type { KeyProcessProtection } from '../../src/keys/keyProcessHardening.js';
import { keySecretNeedles } from '../support/memscan.js';

const FRONT = join(dirname(fileURLToPath(import.meta.url)), 'keyProcessMemoryFront.js');
const asRoot = process.getuid!() === 0;
/** The front's user: nobody when this test runs as root, else this user (already not root). */
const frontIds = asRoot ? lookupUser('nobody') : { uid: process.getuid!(), gid: process.getgid!() };

interface FrontReport {
  uid: number;
  keyPid: number;
  protection: KeyProcessProtection;
  describe: string;
  scan: { found: string[]; bytesScanned: number } | { error: string };
  /** 'read', or the error reading the key file. */
  keyFile: string;
  restarted?: { pid: number; signed: boolean };
}

let dir: string;
let keyPath: string;
let needlesPath: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-keymem-'));
  chmodSync(dir, 0o711);
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  keyPath = join(dir, 'key.pem');
  writeFileSync(keyPath, pem, { mode: 0o600 });
  needlesPath = join(dir, 'needles.json');
  writeFileSync(needlesPath, JSON.stringify(keySecretNeedles(pem).map((n) => ({ name: n.name, hex: n.bytes.toString('hex') }))), { mode: 0o600 });
  if (asRoot) {
    // The front's user owns its key file, as with a key process under the front's own user.
    chownSync(keyPath, frontIds.uid, frontIds.gid);
    chownSync(needlesPath, frontIds.uid, frontIds.gid);
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs the front, as the non-root user or (`asRootThenDrop`) as root that drops to
 * `dropTo` after starting the key process as `keyUser`; resolves with its report (bounded:
 * killed after 60 s). A "KILL pid" line from the front asks this test to kill its key process.
 */
function runFront(policy: 'require' | 'off', asRootThenDrop?: { keyUser: string; dropTo: string }): Promise<FrontReport> {
  const child = spawn(process.execPath, [FRONT, keyPath, needlesPath, policy, ...(asRootThenDrop ? [asRootThenDrop.keyUser, asRootThenDrop.dropTo] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    ...(asRoot && !asRootThenDrop ? { uid: frontIds.uid, gid: frontIds.gid } : {}),
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const kill = /^KILL (\d+)$/m.exec(out);
    if (kill) {
      out = out.replace(kill[0], 'KILLED');
      process.kill(Number(kill[1]), 'SIGKILL');
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) return reject(new Error(`front exited with ${code ?? signal}\nstdout: ${out}\nstderr: ${err}`));
      resolve(JSON.parse(line) as FrontReport);
    });
  });
}

test('a non-root front cannot read its non-dumpable key process memory', async () => {
  const r = await runFront('require');
  assert.notEqual(r.uid, 0, 'the front is not root');
  assert.equal(r.uid, frontIds.uid);
  assert.deepEqual(r.protection, { nonDumpable: true });
  assert.match(r.describe, /^protection: non-dumpable; processes of this user \(this one included\) cannot trace it or read its memory/);
  assert.ok('error' in r.scan, `the scan must fail, it read ${JSON.stringify(r.scan)}`);
  assert.ok(['EACCES', 'EPERM'].includes(r.scan.error), r.scan.error);
});

test('control: with the protection off, the same front reads the private key out of the key process', async () => {
  const r = await runFront('off');
  assert.notEqual(r.uid, 0);
  assert.deepEqual(r.protection, { nonDumpable: false });
  assert.match(r.describe, /^protection: NONE: the key process is DUMPABLE/);
  assert.ok(!('error' in r.scan), `the scan failed: ${JSON.stringify(r.scan)}`);
  assert.ok(r.scan.bytesScanned > 1_000_000);
  assert.ok(r.scan.found.some((n) => n.startsWith('scalar (d)')), `found: ${r.scan.found.join(', ')}`);
});

test('--key-user: the key process runs as that user and is non-dumpable as well (only root may ask for it)', async () => {
  if (!asRoot) {
    await assert.rejects(startKeyProcess({ keyPath, keyUser: 'nobody' }), /running the key process as nobody needs root/);
    return;
  }
  const key = await startKeyProcess({ keyPath, keyUser: 'nobody' });
  try {
    assert.deepEqual(key.protection, { nonDumpable: true, user: 'nobody' });
    assert.match(key.describeProtection(), /^protection: runs as user nobody and is non-dumpable/);
    const status = readFileSync(`/proc/${key.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${frontIds.uid}\\s`, 'm'));
  } finally {
    await key.close();
  }
});

test('--key-user, then the front drops root: no key file, no key process memory, and a killed key process is restarted', async () => {
  if (!asRoot) {
    assert.throws(() => dropPrivileges('daemon'), /needs root/);
    return;
  }
  // The key file is nobody's (0600): the key user's. The front ends up as daemon.
  const r = await runFront('require', { keyUser: 'nobody', dropTo: 'daemon' });
  const daemon = lookupUser('daemon');
  assert.equal(r.uid, daemon.uid);
  assert.deepEqual(r.protection, { nonDumpable: true, user: 'nobody' });
  assert.equal(r.keyFile, 'EACCES');
  assert.ok('error' in r.scan && ['EACCES', 'EPERM'].includes(r.scan.error), JSON.stringify(r.scan));
  assert.ok(r.restarted?.signed, 'the replacement key process signs');
  assert.notEqual(r.restarted?.pid, r.keyPid);
});
