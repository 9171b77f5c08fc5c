/**
 * The real `keyward` command (node bin/keyward.js) as a child process, for the isolation
 * and CLI tests: `serve` started on 127.0.0.1:0 and ready once it prints its listening
 * line, one-shot runs for usage errors, node:tls handshakes against it, and certificates
 * issued for a public key that lives elsewhere (a token key).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Issuer } from '../../src/cli/pki.js';
import { runProcess, type RunResult } from './processes.js';

const here = dirname(fileURLToPath(import.meta.url));
/** bin/keyward.js at the repository root (this file runs from dist/test/support). */
export const KEYWARD_BIN = join(here, '..', '..', '..', 'bin', 'keyward.js');

/** A `keyward serve` (or `demo`) child process. */
export interface KeywardChild {
  child: ChildProcess;
  pid: number;
  port: number;
  stdout(): string;
  stderr(): string;
  /** Pids of key processes it reported ("... key process (pid N ..."), in order. */
  keyProcessPids(): number[];
  /** True until it exits. */
  alive(): boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL if it has not left within `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options for {@link startKeyward}. */
export interface StartOptions {
  /** Extra environment (merged into process.env). */
  env?: Record<string, string>;
  /** How long to wait for the listening line (default 20 s). */
  timeoutMs?: number;
  /** The line that says it listens; its first group is the port. */
  ready?: RegExp;
}

const LISTENING = /^keyward listening on https:\/\/127\.0\.0\.1:(\d+)\/$/m;

const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/**
 * Runs `node bin/keyward.js ARGS` and resolves once it prints its listening line. Rejects
 * (having killed it) when it exits first or is not ready within the timeout, with its output.
 */
export function startKeyward(args: readonly string[], opts: StartOptions = {}): Promise<KeywardChild> {
  const child = spawn(process.execPath, [KEYWARD_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const pid = child.pid!;
  live.add(pid);
  let out = '';
  let err = '';
  let running = true;
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  // stderr is drained even when it says a lot (one line per failed handshake under load).
  child.stderr!.on('data', (d: Buffer) => {
    if (err.length < 4 << 20) err += d.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running = false;
      live.delete(pid);
      resolve({ code, signal });
    }),
  );
  const stop = async (graceMs = 5_000) => {
    if (running) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, graceMs);
    const r = await exited;
    clearTimeout(timer);
    return r;
  };
  const ready = opts.ready ?? LISTENING;
  return new Promise<KeywardChild>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop(0);
      reject(new Error(`keyward ${args.join(' ')}: not listening within ${opts.timeoutMs ?? 20_000} ms\nstdout: ${out}\nstderr: ${err}`));
    }, opts.timeoutMs ?? 20_000);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`keyward ${args.join(' ')}: exited (${code ?? signal}) before listening\nstdout: ${out}\nstderr: ${err}`));
    });
    const check = (): void => {
      const m = ready.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({
        child,
        pid,
        port: Number(m[1]),
        stdout: () => out,
        stderr: () => err,
        keyProcessPids: () => [...out.matchAll(/key process \(pid (\d+)/g)].map((x) => Number(x[1])),
        alive: () => running,
        exited,
        stop,
      });
    };
    child.stdout!.on('data', check);
  });
}

/** `keyward serve --listen 127.0.0.1:0 ARGS`. */
export function startServe(args: readonly string[], opts: StartOptions = {}): Promise<KeywardChild> {
  return startKeyward(['serve', '--listen', '127.0.0.1:0', ...args], opts);
}

/**
 * Runs `keyward connect ARGS` and resolves once it printed its connected line, with that
 * stderr so far; the connection stays open (stdin open) until the child is killed, which
 * `cleanups` gets a function for.
 */
export async function startConnect(args: readonly string[], cleanups: Array<() => unknown>): Promise<{ child: ChildProcess; stderr: string }> {
  const child = spawn(process.execPath, [KEYWARD_BIN, 'connect', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr!.on('data', (d) => (err += String(d)));
  const deadline = Date.now() + 20_000;
  while (!/^connected /m.test(err)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`keyward connect did not connect: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, stderr: err };
}

/** Runs `node bin/keyward.js ARGS` to its end (bounded), e.g. for usage errors. */
export function runKeyward(args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  return runProcess(process.execPath, [KEYWARD_BIN, ...args], { env: { ...process.env, ...(opts.env ?? {}) }, timeoutMs: opts.timeoutMs ?? 20_000 });
}

/** What one node:tls handshake did. */
export interface HandshakeResult {
  ok: boolean;
  /** OpenSSL's code, e.g. ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR. */
  errorCode?: string;
  error?: string;
  /** Wall time from connect to success or failure. */
  ms: number;
  timedOut: boolean;
}

/**
 * One TLS handshake with node:tls to 127.0.0.1:PORT, verifying the server with `ca`;
 * the connection is closed as soon as the handshake is done. Never rejects.
 */
export function tlsHandshake(port: number, opts: { ca: string; servername?: string; timeoutMs?: number } & tls.ConnectionOptions): Promise<HandshakeResult> {
  const { timeoutMs = 15_000, ...connectOpts } = opts;
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...connectOpts });
    const finish = (r: Omit<HandshakeResult, 'ms'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...r, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'timed out', timedOut: true }), timeoutMs);
    socket.once('secureConnect', () => finish({ ok: socket.authorized, timedOut: false, ...(socket.authorized ? {} : { error: String(socket.authorizationError) }) }));
    socket.once('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.message, ...(e.code ? { errorCode: e.code } : {}), timedOut: false }));
    socket.once('close', () => finish({ ok: false, error: 'closed before the handshake completed', timedOut: false }));
  });
}

/** Runs `count` tasks with at most `concurrency` at once; results in task order. */
export async function runPool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

function webAlgorithm(key: KeyObject): EcKeyImportParams | RsaHashedImportParams | Algorithm {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return { name: 'ECDSA', namedCurve: curve === 'secp384r1' ? 'P-384' : 'P-256' } as EcKeyImportParams;
  }
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as RsaHashedImportParams;
  if (key.asymmetricKeyType === 'ed25519') return { name: 'Ed25519' };
  throw new Error(`unsupported key type ${String(key.asymmetricKeyType)}`);
}

/**
 * Issues a localhost server certificate (SANs localhost, 127.0.0.1) for `publicKey`,
 * whose private half is elsewhere (e.g. generated inside a PKCS#11 token), signed by
 * an ECDSA P-256 `ca`. Returns the chain PEM (leaf + CA).
 */
export async function issueCertificateFor(ca: Issuer, publicKey: KeyObject, commonName = 'localhost'): Promise<string> {
  const crypto = globalThis.crypto;
  const caCert = new x509.X509Certificate(ca.certPem);
  const caDer = createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' });
  const caKey = await crypto.subtle.importKey('pkcs8', caDer, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const pub = await crypto.subtle.importKey('spki', spki, webAlgorithm(publicKey), true, ['verify']);
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x40;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial.toString('hex'),
      subject: [{ CN: [commonName] }],
      issuer: caCert.subjectName,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 30 * 86_400_000),
      publicKey: pub,
      signingKey: caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (publicKey.asymmetricKeyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0), true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(
          [
            { type: 'dns', value: 'localhost' },
            { type: 'ip', value: '127.0.0.1' },
          ],
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(pub, false, crypto),
      ],
    },
    crypto,
  );
  return cert.toString('pem').replace(/\r\n/g, '\n').trimEnd() + '\n' + ca.certPem.trimEnd() + '\n';
}
