/**
 * keyward proxy vs node:tls piped to the same upstream, side by side in one run:
 * bulk throughput through one connection (upload and download, MB/s) and the connection
 * rate (full TLS 1.3 handshakes, one echoed byte each). The proxy under test is pinned
 * to CPU 0 with taskset; the load generator and the upstream share CPU 1. Runs alternate
 * between the two proxies and medians are reported, so drift on a shared machine hits both.
 *
 *   npm run bench:proxy      (or: node dist/bench/proxy.js [seconds] [concurrency])
 *   BENCH_BULK_MB (default 256), BENCH_REPEATS (default 3)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa, issueCertificate } from '../src/cli/pki.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const PEERS = join(here, 'proxyPeers.js');
const KEYWARD = join(here, '..', '..', 'bin', 'keyward.js');
const seconds = Number(process.argv[2] ?? 4);
const concurrency = Number(process.argv[3] ?? 16);
const bulkMB = Number(process.env.BENCH_BULK_MB ?? 256);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function run(cpu: number, args: string[], opts: { capture?: boolean } = {}): { child: ChildProcess; out: Promise<string> } {
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, ...args], { stdio: ['ignore', opts.capture ? 'pipe' : 'ignore', 'inherit'] });
  children.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<string>((resolve, reject) =>
    child.on('exit', (code) => {
      children.delete(child);
      if (code === 0 || code === null) resolve(out);
      else reject(new Error(`${args.join(' ')} exited ${code}`));
    }),
  );
  return { child, out: done };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-proxy-'));
  try {
    const ca = await createCa();
    const leaf = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
    const caPath = join(dir, 'ca.pem');
    const chainPath = join(dir, 'chain.pem');
    const keyPath = join(dir, 'key.pem');
    writeFileSync(caPath, ca.certPem);
    writeFileSync(chainPath, leaf.chainPem);
    writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });

    const portFile = join(dir, 'upstream.port');
    run(1, [PEERS, 'upstream', portFile]);
    for (let i = 0; i < 100 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
    const upstreamPort = Number(readFileSync(portFile, 'utf8'));

    // Both proxies hold the key in process (the key holder is not what is measured here).
    const start = async (which: 'keyward' | 'node:tls') => {
      const port = await freePort();
      const args =
        which === 'keyward'
          ? [KEYWARD, 'proxy', '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${upstreamPort}`, '--cert', chainPath, '--key', keyPath, '--log-level', 'warn', '--max-connections', '100000']
          : [PEERS, 'nodetls', String(port), chainPath, keyPath, String(upstreamPort)];
      const p = run(0, args);
      await waitListening(port);
      return { port, pid: p.child.pid!, stop: () => p.child.kill('SIGKILL') };
    };
    const load = async (port: number, kind: string, amount: number) => JSON.parse(await run(1, [PEERS, 'load', kind, String(port), caPath, String(amount), String(concurrency)], { capture: true }).out) as Record<string, number>;

    const results: Record<string, Record<string, number[]>> = { keyward: {}, 'node:tls': {} };
    const add = (who: string, k: string, v: number) => (results[who][k] ??= []).push(v);
    for (let r = 0; r < repeats; r++) {
      for (const who of (r % 2 === 0 ? ['keyward', 'node:tls'] : ['node:tls', 'keyward']) as ('keyward' | 'node:tls')[]) {
        const p = await start(who);
        for (const kind of ['upload', 'download']) {
          const c0 = cpuSeconds(p.pid);
          const res = await load(p.port, kind, bulkMB);
          add(who, `${kind} MB/s`, res.mbPerSec);
          add(who, `${kind} server µs/MB`, ((cpuSeconds(p.pid) - c0) * 1e6) / bulkMB);
        }
        const c0 = cpuSeconds(p.pid);
        const res = await load(p.port, 'connections', seconds);
        add(who, 'connections/s', res.perSec);
        add(who, 'server µs/connection', ((cpuSeconds(p.pid) - c0) * 1e6) / (res.perSec * seconds));
        p.stop();
      }
    }
    process.stdout.write(`keyward proxy vs node:tls piped to the same upstream (proxy on CPU 0, load + upstream on CPU 1); medians of ${repeats}, ${bulkMB} MiB bulk, ${seconds} s of connections x${concurrency}\n\n`);
    process.stdout.write('| measure | node:tls | keyward | ratio |\n|---|---|---|---|\n');
    for (const k of Object.keys(results.keyward)) {
      const n = median(results['node:tls'][k]);
      const kw = median(results.keyward[k]);
      // For CPU per unit, lower is better: the ratio is node / keyward, so above 1 means keyward is ahead.
      const ratio = k.includes('µs') ? n / kw : kw / n;
      process.stdout.write(`| ${k} | ${n.toFixed(0)} | ${kw.toFixed(0)} | ${ratio.toFixed(2)}x |\n`);
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
