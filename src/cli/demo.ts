/**
 * `keyward demo` (what `npm start` runs): the whole deployment on one machine.
 *
 * First run, in the data folder: a private PKI (`certs init`), keyd's configuration and a
 * random store key, keyd started in a child process with a new sealed store, a site key
 * generated inside keyd (it never exists anywhere else) and a `localhost` certificate
 * issued for it. Every run: keyd in a child process, a small web application on a Unix
 * socket, and `keyward proxy` on https://localhost:8443 in front of it, signing through
 * keyd over mutual TLS in bound mode. A second run reuses all of it; Ctrl-C stops all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { connectKeydAdmin, type KeydAdmin } from '../keys/remoteKey.js';
import { exists, initPki, PKI_FILES, readIssuer } from './certsCommand.js';
import { startDemoApp } from './demoApp.js';
import { CliError } from './keySources.js';
import { issueCertificateForKey, writeAtomic } from './pki.js';
import { proxyLogger, startProxy, type RunningProxy } from './proxyCommand.js';
import type { ProxySettings } from './roleConfig.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const FRONT_NAME = 'demo-front';
const ADMIN_NAME = 'demo-admin';

/** The demo's files. */
function layout(dir: string) {
  const pki = join(dir, 'pki');
  const keyd = join(dir, 'keyd');
  const front = join(dir, 'front');
  return {
    pki,
    ca: join(pki, PKI_FILES.caCert),
    keydDir: keyd,
    keydConfig: join(keyd, 'keyd.json'),
    storeKey: join(keyd, 'store.key'),
    audit: join(keyd, 'audit.log'),
    keydLog: join(keyd, 'keyd.log'),
    front,
    siteChain: join(front, 'site-chain.pem'),
    siteInfo: join(front, 'site.json'),
    appSocket: join(front, 'app.sock'),
    accessLog: join(front, 'access.log'),
  };
}

/** keyd.json of the demo: mutual TLS on a free loopback port, a sealed store under a random key file, bound mode for the front. */
function keydConfig(l: ReturnType<typeof layout>): object {
  return {
    listen: { tls: '127.0.0.1:0' },
    tls: { cert: join(l.pki, PKI_FILES.keydCert), key: join(l.pki, PKI_FILES.keydKey), clientCa: l.ca },
    store: { dir: 'store', keyFile: 'store.key' },
    audit: { file: 'audit.log' },
    log: { level: 'info' },
    clients: [
      { id: `cn:${FRONT_NAME}`, keys: ['localhost'], bound: true },
      { id: `cn:${ADMIN_NAME}`, admin: true },
    ],
  };
}

/** keyd in a child process; resolves with its TLS port once it says it is ready. */
function startKeydChild(l: ReturnType<typeof layout>, timeoutMs = 30_000): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [MAIN, 'keyd', '--config', l.keydConfig], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
  process.once('exit', kill);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(kill, 10_000);
    await exited;
    clearTimeout(t);
    process.off('exit', kill);
  };
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-4000)));
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => {
      kill();
      reject(new CliError(`keyd did not start within ${timeoutMs} ms: ${err.trim() || `see ${l.keydLog}`}`));
    }, timeoutMs);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new CliError(`keyd exited at start: ${err.trim() || `see ${l.keydLog}`}`));
    });
    let buf = '';
    let log = '';
    child.stdout!.on('data', (d: Buffer) => {
      const s = d.toString('utf8');
      log += s;
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const o = JSON.parse(line) as { msg?: string; tls?: string };
          if (o.msg === 'keyd ready' && o.tls) {
            clearTimeout(timer);
            resolvePort({ child, port: Number(o.tls.slice(o.tls.lastIndexOf(':') + 1)), stop });
          }
        } catch {
          // not JSON: keep it in the log only
        }
      }
      // keyd's own log goes to a file, so the terminal shows the demo's few lines.
      void writeFile(l.keydLog, log).catch(() => undefined);
    });
  });
}

/**
 * The site key and its certificate: reused when keyd still has the key, else generated
 * inside keyd and certified by the demo CA.
 */
async function ensureSiteKey(l: ReturnType<typeof layout>, admin: KeydAdmin): Promise<{ keyId: string; created: boolean }> {
  const keys = (await admin.listKeys()).keys;
  if ((await exists(l.siteChain)) && (await exists(l.siteInfo))) {
    const { keyId } = JSON.parse(await readFile(l.siteInfo, 'utf8')) as { keyId: string };
    const leaf = new X509Certificate(await readFile(l.siteChain));
    if (keys.some((k) => k.keyId === keyId) && Date.parse(leaf.validTo) > Date.now() + 86_400_000) return { keyId, created: false };
  }
  const info = await admin.generateKey('ec-p256', ['localhost']);
  const issuer = await readIssuer(l.ca, join(l.pki, PKI_FILES.caKey));
  const publicKey = createPublicKey({ key: Buffer.from(info.spki), format: 'der', type: 'spki' });
  const cert = await issueCertificateForKey(issuer, publicKey, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usage: 'server', days: 825 });
  await writeAtomic(l.siteChain, cert.chainPem, 0o644);
  await writeAtomic(l.siteInfo, JSON.stringify({ keyId: info.keyId }) + '\n', 0o644);
  return { keyId: info.keyId, created: true };
}

