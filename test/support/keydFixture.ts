/**
 * keyd test fixtures: a PKI for the mTLS link (a CA, keyd's server certificate, client
 * certificates for fronts and admins), keyd.json files, keyd in-process or in a child
 * process (for tests that kill it), and TLS handshake signature inputs to sign.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createCa, issueCertificate } from '../../src/cli/pki.js';
import { parseKeydConfig, type KeydConfig } from '../../src/keyd/config.js';
import { startKeyd, type Keyd, type StartKeydOptions } from '../../src/keyd/server.js';
import type { KeydClientOptions } from '../../src/keys/remoteKey.js';
import { certificateVerifyContent } from '../../src/tls/wire/handshake.js';

/** Passphrase used by test stores (a test secret, not a real one). */
export const TEST_PASSPHRASE = 'correct horse battery staple (test only)';
/** Cheap scrypt for tests: the store format is the same, only the cost differs. */
export const TEST_SCRYPT = { N: 1024, r: 8, p: 1 };

/** PEM files of one certificate. */
export interface TestCert {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  /** "sha256:<hex>" identity of the certificate. */
  fingerprint: string;
}

/** The mTLS PKI of a test keyd. */
export interface KeydPki {
  caPath: string;
  caPem: string;
  server: TestCert;
  clients: Record<string, TestCert>;
}

/** A temporary folder removed by `cleanup`. */
export async function tempDir(prefix = 'keyd-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function writeCert(dir: string, name: string, certPem: string, keyPem: string): Promise<TestCert> {
  const certPath = join(dir, `${name}-cert.pem`);
  const keyPath = join(dir, `${name}-key.pem`);
  await writeFile(certPath, certPem);
  await writeFile(keyPath, keyPem, { mode: 0o600 });
  const fp = new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
  return { certPath, keyPath, certPem, keyPem, fingerprint: `sha256:${fp}` };
}

/** Makes a CA, keyd's certificate (localhost, 127.0.0.1) and one client certificate per name (CN = name). */
export async function makeKeydPki(dir: string, clientNames: readonly string[]): Promise<KeydPki> {
  const ca = await createCa({ commonName: 'keyd test CA' });
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, ca.certPem);
  const s = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'keyd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  const server = await writeCert(dir, 'keyd', s.certPem, s.keyPem);
  const clients: Record<string, TestCert> = {};
  for (const name of clientNames) {
    const c = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: name, usage: 'client' });
    clients[name] = await writeCert(dir, name, c.certPem, c.keyPem);
  }
  return { caPath, caPem: ca.certPem, server, clients };
}

/** Client options for connecting to a test keyd over TLS as `client`. */
export function tlsClientOptions(pki: KeydPki, client: string, address: { host: string; port: number } | string): KeydClientOptions {
  const c = pki.clients[client];
  const addr = typeof address === 'string' ? address : `tls://${address.host}:${address.port}`;
  return { addresses: [addr], ca: pki.caPem, cert: c.certPem, key: c.keyPem };
}

/** keyd.json content with sensible test defaults; `extra` is merged at the top level. */
export function keydConfigJson(dir: string, pki: KeydPki | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { tls: '127.0.0.1:0', unix: join(dir, 'keyd.sock') },
    ...(pki ? { tls: { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: pki.caPath } } : {}),
    store: { dir: join(dir, 'store'), passphraseEnv: 'KEYD_TEST_PASSPHRASE', scrypt: TEST_SCRYPT },
    audit: { file: join(dir, 'audit.log') },
    metrics: { listen: '127.0.0.1:0' },
    log: { level: 'info' },
    clients: [
      { id: 'cn:front', keys: ['*'], psks: ['*'] },
      { id: 'cn:admin', admin: true },
      { id: 'unix', keys: ['*'], psks: ['*'], admin: true },
    ],
    ...extra,
  };
}

/** Writes keyd.json into `dir` and returns its path. */
export async function writeKeydConfig(dir: string, json: Record<string, unknown>, name = 'keyd.json'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify(json, null, 2));
  return path;
}

/** Log lines a test keyd wrote (pino JSON objects). */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  write(s: string): void {
    for (const l of s.split('\n')) if (l.trim()) this.lines.push(JSON.parse(l) as Record<string, unknown>);
  }
}

/** Starts keyd in this process with a config from {@link keydConfigJson}. */
export async function startTestKeyd(
  dir: string,
  pki: KeydPki | undefined,
  extra: Record<string, unknown> = {},
  opts: StartKeydOptions = {},
): Promise<{ keyd: Keyd; config: KeydConfig; logs: LogCapture }> {
  const config = parseKeydConfig(keydConfigJson(dir, pki, extra), dir, 'test keyd.json');
  const logs = new LogCapture();
  const logger = pino({ level: 'info' }, { write: (s: string) => logs.write(s) });
  const keyd = await startKeyd(config, { logger, env: { KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE }, ...opts });
  return { keyd, config, logs };
}

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled test CLI (keyd commands only). */
export const KEYD_CLI = join(here, 'keydCli.js');

/** A keyd running in a child process. */
export interface KeydChild {
  child: ChildProcess;
  pid: number;
  tls?: { host: string; port: number };
  unix?: string;
  metrics?: { host: string; port: number };
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills it by pid (SIGKILL unless another signal is given) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function hostPort(s: unknown): { host: string; port: number } | undefined {
  if (typeof s !== 'string') return undefined;
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/**
 * Runs `keyward keyd --config configPath` in a child process and waits (at most
 * `timeoutMs`) for its "keyd ready" log line. The child is killed if it is not ready in time
 * and when this process exits.
 */
export function spawnKeyd(configPath: string, timeoutMs = 15_000): Promise<KeydChild> {
  const child = spawn(process.execPath, [KEYD_CLI, 'keyd', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEYD_TEST_PASSPHRASE: TEST_PASSPHRASE },
  });
  const pid = child.pid!;
  const killOnExit = (): void => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  };
  process.on('exit', killOnExit);
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      process.off('exit', killOnExit);
      resolve({ code, signal });
    }),
  );
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise<KeydChild>((resolve, reject) => {
    const timer = setTimeout(() => {
      killOnExit();
      reject(new Error(`keyd child not ready within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`keyd child exited early (${code ?? signal})\nstdout: ${out}\nstderr: ${err}`));
    });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (obj.msg === 'keyd ready') {
          clearTimeout(timer);
          resolve({
            child,
            pid,
            tls: hostPort(obj.tls),
            unix: typeof obj.unix === 'string' ? obj.unix : undefined,
            metrics: hostPort(obj.metrics),
            stdout: () => out,
            stderr: () => err,
            exited,
            kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
              try {
                process.kill(pid, signal);
              } catch {
                // already gone
              }
              await exited;
            },
          });
        }
      }
    });
  });
}

/** A TLS 1.3 server CertificateVerify input: 64 spaces, the context string, 0, a transcript hash. */
export function certificateVerifyInput(hashLength: 32 | 48 = 32): Buffer {
  return certificateVerifyContent(randomBytes(hashLength));
}

/** Fetches a URL on the metrics listener. */
export async function fetchText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text() };
}

/** Reads a Prometheus counter/gauge value matching a metric name and label subset. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[3] ?? '').split(',').filter(Boolean)) {
      const eq = kv.indexOf('=');
      have[kv.slice(0, eq)] = JSON.parse(kv.slice(eq + 1)) as string;
    }
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[4]);
      found = true;
    }
  }
  return found ? total : 0;
}

/** Reads the audit log as parsed lines. */
export async function readAudit(path: string): Promise<Array<Record<string, unknown>>> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
