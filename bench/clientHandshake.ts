/**
 * keyward's client vs node:tls's client, side by side in one run: full TLS 1.3 handshakes
 * per second of *client* CPU against the same node:tls server (in a child process, so its
 * CPU is not counted), ECDSA P-256 certificate, X25519. Rounds alternate between the two
 * clients so drift on a shared machine hits both alike; medians are reported.
 *
 *   npm run -s build && node dist/bench/clientHandshake.js [handshakes-per-round] [concurrency] [rounds]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { createCa, issueCertificate } from '../src/cli/pki.js';
import { connect } from '../src/node/clientSocket.js';

const perRound = Number(process.argv[2] ?? 400);
const concurrency = Number(process.argv[3] ?? 8);
const rounds = Number(process.argv[4] ?? 5);

const SERVER = `
const tls = require('node:tls');
const fs = require('node:fs');
const [cert, key] = process.argv.slice(-2).map((f) => fs.readFileSync(f, 'utf8'));
const s = tls.createServer({ cert, key, ecdhCurve: 'X25519', minVersion: 'TLSv1.3' }, (c) => { c.on('error', () => {}); c.end(); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

type Client = (port: number, ca: string) => Promise<void>;

const keywardClient: Client = (port, ca) =>
  new Promise((resolve, reject) => {
    const c = connect({ port, host: 'localhost', ca, groups: ['X25519'] });
    c.once('secureConnect', () => {
      c.destroy();
      resolve();
    });
    c.once('error', reject);
  });

const nodeClient: Client = (port, ca) =>
  new Promise((resolve, reject) => {
    const c = tls.connect({ port, host: 'localhost', ca, ecdhCurve: 'X25519' });
    c.once('secureConnect', () => {
      c.destroy();
      resolve();
    });
    c.once('error', reject);
  });

/** Handshakes per second of this process's CPU (user + system) for one round. */
async function round(client: Client, port: number, ca: string): Promise<{ perCpuSecond: number; cpuUsPerHandshake: number }> {
  let next = 0;
  const start = process.cpuUsage();
  const worker = async () => {
    while (next < perRound) {
      next++;
      await client(port, ca);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const used = process.cpuUsage(start);
  const cpuUs = used.user + used.system;
  return { perCpuSecond: perRound / (cpuUs / 1e6), cpuUsPerHandshake: cpuUs / perRound };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-client-'));
  try {
    const ca = await createCa({ commonName: 'bench CA' });
    const leaf = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
    const certPath = join(dir, 'chain.pem');
    const keyPath = join(dir, 'key.pem');
    writeFileSync(certPath, leaf.chainPem);
    writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });
    const server = spawn(process.execPath, ['-e', SERVER, '--', certPath, keyPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = Number(await new Promise<string>((r) => createInterface({ input: server.stdout! }).once('line', r)));
    try {
      // Warm-up: JIT and caches for both.
      for (let i = 0; i < 50; i++) {
        await keywardClient(port, ca.certPem);
        await nodeClient(port, ca.certPem);
      }
      const k: number[] = [];
      const n: number[] = [];
      const kUs: number[] = [];
      const nUs: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const a = await round(keywardClient, port, ca.certPem);
        const b = await round(nodeClient, port, ca.certPem);
        k.push(a.perCpuSecond);
        kUs.push(a.cpuUsPerHandshake);
        n.push(b.perCpuSecond);
        nUs.push(b.cpuUsPerHandshake);
      }
      const fmt = (x: number) => x.toFixed(0).padStart(7);
      console.log(`client full TLS 1.3 handshakes (ECDSA P-256, X25519), ${rounds} rounds of ${perRound} at concurrency ${concurrency}, medians`);
      console.log(`               hs per client CPU-s   client CPU µs/hs`);
      console.log(`  keyward      ${fmt(median(k))}               ${fmt(median(kUs))}`);
      console.log(`  node:tls     ${fmt(median(n))}               ${fmt(median(nUs))}`);
      console.log(`  ratio keyward/node:tls: ${(median(k) / median(n)).toFixed(2)}x`);
    } finally {
      server.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
