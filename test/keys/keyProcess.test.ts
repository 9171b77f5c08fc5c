import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { constants, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { getEventListeners, once, setMaxListeners } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KeyOperationError, type OperationContext } from '../../src/keys/keyOperations.js';
import { startKeyProcess, lookupUser, type KeyProcessExit, type KeyProcessRestart } from '../../src/keys/keyProcess.js';
import { SignatureScheme, verifySignature } from '../../src/tls/crypto/signatureSchemes.js';

const CTX: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify' };
const never = (): AbortSignal => new AbortController().signal;

/** A TLS 1.3 server CertificateVerify input (64 spaces, context, 0, transcript hash). */
function cvInput(hashLen = 32): Buffer {
  return Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify', 'latin1'), Buffer.of(0), randomBytes(hashLen)]);
}

/** A TLS 1.2 ServerKeyExchange signed part: randoms, named_curve secp256r1, 65-byte point. */
function skeInput(): Buffer {
  return Buffer.concat([randomBytes(64), Buffer.of(3, 0, 23, 65, 4), randomBytes(64)]);
}

function isKeyError(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof KeyOperationError, `expected KeyOperationError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let dir: string;
const keys = new Map<string, { priv: KeyObject; pub: KeyObject; path: string }>();

function keyFile(name: string, make: () => KeyObject, format: 'pkcs8-pem' | 'pkcs1-der' | 'sec1-pem' = 'pkcs8-pem'): { priv: KeyObject; pub: KeyObject; path: string } {
  const priv = make();
  const path = join(dir, `${name}.key`);
  const data =
    format === 'pkcs1-der'
      ? priv.export({ type: 'pkcs1', format: 'der' })
      : format === 'sec1-pem'
        ? priv.export({ type: 'sec1', format: 'pem' })
        : priv.export({ type: 'pkcs8', format: 'pem' });
  writeFileSync(path, data, { mode: 0o600 });
  const k = { priv, pub: createPublicKey(priv), path };
  keys.set(name, k);
  return k;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-keyprocess-'));
  keyFile('p256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  keyFile('p384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, 'sec1-pem');
  keyFile('rsa', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'pkcs1-der');
  keyFile('ed25519', () => generateKeyPairSync('ed25519').privateKey);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('keyProcess: signing', { timeout: 60_000 }, () => {
  const cases: [string, SignatureScheme, number][] = [
    ['p256', SignatureScheme.ecdsa_secp256r1_sha256, 32],
    ['p384', SignatureScheme.ecdsa_secp384r1_sha384, 48],
    ['rsa', SignatureScheme.rsa_pss_rsae_sha256, 32],
    ['ed25519', SignatureScheme.ed25519, 32],
  ];
  for (const [name, scheme, hashLen] of cases) {
    test(`${name}: signs a CertificateVerify input; the signature verifies`, async () => {
      const k = keys.get(name)!;
      const kp = await startKeyProcess({ keyPath: k.path, expectedPublicKey: k.pub });
      try {
        assert.ok(kp.schemes.includes(scheme));
        assert.ok(kp.publicKey.export({ type: 'spki', format: 'der' }).equals(k.pub.export({ type: 'spki', format: 'der' })));
        assert.equal(kp.keyId.length, 64);
        assert.notEqual(kp.pid, process.pid);
        const msg = cvInput(hashLen);
        const sig = await kp.sign(scheme, msg, CTX, never());
        assert.ok(verifySignature(k.pub, scheme, msg, sig));
        assert.equal(kp.decryptPremaster !== undefined, name === 'rsa', 'decryptPremaster only for RSA keys');
      } finally {
        await kp.close();
      }
    });
  }

  test('rsa: TLS 1.2 ServerKeyExchange with PKCS#1 v1.5, and PSS-SHA384/512', async () => {
    const k = keys.get('rsa')!;
    const kp = await startKeyProcess({ keyPath: k.path });
    try {
      const ske = skeInput();
      const ctx12: OperationContext = { tlsVersion: 'TLSv1.2', purpose: 'tls12-server-key-exchange' };
      const sig = await kp.sign(SignatureScheme.rsa_pkcs1_sha256, ske, ctx12, never());
      assert.ok(verifySignature(k.pub, SignatureScheme.rsa_pkcs1_sha256, ske, sig));
      for (const s of [SignatureScheme.rsa_pss_rsae_sha384, SignatureScheme.rsa_pss_rsae_sha512]) {
        const m = cvInput(48);
        assert.ok(verifySignature(k.pub, s, m, await kp.sign(s, m, CTX, never())));
      }
    } finally {
      await kp.close();
    }
  });

  test('rsa: decryptPremaster returns the premaster, or 48 random bytes for a bad ciphertext', async () => {
    const k = keys.get('rsa')!;
    const kp = await startKeyProcess({ keyPath: k.path });
    try {
      const ctx12: OperationContext = { tlsVersion: 'TLSv1.2' };
      const pm = randomBytes(48);
      pm.writeUInt16BE(0x0303, 0);
      const ct = publicEncrypt({ key: k.pub, padding: constants.RSA_PKCS1_PADDING }, pm);
      assert.deepEqual(Buffer.from(await kp.decryptPremaster!(ct, 0x0303, ctx12, never())), pm);
      const bad1 = await kp.decryptPremaster!(Buffer.alloc(256), 0x0303, ctx12, never());
      const bad2 = await kp.decryptPremaster!(Buffer.alloc(256), 0x0303, ctx12, never());
      assert.equal(bad1.length, 48);
      assert.notDeepEqual(Buffer.from(bad1), Buffer.from(bad2));
      // Wrong version: random, not the real premaster.
      assert.notDeepEqual(Buffer.from(await kp.decryptPremaster!(ct, 0x0302, ctx12, never())), pm);
    } finally {
      await kp.close();
    }
  });

  test('500 concurrent signs all verify', async () => {
    const k = keys.get('p256')!;
    const kp = await startKeyProcess({ keyPath: k.path });
    try {
      const msgs = Array.from({ length: 500 }, () => cvInput());
      const sigs = await Promise.all(msgs.map((m) => kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, m, CTX, never())));
      sigs.forEach((s, i) => assert.ok(verifySignature(k.pub, SignatureScheme.ecdsa_secp256r1_sha256, msgs[i], s), `signature ${i}`));
      assert.equal(kp.pendingCount, 0);
    } finally {
      await kp.close();
    }
  });

  test('not a signing oracle: non-handshake inputs are refused; wrong schemes are unsupported', async () => {
    const k = keys.get('p256')!;
    const kp = await startKeyProcess({ keyPath: k.path });
    try {
      const s = SignatureScheme.ecdsa_secp256r1_sha256;
      await assert.rejects(kp.sign(s, Buffer.from('please sign this certificate'), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      await assert.rejects(kp.sign(s, createHashLike(), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      await assert.rejects(kp.sign(s, Buffer.alloc(0), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      await assert.rejects(kp.sign(s, Buffer.alloc(20_000, 0x20), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      await assert.rejects(kp.sign(s, Buffer.alloc(200_000, 0x20), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      const [l, r] = [Buffer.alloc(8_000, 0x20), Buffer.alloc(8_000, 0x20)];
      await assert.rejects(kp.sign(s, Buffer.concat([l, r]), { tlsVersion: 'TLSv1.3' }, never()), isKeyError('refused'));
      // A CertificateVerify claimed to be a ServerKeyExchange.
      await assert.rejects(kp.sign(s, cvInput(), { tlsVersion: 'TLSv1.2', purpose: 'tls12-server-key-exchange' }, never()), isKeyError('refused'));
      await assert.rejects(kp.sign(SignatureScheme.rsa_pss_rsae_sha256, cvInput(), CTX, never()), isKeyError('unsupported'));
      // The key process is still fine, and still the same one.
      assert.equal(kp.exits, 0);
      const m = cvInput();
      assert.ok(verifySignature(k.pub, s, m, await kp.sign(s, m, CTX, never())));
    } finally {
      await kp.close();
    }
  });
});

/** A bare 32-byte digest: what a digest-signing oracle would accept. */
function createHashLike(): Buffer {
  return randomBytes(32);
}

describe('keyProcess: start errors', { timeout: 60_000 }, () => {
  test('key does not match the certificate', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    await assert.rejects(startKeyProcess({ keyPath: keys.get('p256')!.path, expectedPublicKey: other }), /key does not match certificate/);
  });

  test('missing, unreadable, garbage, public-only, certificate-like and encrypted files give clear errors without content', async () => {
    const missing = join(dir, 'nope.pem');
    await assert.rejects(startKeyProcess({ keyPath: missing }), (e: Error) => {
      assert.match(e.message, /nope\.pem/);
      assert.match(e.message, /no such file/);
      return true;
    });
    await assert.rejects(startKeyProcess({ keyPath: dir }), /is a directory/);

    const secretGarbage = 'GARBAGE-CONTENT-7f3a9c';
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, `${secretGarbage}\n`);
    await assert.rejects(startKeyProcess({ keyPath: garbage }), (e: Error) => {
      assert.match(e.message, /garbage\.pem does not contain a private key/);
      assert.ok(!e.message.includes(secretGarbage), 'error must not echo file content');
      return true;
    });

    const pub = join(dir, 'public.pem');
    writeFileSync(pub, keys.get('p256')!.pub.export({ type: 'spki', format: 'pem' }));
    await assert.rejects(startKeyProcess({ keyPath: pub }), /does not contain a private key/);

    const pem = keys.get('p256')!.priv.export({ type: 'pkcs8', format: 'pem' }) as string;
    const truncated = join(dir, 'truncated.pem');
    writeFileSync(truncated, pem.slice(0, pem.length - 40));
    await assert.rejects(startKeyProcess({ keyPath: truncated }), (e: Error) => {
      assert.match(e.message, /does not contain a private key/);
      const body = pem.split('\n')[1];
      assert.ok(!e.message.includes(body.slice(0, 20)), 'error must not echo key text');
      return true;
    });

    const encrypted = join(dir, 'encrypted.pem');
    writeFileSync(encrypted, keys.get('p256')!.priv.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }));
    await assert.rejects(startKeyProcess({ keyPath: encrypted }), /is encrypted/);

    const dsa = join(dir, 'dsa.pem');
    writeFileSync(dsa, generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await assert.rejects(startKeyProcess({ keyPath: dsa }), /type TLS cannot use \(dsa\)/);
  });

  test('unknown key user', async () => {
    assert.throws(() => lookupUser('no-such-user-keyward'), /unknown user/);
    await assert.rejects(startKeyProcess({ keyPath: keys.get('p256')!.path, keyUser: 'no-such-user-keyward' }), /unknown user/);
  });
});

describe('keyProcess: failures, restart, abort, close', { timeout: 60_000 }, () => {
  test('SIGKILL with 200 signs pending: all fail at once with unavailable; restart; signs work again', async () => {
    const k = keys.get('rsa')!;
    const logs: string[] = [];
    const log = (obj: object, msg?: string): void => void logs.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
    const kp = await startKeyProcess({ keyPath: k.path, restart: { minDelayMs: 50, maxDelayMs: 400 }, logger: { info: log, warn: log, error: log } });
    try {
      const exits: KeyProcessExit[] = [];
      const restarts: KeyProcessRestart[] = [];
      kp.on('exit', (e: KeyProcessExit) => exits.push(e));
      kp.on('restart', (r: KeyProcessRestart) => restarts.push(r));
      const firstPid = kp.pid!;
      const scheme = SignatureScheme.rsa_pss_rsae_sha256;
      const ops = Array.from({ length: 200 }, () => kp.sign(scheme, cvInput(), CTX, never()).then(() => 'ok', (e: unknown) => e));
      assert.equal(kp.pendingCount, 200);
      const t0 = performance.now();
      process.kill(firstPid, 'SIGKILL');
      const results = await Promise.all(ops);
      const elapsed = performance.now() - t0;
      assert.ok(elapsed < 1000, `pending operations took ${elapsed.toFixed(0)} ms to fail`);
      for (const r of results) isKeyError('unavailable', /key process exited \(signal SIGKILL\)/)(r);
      assert.equal(exits.length, 1);
      assert.equal(exits[0].signal, 'SIGKILL');
      assert.equal(exits[0].expected, false);

      // An operation issued while the child is down waits for the restart (restartWaitMs).
      const m = cvInput();
      const sig = await kp.sign(scheme, m, CTX, never());
      assert.ok(verifySignature(k.pub, scheme, m, sig));
      assert.equal(restarts.length, 1);
      assert.equal(kp.restarts, 1);
      assert.ok(kp.pid !== undefined && kp.pid !== firstPid && alive(kp.pid));

      // A second crash restarts again.
      process.kill(kp.pid, 'SIGKILL');
      await once(kp, 'restart');
      const m2 = cvInput();
      assert.ok(verifySignature(k.pub, scheme, m2, await kp.sign(scheme, m2, CTX, never())));
      assert.equal(kp.exits, 2);

      const pem = k.priv.export({ type: 'pkcs8', format: 'pem' }) as string;
      assert.ok(logs.some((l) => l.includes('key process exited')));
      assert.ok(!logs.some((l) => l.includes(pem.split('\n')[1].slice(0, 24))), 'no key text in logs');
    } finally {
      await kp.close();
    }
  });

  test('restartWaitMs 0: operations fail fast while the key process is down', async () => {
    const kp = await startKeyProcess({ keyPath: keys.get('p256')!.path, restartWaitMs: 0, restart: { minDelayMs: 300, maxDelayMs: 300 } });
    try {
      process.kill(kp.pid!, 'SIGKILL');
      await once(kp, 'exit');
      const t0 = performance.now();
      await assert.rejects(kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, cvInput(), CTX, never()), isKeyError('unavailable', /down/));
      assert.ok(performance.now() - t0 < 50);
      await once(kp, 'restart');
      await kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, cvInput(), CTX, never());
    } finally {
      await kp.close();
    }
  });

  test('a replacement holding a different key is not used; the right key brings it back', async () => {
    const path = join(dir, 'swap.key');
    const orig = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    writeFileSync(path, orig.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const refused: string[] = [];
    const log = (obj: object, msg?: string): void => {
      if (msg?.includes('different key')) refused.push(msg);
    };
    const kp = await startKeyProcess({ keyPath: path, restartWaitMs: 0, restart: { minDelayMs: 50, maxDelayMs: 100 }, logger: { info: log, warn: log, error: log } });
    try {
      writeFileSync(path, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
      process.kill(kp.pid!, 'SIGKILL');
      await once(kp, 'exit');
      // Several restart attempts run and are refused.
      await waitFor(() => refused.length >= 2, 5000, 'refused restarts');
      assert.equal(kp.restarts, 0);
      await assert.rejects(kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, cvInput(), CTX, never()), isKeyError('unavailable'));
      writeFileSync(path, orig.export({ type: 'pkcs8', format: 'pem' }));
      await once(kp, 'restart');
      const m = cvInput();
      assert.ok(verifySignature(createPublicKey(orig), SignatureScheme.ecdsa_secp256r1_sha256, m, await kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, m, CTX, never())));
    } finally {
      await kp.close();
    }
  });

  test('abort: rejects at once with aborted; a pre-aborted signal never reaches the child', async () => {
    const k = keys.get('rsa')!;
    const kp = await startKeyProcess({ keyPath: k.path });
    try {
      const scheme = SignatureScheme.rsa_pss_rsae_sha256;
      const pre = new AbortController();
      pre.abort();
      await assert.rejects(kp.sign(scheme, cvInput(), CTX, pre.signal), isKeyError('aborted'));

      // Many RSA signs queue in the child; abort them all while most are not started.
      const ac = new AbortController();
      setMaxListeners(200, ac.signal);
      const ops = Array.from({ length: 100 }, () => kp.sign(scheme, cvInput(), CTX, ac.signal).then(() => 'ok', (e: unknown) => e));
      await new Promise((r) => setTimeout(r, 5));
      const t0 = performance.now();
      ac.abort();
      const results = await Promise.all(ops);
      assert.ok(performance.now() - t0 < 100);
      const aborted = results.filter((r) => r instanceof KeyOperationError && r.code === 'aborted');
      assert.ok(aborted.length > 50, `only ${aborted.length} aborted`);
      assert.equal(kp.pendingCount, 0);
      const ac2 = new AbortController();
      const p = kp.sign(scheme, cvInput(), CTX, ac2.signal);
      ac2.abort();
      await assert.rejects(p, isKeyError('aborted'));
      // Still serving.
      const m = cvInput();
      assert.ok(verifySignature(k.pub, scheme, m, await kp.sign(scheme, m, CTX, never())));
      // A signal that outlives its operations (a connection's, over its PSK steps) is left
      // with no listener by those settled, and still cancels the next one.
      const conn = new AbortController();
      for (let i = 0; i < 20; i++) await kp.sign(scheme, cvInput(), CTX, conn.signal);
      assert.equal(getEventListeners(conn.signal, 'abort').length, 0);
      const last = kp.sign(scheme, cvInput(), CTX, conn.signal);
      conn.abort();
      await assert.rejects(last, isKeyError('aborted'));
      assert.equal(kp.pendingCount, 0);
    } finally {
      await kp.close();
    }
  });

  test('operation timeout: a stopped key process gives timeout', async () => {
    const kp = await startKeyProcess({ keyPath: keys.get('p256')!.path, operationTimeoutMs: 300 });
    const pid = kp.pid!;
    try {
      process.kill(pid, 'SIGSTOP');
      const t0 = performance.now();
      await assert.rejects(kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, cvInput(), CTX, never()), isKeyError('timeout'));
      const el = performance.now() - t0;
      assert.ok(el >= 290 && el < 2000, `timeout after ${el.toFixed(0)} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
      await kp.close();
    }
  });

  test('close: pending operations fail, later ones too, the child is gone', async () => {
    const kp = await startKeyProcess({ keyPath: keys.get('rsa')!.path });
    const pid = kp.pid!;
    const exit = once(kp, 'exit');
    const ops = Array.from({ length: 20 }, () => kp.sign(SignatureScheme.rsa_pss_rsae_sha256, cvInput(), CTX, never()).then(() => 'ok', (e: unknown) => e));
    await kp.close();
    for (const r of await Promise.all(ops)) isKeyError('unavailable', /closed/)(r);
    await assert.rejects(kp.sign(SignatureScheme.rsa_pss_rsae_sha256, cvInput(), CTX, never()), isKeyError('unavailable'));
    const [e] = (await exit) as [KeyProcessExit];
    assert.equal(e.expected, true);
    assert.equal(alive(pid), false);
    assert.equal(kp.restarts, 0);
  });

  test('the key process exits when its front dies', async () => {
    const front = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'keyHolderFront.js');
    const proc = spawn(process.execPath, [front, 'keyprocess', '--key', keys.get('p256')!.path, '--count', '5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      let out = '';
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (d: string) => (out += d));
      await waitFor(() => /READY/.test(out), 15_000, 'front READY');
      const keyPid = Number(/KEYPROCESS (\d+)/.exec(out)?.[1]);
      assert.ok(alive(keyPid));
      proc.kill('SIGKILL');
      await waitFor(() => !alive(keyPid) || readFileSync(`/proc/${keyPid}/stat`, 'utf8').split(' ')[2] === 'Z', 5000, 'key process exit');
    } finally {
      proc.kill('SIGKILL');
    }
  });
});

