/**
 * "The key is absent from the front": a front using a key process holds none of the
 * key's secret bytes anywhere in its memory (native heap included), while a front
 * with an in-process key does, which proves the scan can fail.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keySecretNeedles, scanProcessMemory, type Needle } from '../support/memscan.js';

const FRONT = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'keyHolderFront.js');

interface Front {
  proc: ChildProcess;
  pid: number;
  keyPid?: number;
  exited: Promise<void>;
}

/** Starts the front and waits for its READY line (bounded). */
function startFront(mode: string, keyPath: string): Promise<Front> {
  const proc = spawn(process.execPath, [FRONT, mode, '--key', keyPath, '--count', '50'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  return new Promise<Front>((resolve, reject) => {
    let out = '';
    let keyPid: number | undefined;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`front (${mode}) not ready within 20 s; output: ${out}`));
    }, 20_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`front (${mode}) exited with ${code} before READY; output: ${out}`));
    });
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      out += d;
      const kp = /^KEYPROCESS (\d+)$/m.exec(out);
      if (kp) keyPid = Number(kp[1]);
      const ready = /^READY (\d+)$/m.exec(out);
      if (ready) {
        clearTimeout(timer);
        resolve({ proc, pid: Number(ready[1]), keyPid, exited });
      }
    });
  });
}

/** Closes stdin (the front's signal to stop), killing it if it lingers. */
async function stopFront(f: Front): Promise<void> {
  f.proc.stdin?.end();
  const t = setTimeout(() => f.proc.kill('SIGKILL'), 5000);
  await f.exited;
  clearTimeout(t);
}

const KEYS: { name: string; pem: () => string; secret: RegExp }[] = [
  {
    name: 'EC P-256',
    pem: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    secret: /^scalar/,
  },
  {
    name: 'RSA-2048',
    pem: () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    secret: /^(p|q|d) /,
  },
  {
    name: 'Ed25519',
    pem: () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    secret: /^seed/,
  },
];

describe('whole-process memory scan', { timeout: 120_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-memscan-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const k of KEYS) {
    describe(k.name, () => {
      let keyPath: string;
      let needles: Needle[];
      before(() => {
        const pem = k.pem();
        keyPath = join(dir, `${k.name.replace(/\W+/g, '_')}.pem`);
        writeFileSync(keyPath, pem, { mode: 0o600 });
        needles = keySecretNeedles(pem);
      });

      test('a front with an in-process key (localKey) holds the key: the scan finds it', async () => {
        const front = await startFront('local', keyPath);
        try {
          const r = await scanProcessMemory(front.pid, needles);
          assert.ok(r.bytesScanned > 10_000_000, `scanned only ${r.bytesScanned} bytes`);
          assert.ok(r.found.some((n) => k.secret.test(n)), `expected a private component in the localKey front, found: ${r.found.join(', ') || 'nothing'}`);
        } finally {
          await stopFront(front);
        }
      });

      test('a front with a key process holds none of it; the key process does', async () => {
        const front = await startFront('keyprocess', keyPath);
        try {
          assert.ok(front.keyPid, 'front did not report its key process pid');
          const inFront = await scanProcessMemory(front.pid, needles);
          assert.ok(inFront.bytesScanned > 10_000_000 && inFront.regions > 10, `front scan too small: ${JSON.stringify(inFront)}`);
          assert.deepEqual(inFront.found, [], `key material found in the front: ${inFront.found.join(', ')}`);
          // Sanity: the same scan does see the key where it really is.
          const inChild = await scanProcessMemory(front.keyPid, needles);
          assert.ok(inChild.found.some((n) => k.secret.test(n)), `key process scan found: ${inChild.found.join(', ') || 'nothing'}`);
        } finally {
          await stopFront(front);
        }
      });
    });
  }
});
