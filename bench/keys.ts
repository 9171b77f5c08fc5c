/**
 * Key holders side by side, in one run (not a test):
 *  1. signs/s through keyd, pipelined on one connection (Unix socket and mutual TLS), vs
 *     direct node:crypto signing, for P-256 and RSA-2048 PSS; the round trip of a lone sign;
 *     and what one audit line costs (batched fsync vs fsync per result);
 *  2. full TLS 1.3 handshakes/s, server CPU per handshake and p50/p99 with keyd (Unix
 *     socket, mTLS) and with the key process, vs localKey: the same certificate, key and
 *     group (x25519); each front in its own process, keyd in another, the load (node:tls
 *     clients) in a third; medians of alternating runs; and lone handshakes (concurrency 1)
 *     taking the fronts in turn, whose difference to localKey is the latency a key holder adds;
 *  3. SoftHSM2 signs/s through pkcs11Key's worker pool vs synchronous C_Sign on the main
 *     thread, with the longest event-loop stall of each.
 *
 *   npm run bench:keys   (or: node dist/bench/keys.js [seconds] [concurrency])
 *   env: BENCH_REPEATS (5), BENCH_SEQ_SECONDS (3 per front), BENCH_SIGN_SECONDS (2),
 *        BENCH_SECTIONS ("signs,handshakes,hsm"), BENCH_KEYS ("p256,rsa"),
 *        BENCH_CPU_PROF=DIR (fronts and keyd write .cpuprofile files there),
 *        BENCH_KEYD_AUDIT ("batch": fsync in batches, the default; "always"; "none": no fsync)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, constants as cryptoConstants, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createCa, issueCertificate, type KeyType } from '../src/cli/pki.js';
import { AuditLog, type AuditRecord } from '../src/keyd/audit.js';
import type { KeyOperations, OperationContext } from '../src/keys/keyOperations.js';
import { startKeyProcess } from '../src/keys/keyProcess.js';
import { KeydClient, connectKeydAdmin } from '../src/keys/remoteKey.js';
import { SignatureScheme, verifySignature } from '../src/tls/crypto/signatureSchemes.js';
import { certificateVerifyInput, medianOf, pct } from './keysProc.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 4);
const concurrency = Number(process.argv[3] ?? 16);
const repeats = Number(process.env.BENCH_REPEATS ?? 5);
const seqSeconds = Number(process.env.BENCH_SEQ_SECONDS ?? 3);
const signSeconds = Number(process.env.BENCH_SIGN_SECONDS ?? 2);
const sections = new Set((process.env.BENCH_SECTIONS ?? 'signs,handshakes,hsm').split(','));
const keyFilter = new Set((process.env.BENCH_KEYS ?? 'p256,rsa').split(','));
/** Signs in flight on one keyd connection, and for async direct signing. */
const PIPELINE = 64;

const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
const CTX: OperationContext = { tlsVersion: 'TLSv1.3', purpose: 'tls13-server-certificate-verify', serverName: 'localhost' };