describe('keyProcess: --key-user', { timeout: 60_000 }, () => {
  const root = process.getuid?.() === 0;

  test(root ? 'runs the key process as nobody, which alone can read the key file' : 'without root, another key user is refused', async () => {
    const nobody = lookupUser('nobody');
    if (!root) {
      await assert.rejects(startKeyProcess({ keyPath: keys.get('p256')!.path, keyUser: 'nobody' }), /needs root/);
      return;
    }
    const udir = mkdtempSync(join(tmpdir(), 'keyward-keyuser-'));
    try {
      chmodSync(udir, 0o711);
      const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const path = join(udir, 'nobody.key');
      writeFileSync(path, k.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o400 });
      chownSync(path, nobody.uid, nobody.gid);
      const kp = await startKeyProcess({ keyPath: path, keyUser: 'nobody', expectedPublicKey: k.publicKey });
      try {
        const status = readFileSync(`/proc/${kp.pid}/status`, 'utf8');
        const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1].split(/\s+/).map(Number);
        const gids = /^Gid:\s+(.*)$/m.exec(status)?.[1].split(/\s+/).map(Number);
        assert.deepEqual(uids, [nobody.uid, nobody.uid, nobody.uid, nobody.uid]);
        assert.deepEqual(gids, [nobody.gid, nobody.gid, nobody.gid, nobody.gid]);
        assert.match(/^Groups:[ \t]*(.*)$/m.exec(status)?.[1] ?? 'x', /^\s*$/, 'supplementary groups dropped');
        const m = cvInput();
        assert.ok(verifySignature(k.publicKey, SignatureScheme.ecdsa_secp256r1_sha256, m, await kp.sign(SignatureScheme.ecdsa_secp256r1_sha256, m, CTX, never())));
      } finally {
        await kp.close();
      }
      // The child really reads as nobody: a root-only key file is out of its reach.
      const rootOnly = join(udir, 'root-only.key');
      writeFileSync(rootOnly, k.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      await assert.rejects(startKeyProcess({ keyPath: rootOnly, keyUser: 'nobody' }), /root-only\.key: permission denied/);
      // Numeric uid:gid works too.
      const kp2 = await startKeyProcess({ keyPath: path, keyUser: `${nobody.uid}:${nobody.gid}` });
      await kp2.close();
    } finally {
      rmSync(udir, { recursive: true, force: true });
    }
  });
});
