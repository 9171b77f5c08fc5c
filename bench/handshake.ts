/**
 * keyward vs node:tls, side by side in one run: full TLS 1.3 handshakes (throughput,
 * server CPU per handshake, p50/p99 latency) and bulk throughput of one connection.
 * Each server runs in its own process; the load comes from another process.
 *
 *   npm run bench            (or: node dist/bench/handshake.js [seconds] [concurrency])
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createCa, issueCertificate, type KeyType } from '../src/cli/pki.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 16);
const bulkMB = Number(process.env.BENCH_BULK_MB ?? 256);
/** Runs per implementation, alternating, so drift on a shared machine hits both alike; medians are reported. */
const repeats = Number(process.env.BENCH_REPEATS ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function medianOf<T extends object>(runs: T[]): T {
  const out = {} as Record<string, number>;
  for (const k of Object.keys(runs[0])) out[k] = median(runs.map((r) => (r as Record<string, number>)[k]));
  return out as T;
}

interface ServerProc {
  child: ChildProcess;
  port: number;
  cpu(): Promise<number>;
  stop(): void;
}

/** A TLS 1.2 row: what the server enables and which suite the client asks for. */
interface Tls12Case {
  server: { rsaKeyExchange?: boolean; psk?: { identity: string; hex: string } };
  client: { cipher: string; psk?: { identity: string; hex: string } };
}

async function startServer(impl: 'keyward' | 'node', cert: string, key: string, tls12?: Tls12Case): Promise<ServerProc> {
  const args = [join(here, 'benchServer.js'), impl, cert, key, 'x25519', ...(tls12 ? [JSON.stringify(tls12.server)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  const { port } = JSON.parse(await next());
  return {
    child,
    port,
    async cpu() {
      child.stdin!.write('cpu\n');
      const { cpu } = JSON.parse(await next());
      return cpu.user + cpu.system;
    },
    stop() {
      child.stdin!.end();
    },
  };
}

function runLoad(args: string[]): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'benchLoad.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

interface HsResult {
  rate: number;
  cpuPerHs: number;
  p50: number;
  p99: number;
  errors: number;
}

async function handshakeRun(impl: 'keyward' | 'node', cert: string, key: string, tls12?: Tls12Case): Promise<HsResult> {
  const s = await startServer(impl, cert, key, tls12);
  // RFC 8422 5.1: in TLS 1.2 an ECDSA certificate's curve must be in the client's groups.
  const extra = tls12 ? ['X25519:P-256', JSON.stringify(tls12.client)] : [];
  try {
    await runLoad(['handshakes', String(s.port), String(concurrency), '1', ...extra]); // warm-up
    const c0 = await s.cpu();
    const r = await runLoad(['handshakes', String(s.port), String(concurrency), String(seconds), ...extra]);
    const c1 = await s.cpu();
    return { rate: r.handshakes / r.seconds, cpuPerHs: (c1 - c0) / r.handshakes, p50: r.p50, p99: r.p99, errors: r.errors };
  } finally {
    s.stop();
  }
}

async function bulkRun(impl: 'keyward' | 'node', cert: string, key: string) {
  const s = await startServer(impl, cert, key);
  try {
    await runLoad(['bulk', String(s.port), '16']); // warm-up
    const c0 = await s.cpu();
    const r = await runLoad(['bulk', String(s.port), String(bulkMB)]);
    const c1 = await s.cpu();
    return { up: r.uploadMBps, down: r.downloadMBps, cpuPerMB: (c1 - c0) / (2 * bulkMB) };
  } finally {
    s.stop();
  }
}

const f = (n: number, d = 0) => n.toFixed(d);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-'));
  try {
    const ca = await createCa({ keyType: 'ecdsa-p256' });
    const psk = { identity: 'bench-client', hex: '0123456789abcdef0123456789abcdef' };
    const rows: [string, KeyType, Tls12Case?][] = [
      ['1.3 ECDSA P-256 + x25519', 'ecdsa-p256'],
      ['1.3 RSA-2048 PSS + x25519', 'rsa-2048'],
      ['1.2 ECDHE-ECDSA x25519', 'ecdsa-p256', { server: {}, client: { cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' } }],
      ['1.2 ECDHE-RSA x25519', 'rsa-2048', { server: {}, client: { cipher: 'ECDHE-RSA-AES128-GCM-SHA256' } }],
      ['1.2 RSA key exchange', 'rsa-2048', { server: { rsaKeyExchange: true }, client: { cipher: 'AES128-GCM-SHA256' } }],
      ['1.2 PSK', 'ecdsa-p256', { server: { psk }, client: { cipher: 'PSK-AES128-GCM-SHA256', psk } }],
    ];
    const only = process.env.BENCH_ONLY;
    console.log(`full handshakes (TLS 1.3 unless marked 1.2): ${seconds}s per run, median of ${repeats} alternating runs, ${concurrency} concurrent clients in a separate process, one server process each`);
    console.log('server CPU/handshake is the per-core cost (1e6/cpu = handshakes/s on one server core); AES-128-GCM\n');
    console.log('row                        impl      hs/s   cpu µs/hs  core hs/s   p50 ms  p99 ms  errors');
    const files: Record<string, { cert: string; key: string }> = {};
    for (const [label, type, tls12] of rows) {
      if (!files[type]) {
        const leaf = await issueCertificate(ca, { keyType: type, commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
        files[type] = { cert: join(dir, `${type}.pem`), key: join(dir, `${type}-key.pem`) };
        writeFileSync(files[type].cert, leaf.chainPem);
        writeFileSync(files[type].key, leaf.keyPem);
      }
      if (only && !label.includes(only)) continue;
      const { cert, key } = files[type];
      const runs: Record<string, HsResult[]> = { node: [], keyward: [] };
      for (let i = 0; i < repeats; i++) {
        for (const impl of ['node', 'keyward'] as const) runs[impl].push(await handshakeRun(impl, cert, key, tls12));
      }
      const results: Record<string, HsResult> = {};
      for (const impl of ['node', 'keyward'] as const) {
        const r = medianOf(runs[impl]);
        results[impl] = r;
        console.log(`${label.padEnd(26)} ${impl.padEnd(8)} ${f(r.rate).padStart(6)} ${f(r.cpuPerHs).padStart(10)} ${f(1e6 / r.cpuPerHs).padStart(10)} ${f(r.p50, 2).padStart(8)} ${f(r.p99, 2).padStart(7)} ${String(r.errors).padStart(7)}`);
      }
      const k = results.keyward;
      const n = results.node;
      console.log(`${''.padEnd(26)} ratio keyward/node: hs/s ${f(k.rate / n.rate, 2)}x, per-core ${f(n.cpuPerHs / k.cpuPerHs, 2)}x, p50 ${f(k.p50 / n.p50, 2)}x, p99 ${f(k.p99 / n.p99, 2)}x\n`);
    }
    if (only) return;
    console.log(`bulk, one connection, ${bulkMB} MiB each way (ECDSA P-256 cert, AES-128-GCM)`);
    console.log('impl      upload MB/s  download MB/s  server cpu µs/MB');
    const bulkRuns: Record<string, { up: number; down: number; cpuPerMB: number }[]> = { node: [], keyward: [] };
    for (let i = 0; i < repeats; i++) {
      for (const impl of ['node', 'keyward'] as const) bulkRuns[impl].push(await bulkRun(impl, files['ecdsa-p256'].cert, files['ecdsa-p256'].key));
    }
    const bulk: Record<string, { up: number; down: number; cpuPerMB: number }> = {};
    for (const impl of ['node', 'keyward'] as const) {
      const r = medianOf(bulkRuns[impl]);
      bulk[impl] = r;
      console.log(`${impl.padEnd(9)} ${f(r.up).padStart(11)} ${f(r.down).padStart(14)} ${f(r.cpuPerMB).padStart(17)}`);
    }
    console.log(`ratio keyward/node: upload ${f(bulk.keyward.up / bulk.node.up, 2)}x, download ${f(bulk.keyward.down / bulk.node.down, 2)}x, cpu/MB ${f(bulk.node.cpuPerMB / bulk.keyward.cpuPerMB, 2)}x (higher is better)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