/** A child program speaking JSON lines on stdout, asked things on stdin. */
interface Child {
  child: ChildProcess;
  first: Record<string, unknown>;
  ask(q: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** BENCH_CPU_PROF=DIR: fronts and keyd write V8 CPU profiles there (`node --cpu-prof`). */
const profDir = process.env.BENCH_CPU_PROF;

let profCount = 0;

async function startChild(script: string, args: string[], label: string): Promise<Child> {
  const prof = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${label}-${++profCount}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...prof, join(here, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = (): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${script}: no answer within 30 s`)), 30_000);
      waiting.push((l) => {
        clearTimeout(t);
        resolve(JSON.parse(l) as Record<string, unknown>);
      });
    });
  let first: Record<string, unknown>;
  try {
    first = await Promise.race([next(), exited.then(() => Promise.reject(new Error(`${script} exited before it was ready`)))]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    child,
    first,
    ask(q) {
      child.stdin!.write(q + '\n');
      return next();
    },
    async stop() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function runLoad(args: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'benchLoad.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, number>) : reject(new Error(`load exited ${code}`))));
  });
}

function runJson(script: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`${script} exited ${code}`))));
  });
}

/** The keyd link: PEM file paths of the front's mTLS identity, and keyd's addresses. */
interface Link {
  ca: string;
  cert: string;
  key: string;
  tls: string;
  unix: string;
}

interface SiteKey {
  label: string;
  type: KeyType;
  scheme: SignatureScheme;
  cert: string;
  key: string;
  privateKey: KeyObject;
  keyId: string;
}

// ---------------------------------------------------------------- 1. signs

interface SignResult {
  rate: number;
  /** CPU of this process (the client, or the direct signer) per sign, µs. */
  clientUs: number;
  /** keyd CPU per sign, µs (0 for direct signing). */
  keydUs: number;
}

/** Runs `fn` (which returns signs/s over about signSeconds) and adds this process's CPU per sign. */
async function withCpu(fn: () => number | Promise<number>): Promise<SignResult> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const rate = await fn();
  const c = process.cpuUsage(c0);
  const n = (rate * (performance.now() - t0)) / 1000;
  return { rate, clientUs: (c.user + c.system) / n, keydUs: 0 };
}

async function pipelined(signOne: () => Promise<unknown>, inflight: number): Promise<number> {
  const until = performance.now() + signSeconds * 1000;
  const t0 = performance.now();
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      await signOne();
      n++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return n / ((performance.now() - t0) / 1000);
}

function directSync(k: SiteKey): number {
  const opts = k.type === 'rsa-2048' ? { key: k.privateKey, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : k.privateKey;
  const until = performance.now() + signSeconds * 1000;
  const t0 = performance.now();
  let n = 0;
  while (performance.now() < until) {
    cryptoSign('sha256', certificateVerifyInput(), opts);
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

function directAsync(k: SiteKey): Promise<number> {
  const opts = k.type === 'rsa-2048' ? { key: k.privateKey, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : k.privateKey;
  return pipelined(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        cryptoSign('sha256', certificateVerifyInput(), opts, (e, sig) => (e ? reject(e) : resolve(sig)));
      }),
    PIPELINE,
  );
}

async function keydSigns(key: KeyOperations, k: SiteKey, keyd: Child): Promise<SignResult> {
  const c0 = (await keyd.ask('cpu')).cpu as number;
  const t0 = performance.now();
  // A signal per operation, as each handshake has its own.
  const r = await withCpu(() => pipelined(() => key.sign(k.scheme, certificateVerifyInput(), CTX, new AbortController().signal), PIPELINE));
  const secs = (performance.now() - t0) / 1000;
  const c1 = (await keyd.ask('cpu')).cpu as number;
  return { ...r, keydUs: (c1 - c0) / (r.rate * secs) };
}

/** Round trip of one sign at a time, ms (p50, p99). */
async function loneSign(key: KeyOperations, k: SiteKey): Promise<{ p50: number; p99: number }> {
  const ts: number[] = [];
  const until = performance.now() + 1000;
  while (performance.now() < until) {
    const t = performance.now();
    await key.sign(k.scheme, certificateVerifyInput(), CTX, new AbortController().signal);
    ts.push(performance.now() - t);
  }
  ts.sort((a, b) => a - b);
  return { p50: pct(ts, 0.5), p99: pct(ts, 0.99) };
}

/** Round trip of a PING (no operation, no audit line) on the client's connection, ms: the transport and wake-up floor. */
async function lonePing(client: KeydClient): Promise<{ p50: number; p99: number }> {
  const ts: number[] = [];
  const until = performance.now() + 1000;
  while (performance.now() < until) {
    const h = await client.health();
    const rtt = h.connections[0]?.rttMs;
    if (rtt !== undefined) ts.push(rtt);
  }
  ts.sort((a, b) => a - b);
  return { p50: pct(ts, 0.5), p99: pct(ts, 0.99) };
}

async function signsSection(keys: SiteKey[], keyd: Child, link: Link): Promise<void> {
  console.log(`\n1. signs/s: keyd pipelined (${PIPELINE} in flight on one connection; keyd in its own process, store key) vs direct node:crypto in this process;`);
  console.log('   the key process (forked child, private pipe, no audit log) for comparison');
  console.log(`   ${signSeconds}s per run, median of ${repeats} alternating runs; lone = one sign at a time (round trip, 1 s)`);
  console.log('   client µs = CPU of this process per sign (the signer, or the client of keyd / the key process); keyd µs = CPU of keyd per sign');
  console.log('   ping = round trip of a PING frame on the same connection (no operation, no audit line): the transport and wake-up floor\n');
  console.log('key            path                        signs/s   vs direct  client µs/sign  keyd µs/sign  lone p50 ms  lone p99 ms  ping p50 ms');
  const unixClient = await KeydClient.connect({ addresses: [`unix:${link.unix}`], poolSize: 1, pingIntervalMs: 0 });
  const tlsClient = await KeydClient.connect({ addresses: [`tls://${link.tls}`], ca: readFileSync(link.ca), cert: readFileSync(link.cert), key: readFileSync(link.key), poolSize: 1, pingIntervalMs: 0 });
  try {
    for (const k of keys) {
      const viaUnix = await unixClient.key({ keyId: k.keyId });
      const viaTls = await tlsClient.key({ keyId: k.keyId });
      // The results are real signatures by the certificate's key.
      for (const rk of [viaUnix, viaTls]) {
        const m = certificateVerifyInput();
        if (!verifySignature(rk.publicKey, k.scheme, m, await rk.sign(k.scheme, m, CTX, new AbortController().signal))) throw new Error('keyd signature does not verify');
      }
      // The key process, for comparison: a forked child on a private pipe, no audit.
      const kp = await startKeyProcess({ keyPath: k.key, expectedPublicKey: new X509Certificate(readFileSync(k.cert)).publicKey });
      const runs: Record<string, SignResult[]> = { sync: [], async: [], keyproc: [], unix: [], tls: [] };
      let loneKp: { p50: number; p99: number };
      try {
        for (let i = 0; i < repeats; i++) {
          runs.sync.push(await withCpu(() => directSync(k)));
          runs.async.push(await withCpu(() => directAsync(k)));
          runs.keyproc.push(await withCpu(() => pipelined(() => kp.sign(k.scheme, certificateVerifyInput(), CTX, new AbortController().signal), PIPELINE)));
          runs.unix.push(await keydSigns(viaUnix, k, keyd));
          runs.tls.push(await keydSigns(viaTls, k, keyd));
        }
        loneKp = await loneSign(kp, k);
      } finally {
        await kp.close();
      }
      const lone = { unix: await loneSign(viaUnix, k), tls: await loneSign(viaTls, k) };
      const ping = { unix: await lonePing(unixClient), tls: await lonePing(tlsClient) };
      const r = Object.fromEntries(Object.entries(runs).map(([n, rs]) => [n, medianOf(rs)])) as Record<string, SignResult>;
      const base = r.sync.rate;
      const row = (path: string, x: SignResult, l?: { p50: number; p99: number }, pg?: { p50: number }): void =>
        console.log(
          `${k.label.padEnd(14)} ${path.padEnd(26)} ${f(x.rate).padStart(8)} ${(f(x.rate / base, 2) + 'x').padStart(10)} ${f(x.clientUs).padStart(15)} ${(x.keydUs ? f(x.keydUs) : '-').padStart(13)} ${(l ? f(l.p50, 3) : '-').padStart(12)} ${(l ? f(l.p99, 3) : '-').padStart(12)} ${(pg ? f(pg.p50, 3) : '-').padStart(12)}`,
        );
      row('direct sign, sync', r.sync);
      row(`direct sign, async (${PIPELINE})`, r.async);
      row('key process', r.keyproc, loneKp);
      row('keyd, Unix socket', r.unix, lone.unix, ping.unix);
      row('keyd, mTLS', r.tls, lone.tls, ping.tls);
    }
  } finally {
    unixClient.close();
    tlsClient.close();
  }
}

/** What one audit line adds to a lone operation: batch (written, fsync later) vs always (fsync before the result). */
async function auditSection(dir: string): Promise<void> {
  const rec: AuditRecord = { client: 'cn:front', op: 'sign', outcome: 'ok', keyId: 'ab'.repeat(32), scheme: 'ecdsa_secp256r1_sha256', serverName: 'localhost', peer: '127.0.0.1:50000', latencyMs: 0.1 };
  console.log('\n   audit line, one append at a time (what a lone operation waits for):');
  for (const sync of ['batch', 'always'] as const) {
    const log = await AuditLog.open(join(dir, `audit-${sync}.log`), { sync });
    const ts: number[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const t = performance.now();
        await log.append(rec);
        ts.push((performance.now() - t) * 1000);
      }
    } finally {
      await log.close();
    }
    ts.sort((a, b) => a - b);
    console.log(`   sync: '${sync}'`.padEnd(22) + `p50 ${f(pct(ts, 0.5)).padStart(5)} µs   p99 ${f(pct(ts, 0.99)).padStart(5)} µs   (${log.stats.syncs} fsyncs for 300 lines)`);
  }
}

// ---------------------------------------------------------------- 2. handshakes

type Backend = 'local' | 'keyproc' | 'keyd-unix' | 'keyd-tls';
const BACKENDS: Backend[] = ['local', 'keyproc', 'keyd-unix', 'keyd-tls'];
const BACKEND_LABEL: Record<Backend, string> = { local: 'localKey', keyproc: 'key process', 'keyd-unix': 'keyd, Unix socket', 'keyd-tls': 'keyd, mTLS' };

interface HsResult {
  rate: number;
  /** Front CPU per handshake, µs. */
  frontUs: number;
  /** The kernel's part of frontUs (system time: socket reads and writes), µs. */
  frontSysUs: number;
  /** Key holder CPU per handshake (key process or keyd), µs. */
  holderUs: number;
  /** CPU of the load generator (the node:tls clients) per handshake, µs. */
  loadUs: number;
  p50: number;
  p99: number;
  errors: number;
}

interface HsSummary {
  key: string;
  backend: Backend;
  ratio: number;
  frontRatio: number;
  addedP50: number;
}

function frontArgs(backend: Backend, k: SiteKey, link: Link): Record<string, string> {
  if (backend === 'local' || backend === 'keyproc') return { mode: backend, cert: k.cert, key: k.key };
  if (backend === 'keyd-unix') return { mode: 'keyd', cert: k.cert, keyId: k.keyId, address: `unix:${link.unix}` };
  return { mode: 'keyd', cert: k.cert, keyId: k.keyId, address: `tls://${link.tls}`, ca: link.ca, clientCert: link.cert, clientKey: link.key };
}

async function throughputRun(backend: Backend, front: Child, keyd: Child): Promise<HsResult> {
  const port = String(front.first.port);
  const a0 = await front.ask('cpu');
  const k0 = backend.startsWith('keyd') ? ((await keyd.ask('cpu')).cpu as number) : 0;
  const r = await runLoad(['handshakes', port, String(concurrency), String(seconds)]);
  const a1 = await front.ask('cpu');
  const k1 = backend.startsWith('keyd') ? ((await keyd.ask('cpu')).cpu as number) : 0;
  const holder = backend === 'keyproc' ? (a1.holder as number) - (a0.holder as number) : k1 - k0;
  return {
    rate: r.handshakes / r.seconds,
    frontUs: ((a1.cpu as number) - (a0.cpu as number)) / r.handshakes,
    frontSysUs: ((a1.sys as number) - (a0.sys as number)) / r.handshakes,
    holderUs: holder / r.handshakes,
    loadUs: r.cpuUs / r.handshakes,
    p50: r.p50,
    p99: r.p99,
    errors: r.errors,
  };
}

async function handshakesSection(keys: SiteKey[], keyd: Child, link: Link): Promise<HsSummary[]> {
  console.log(`\n2. TLS 1.3 full handshakes (x25519): ${seconds}s per run, ${concurrency} concurrent node:tls clients in a separate process, median of ${repeats} alternating runs`);
  console.log('   one front process per backend (all started before the runs, idle when not measured); keyd in its own process, shared');
  console.log('   front µs = CPU of the network process per handshake (its capacity: 1e6/front µs handshakes/s per core), (kernel part);');
  console.log('   holder µs = CPU of the key process (10 ms clock) or of keyd per handshake; total µs = front + holder + load generator');
  console.log('   (all three share the 2 cores: when they are busy, hs/s follows 1/total µs, and the holder\'s µs come out of the others\')');
  console.log(`   lone = ${seqSeconds * BACKENDS.length}s of sequential handshakes taking the four fronts in turn (concurrency 1); added = median of paired differences to localKey\n`);
  console.log('key            backend              hs/s   vs local   front µs/hs  vs local  holder µs/hs  total µs/hs   p50 ms   p99 ms  lone p50 ms  lone p99 ms  added ms  errors');
  const summary: HsSummary[] = [];
  for (const k of keys) {
    const fronts = new Map<Backend, Child>();
    try {
      for (const b of BACKENDS) fronts.set(b, await startChild('keysServer.js', [JSON.stringify(frontArgs(b, k, link))], `front-${k.type}-${b}`));
      for (const b of BACKENDS) await runLoad(['handshakes', String(fronts.get(b)!.first.port), String(concurrency), '1']); // warm-up
      const runs: Record<Backend, HsResult[]> = { local: [], keyproc: [], 'keyd-unix': [], 'keyd-tls': [] };
      for (let i = 0; i < repeats; i++) for (const b of BACKENDS) runs[b].push(await throughputRun(b, fronts.get(b)!, keyd));
      const lat = (await runJson('keysLatency.js', [String(seqSeconds * BACKENDS.length), ...BACKENDS.map((b) => String(fronts.get(b)!.first.port))])) as {
        errors: number;
        ports: Array<{ p50: number; p99: number; pairedAdded: number }>;
      };
      const local = medianOf(runs.local);
      BACKENDS.forEach((b, i) => {
        const r = b === 'local' ? local : medianOf(runs[b]);
        const l = lat.ports[i];
        const ratio = r.rate / local.rate;
        const frontRatio = local.frontUs / r.frontUs;
        if (b !== 'local') summary.push({ key: k.label, backend: b, ratio, frontRatio, addedP50: l.pairedAdded });
        console.log(
          `${k.label.padEnd(14)} ${BACKEND_LABEL[b].padEnd(18)} ${f(r.rate).padStart(6)} ${(f(ratio, 2) + 'x').padStart(9)} ${`${f(r.frontUs)} (${f(r.frontSysUs)})`.padStart(13)} ${(f(frontRatio, 2) + 'x').padStart(9)} ${(b === 'local' ? '-' : f(r.holderUs)).padStart(13)} ${f(r.frontUs + (b === 'local' ? 0 : r.holderUs) + r.loadUs).padStart(12)} ${f(r.p50, 2).padStart(8)} ${f(r.p99, 2).padStart(8)} ${f(l.p50, 3).padStart(12)} ${f(l.p99, 3).padStart(12)} ${(b === 'local' ? '-' : f(l.pairedAdded, 3)).padStart(9)} ${String(r.errors + (b === 'local' ? lat.errors : 0)).padStart(7)}`,
        );
      });
      console.log('');
    } finally {
      for (const s of fronts.values()) await s.stop();
    }
  }
  return summary;
}

// ---------------------------------------------------------------- 3. SoftHSM2

async function hsmSection(): Promise<void> {
  const hsmSeconds = Math.max(1, signSeconds);
  const inflight = 16;
  console.log(`\n3. SoftHSM2 signs/s: pkcs11Key worker pool (2 sessions, ${inflight} in flight) vs synchronous C_Sign on the main thread (one per event-loop turn)`);
  console.log(`   ${hsmSeconds}s per run, median of ${Math.max(2, Math.min(repeats, 3))} alternating runs; stall = event-loop delay (1 ms resolution; on 2 shared cores it also counts`);
  console.log('   time the OS gave the CPU to other threads); loop busy = event-loop utilization; main µs = main-thread busy time per sign\n');
  const r = (await runJson('keysHsm.js', [String(hsmSeconds), String(inflight), String(Math.max(2, Math.min(repeats, 3)))])) as Record<
    string,
    Record<'pool' | 'sync', { rate: number; maxStallMs: number; p99StallMs: number; loopBusy: number; mainUsPerSign: number }>
  >;
  console.log('key            mode                         signs/s  vs sync  longest stall ms  p99 stall ms  loop busy  main µs/sign');
  for (const [name, m] of Object.entries(r)) {
    for (const mode of ['pool', 'sync'] as const) {
      const x = m[mode];
      console.log(
        `${name.padEnd(14)} ${(mode === 'pool' ? 'worker pool (loop free)' : 'sync C_Sign (loop blocked)').padEnd(27)} ${f(x.rate).padStart(8)} ${(f(x.rate / m.sync.rate, 2) + 'x').padStart(8)} ${f(x.maxStallMs, 1).padStart(17)} ${f(x.p99StallMs, 1).padStart(13)} ${(f(x.loopBusy * 100) + '%').padStart(10)} ${f(x.mainUsPerSign).padStart(13)}`,
      );
    }
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-keys-'));
  let keyd: Child | undefined;
  try {
    // The keyd link's PKI (keyd's server certificate, the front's client certificate)...
    const linkCa = await createCa({ commonName: 'bench keyd CA' });
    const kc = await issueCertificate(linkCa, { keyType: 'ecdsa-p256', commonName: 'keyd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
    const fc = await issueCertificate(linkCa, { keyType: 'ecdsa-p256', commonName: 'front', usage: 'client' });
    const file = (name: string, text: string): string => {
      const p = join(dir, name);
      writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    const link = { ca: file('link-ca.pem', linkCa.certPem), cert: file('front.pem', fc.certPem), key: file('front-key.pem', fc.keyPem), tls: '', unix: '' };
    keyd = await startChild('keysKeyd.js', [JSON.stringify({ dir, ca: link.ca, cert: file('keyd.pem', kc.certPem), key: file('keyd-key.pem', kc.keyPem) })], 'keyd');
    link.tls = String(keyd.first.tls);
    link.unix = String(keyd.first.unix);

    // ...and the site's certificates, whose keys go into keyd's sealed store.
    const siteCa = await createCa({ keyType: 'ecdsa-p256' });
    const specs: Array<[string, string, KeyType, SignatureScheme]> = [
      ['p256', 'ECDSA P-256', 'ecdsa-p256', SignatureScheme.ecdsa_secp256r1_sha256],
      ['rsa', 'RSA-2048 PSS', 'rsa-2048', SignatureScheme.rsa_pss_rsae_sha256],
    ];
    const admin = await connectKeydAdmin({ addresses: [`unix:${link.unix}`] });
    const keys: SiteKey[] = [];
    try {
      for (const [id, label, type, scheme] of specs) {
        if (!keyFilter.has(id)) continue;
        const leaf = await issueCertificate(siteCa, { keyType: type, commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
        const privateKey = createPrivateKey(leaf.keyPem);
        const info = await admin.putKey(privateKey, ['localhost']);
        keys.push({ label, type, scheme, cert: file(`${type}.pem`, leaf.chainPem), key: file(`${type}-key.pem`, leaf.keyPem), privateKey, keyId: info.keyId });
      }
    } finally {
      admin.close();
    }
    console.log('keyward key holders, measured side by side in one run (2 shared cores: load, front and key holder compete for them)');
    const auditMode = { batch: 'fsynced in batches (the default)', always: 'fsynced before each result', none: 'never fsynced while running' }[process.env.BENCH_KEYD_AUDIT ?? 'batch'];
    console.log(`keyd: sealed store, audit log ${auditMode ?? '?'}, Unix socket and mutual TLS 1.3 (node:tls) on 127.0.0.1`);
    console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews every figure)`);

    if (sections.has('signs')) {
      await signsSection(keys, keyd, link);
      await auditSection(dir);
    }
    let summary: HsSummary[] = [];
    if (sections.has('handshakes')) summary = await handshakesSection(keys, keyd, link);
    if (sections.has('hsm')) await hsmSection();

    const audit = (await keyd.ask('cpu')).audit as { written: number; synced: number; syncs: number };
    console.log(`\nkeyd audit log over the whole run: ${audit.written} lines written, ${audit.syncs} fsyncs`);
    if (summary.length > 0) {
      console.log('\ntargets (issue 4): handshakes/s >= 0.85x localKey; added p50 (lone handshakes) < 0.5 ms');
      for (const s of summary) {
        console.log(
          `  ${s.key.padEnd(13)} ${BACKEND_LABEL[s.backend].padEnd(18)} hs/s ${f(s.ratio, 2)}x ${s.ratio >= 0.85 ? 'met   ' : 'MISSED'}  (front per-core ${f(s.frontRatio, 2)}x)   added p50 ${f(s.addedP50, 3)} ms ${s.addedP50 < 0.5 ? 'met' : 'MISSED'}`,
        );
      }
    }
    console.log(`\ntotal ${f((performance.now() - started) / 1000)} s; load average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await keyd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