/** A running demo. */
export interface RunningDemo {
  port: number;
  stop(): Promise<void>;
}

/** Runs the demo; prints how to try it. */
export async function runDemo(o: { dir: string; listen: string }): Promise<RunningDemo> {
  const dir = resolve(o.dir);
  const l = layout(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const createdPki = !(await exists(l.ca));
  if (createdPki) await initPki(l.pki, { frontName: FRONT_NAME, adminName: ADMIN_NAME });
  await mkdir(l.keydDir, { recursive: true, mode: 0o700 });
  await mkdir(l.front, { recursive: true, mode: 0o700 });
  if (!(await exists(l.storeKey))) await writeFile(l.storeKey, randomBytes(32), { mode: 0o600, flag: 'wx' });
  await writeFile(l.keydConfig, JSON.stringify(keydConfig(l), null, 2) + '\n');

  const keyd = await startKeydChild(l);
  const keydAddress = `tls://127.0.0.1:${keyd.port}`;
  let app;
  let proxy: RunningProxy | undefined;
  try {
    const [ca, adminCert, adminKey] = await Promise.all([readFile(l.ca), readFile(join(l.pki, PKI_FILES.adminCert)), readFile(join(l.pki, PKI_FILES.adminKey))]);
    const admin = await connectKeydAdmin({ addresses: [keydAddress], ca, cert: adminCert, key: adminKey, deadlineMs: 10_000 });
    let site;
    try {
      site = await ensureSiteKey(l, admin);
    } finally {
      admin.close();
    }
    const keyWhere = `keyd (pid ${keyd.child.pid}, ${keydAddress}, mutual TLS, bound mode), generated there and sealed in ${join(l.keydDir, 'store')}`;
    const keyFacts: [string, string][] = [
      ['held by', `keyd, pid ${keyd.child.pid}`],
      ['link', `${keydAddress}, mutual TLS, bound mode`],
      ['made', 'inside keyd; it never left it'],
      ['stored', `sealed in ${join(l.keydDir, 'store')}`],
    ];
    app = await startDemoApp(l.appSocket, { keyWhere, keyFacts, keyId: site.keyId, auditPath: l.audit, metrics: () => proxy?.proxy.metrics });
    const settings: ProxySettings = {
      listen: o.listen,
      upstream: `unix:${l.appSocket}`,
      certificates: [{ cert: l.siteChain }],
      keyd: { addresses: [keydAddress], ca: l.ca, cert: join(l.pki, PKI_FILES.frontCert), key: join(l.pki, PKI_FILES.frontKey), bound: true },
      proxyProtocol: true,
      tls: { alpn: ['http/1.1'] },
      limits: { shutdownGraceMs: 1_000 },
    };
    const accessLog = proxyLogger('info', pino.destination({ dest: l.accessLog, append: true, sync: false }));
    proxy = await startProxy(settings, () => settings, accessLog);
    const port = typeof proxy.address === 'string' ? 0 : proxy.address.port;
    const print = [
      ...(createdPki ? [`created the demo PKI in ${l.pki}`] : []),
      ...(site.created ? [`generated the site key inside keyd (key id ${site.keyId}); certificate: ${l.siteChain}`] : []),
      `keyward demo listening on https://localhost:${port}/`,
      `private key: in ${keyWhere}; this process holds only the certificate`,
      `try:  curl --cacert ${l.ca} https://localhost:${port}/`,
      `audit: npx keyward audit verify ${l.audit}`,
      `logs: ${l.accessLog} (proxy access log), ${l.keydLog} (keyd)`,
      `browsers: import ${l.ca} as a trusted CA, or accept the warning`,
      'stop with Ctrl-C',
      '',
    ];
    process.stdout.write(print.join('\n'));
    const running = proxy;
    const openApp = app;
    let stopping: Promise<void> | undefined;
    return {
      port,
      stop: () =>
        (stopping ??= (async () => {
          await running.proxy.stop(1_000);
          accessLog.flush();
          await openApp.close();
          await keyd.stop();
        })()),
    };
  } catch (err) {
    await proxy?.proxy.stop(0);
    await app?.close();
    await keyd.stop();
    throw err;
  }
}
