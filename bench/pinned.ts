/**
 * What bench/compare.ts and bench/profile.ts share: pinned child processes speaking JSON
 * lines, the load generator, the servers under test, keyd with the site keys in its store.
 * The server under test runs on CPU 0, the load (and keyd) on CPU 1.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createCa, issueCertificate, type KeyType } from '../src/cli/pki.js';
import { connectKeydAdmin } from '../src/keys/remoteKey.js';

export const here = fileURLToPath(new URL('.', import.meta.url));
export const root = join(here, '..', '..');
export const SERVER_CORE = 0;
export const LOAD_CORE = 1;

export type Json = Record<string, unknown>;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A pinned child speaking JSON lines on stdout, asked things on stdin. */
export interface Child {
  proc: ChildProcess;
  /** taskset execs the command: this is the command's pid. */
  pid: number;
  next(timeoutMs?: number): Promise<Json>;
  ask(command: string, timeoutMs?: number): Promise<Json>;
  /** Closes stdin (the children exit on that), SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export function startChild(core: number, command: string, args: string[], label: string): Child {
  const proc = spawn('taskset', ['-c', String(core), command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const next = (timeoutMs = 60_000): Promise<Json> =>
    new Promise((resolve, reject) => {
      const early = lines.shift();
      if (early !== undefined) return resolve(JSON.parse(early) as Json);
      const onExit = (): void => {
        clearTimeout(t);
        reject(new Error(`${label} exited (${proc.exitCode ?? proc.signalCode}); stderr: ${stderr}`));
      };
      const t = setTimeout(() => {
        proc.off('exit', onExit);
        reject(new Error(`${label}: no answer within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      proc.once('exit', onExit);
      waiting.push((l) => {
        clearTimeout(t);
        proc.off('exit', onExit);
        resolve(JSON.parse(l) as Json);
      });
    });
  return {
    proc,
    pid: proc.pid!,
    next,
    ask(command, timeoutMs) {
      proc.stdin!.write(command + '\n');
      return next(timeoutMs);
    },
    async stop() {
      proc.stdin!.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Runs a pinned program to completion (killed after timeoutMs) and returns its standard output. */
export function runText(core: number, command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn('taskset', ['-c', String(core), command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(t);
      if (code === 0 && out.trim()) resolve(out);
      else reject(new Error(`${command} ${args.slice(0, 2).join(' ')} exited ${code ?? signal}${out.trim() ? '' : ' with no output'}: ${err.trim()}`));
    });
  });
}

/** Runs a pinned program to completion (killed after timeoutMs) and returns its last JSON line. */
export async function runJson(core: number, command: string, args: string[], timeoutMs: number): Promise<Json> {
  const out = await runText(core, command, args, timeoutMs);
  return JSON.parse(out.trim().split('\n').pop()!) as Json;
}

/** Builds bench/loadgen when needed (bench/setup.sh) and returns its path. */
export function buildLoadgen(): string {
  return execFileSync('bash', [join(root, 'bench', 'setup.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** A certificate and its key: PEM files, and the key's id in keyd's store. */
export interface SiteKey {
  type: KeyType;
  label: string;
  cert: string;
  key: string;
  keyId: string;
}

/** node:tls, or keyward with its key in process, in a key process, or in keyd. */
export type Impl = 'node' | 'local' | 'keyproc' | 'keyd' | 'serve';
export const IMPL_LABEL: Record<Impl, string> = {
  node: 'node:tls, key in process',
  local: 'keyward, key in process',
  keyproc: 'keyward, key process',
  keyd: 'keyward, keyd (Unix socket)',
  serve: 'keyward serve (HTTPS app), key in process',
};

export interface Server {
  impl: Impl;
  /** Unique in a run: the impl, or impl@tag for a server from a baseline build. */
  name: string;
  label: string;
  child: Child;
  port: number;
  /** The key process (it inherits CPU 0 from its front) or keyd: their CPU is the holder's. */
  holderPid: number | null;
}

/** keyd with the site keys in its sealed store, pinned to CPU 1. */
export interface Keyd {
  child: Child;
  socket: string;
  sites: SiteKey[];
}

/**
 * Starts keyd (sealed store, batched audit fsync, as in production) on CPU 1 and makes a
 * certificate and key per type, the keys also stored in keyd. Files go under `dir`.
 */
export async function startKeydWithSites(dir: string, node: string, types: KeyType[]): Promise<Keyd> {
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const linkCa = await createCa({ commonName: 'bench keyd CA' });
  const kc = await issueCertificate(linkCa, { keyType: 'ecdsa-p256', commonName: 'keyd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  const child = startChild(LOAD_CORE, node, [join(here, 'keysKeyd.js'), JSON.stringify({ dir, ca: file('link-ca.pem', linkCa.certPem), cert: file('keyd.pem', kc.certPem), key: file('keyd-key.pem', kc.keyPem) })], 'keyd');
  const socket = String((await child.next(60_000)).unix);
  const siteCa = await createCa({ keyType: 'ecdsa-p256' });
  const admin = await connectKeydAdmin({ addresses: [`unix:${socket}`] });
  const sites: SiteKey[] = [];
  try {
    for (const type of types) {
      const leaf = await issueCertificate(siteCa, { keyType: type, commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
      const info = await admin.putKey(createPrivateKey(leaf.keyPem), ['localhost']);
      sites.push({ type, label: type === 'rsa-2048' ? 'RSA-2048' : 'ECDSA P-256', cert: file(`${type}.pem`, leaf.chainPem), key: file(`${type}-key.pem`, leaf.keyPem), keyId: info.keyId });
    }
  } finally {
    admin.close();
  }
  return { child, socket, sites };
}

/** Another build of keyward to run servers from: its `dist/bench` folder, and a tag for its rows. */
export interface Build {
  benchDir: string;
  tag: string;
}

/**
 * Starts bench/compareServer.js pinned to CPU 0 on Node `node`; `nodeFlags` go before the
 * script. `build`: run the server of another build (a baseline checkout) instead of this one.
 */
export async function startServer(impl: Impl, site: SiteKey, keyd: Keyd | undefined, node: string, extra: Json = {}, nodeFlags: string[] = [], build?: Build): Promise<Server> {
  const spec: Json = {
    impl: impl === 'node' ? 'node' : 'keyward',
    key: impl === 'node' ? 'local' : impl,
    cert: site.cert,
    keyFile: site.key,
    keyId: site.keyId,
    keyd: keyd ? `unix:${keyd.socket}` : undefined,
    groups: ['x25519'],
    ...extra,
  };
  const name = build ? `${impl}@${build.tag}` : impl;
  const child = startChild(SERVER_CORE, node, ['--expose-gc', ...nodeFlags, join(build?.benchDir ?? here, 'compareServer.js'), JSON.stringify(spec)], `server ${name}`);
  const first = await child.next(30_000);
  const holderPid = impl === 'keyproc' ? (first.holderPid as number) : impl === 'keyd' ? keyd!.child.pid : null;
  return { impl, name, label: build ? `${IMPL_LABEL[impl]} [${build.tag}]` : IMPL_LABEL[impl], child, port: first.port as number, holderPid };
}
