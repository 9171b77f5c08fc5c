/**
 * TLS 1.3 external-PSK handshakes (psk_dhe_ke, x25519, no tickets) with the PSK in the
 * front (localPsk), in a key process, and in keyd over its Unix socket (not a test): each
 * front in its own process, the load (node:tls clients with a pskCallback) in another, keyd
 * in this one (which does nothing else meanwhile, so its CPU is keyd's). Reports handshakes
 * per second, front CPU per handshake and handshakes per second of front CPU, the holder's
 * CPU per handshake, p50/p99; medians of alternating runs.
 *
 *   npm run -s build && node dist/bench/tls13Psk.js [seconds] [concurrency]
 *   env: BENCH_REPEATS (3)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseKeydConfig } from '../src/keyd/config.js';
import { startKeyd } from '../src/keyd/server.js';
import { connectKeydAdmin } from '../src/keys/remoteKey.js';
import { median } from './keysProc.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const seconds = Number(process.argv[2] ?? 4);
const concurrency = Number(process.argv[3] ?? 16);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
const IDENTITY = 'bench-client';
const PSK = randomBytes(32).toString('hex');

interface Front {
  port: number;
  cpu(): Promise<{ cpu: number; holder: number }>;
  stop(): Promise<void>;
}

async function startFront(args: Record<string, string>): Promise<Front> {
  const child: ChildProcess = spawn(process.execPath, [join(here, 'tls13PskServer.js'), JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: Array<(l: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<Record<string, number>>((resolve) => waiting.push((l) => resolve(JSON.parse(l) as Record<string, number>)));
  const { port } = await next();
  return {
    port,
    cpu: () => {
      child.stdin!.write('cpu\n');
      return next() as Promise<{ cpu: number; holder: number }>;
    },
    stop: () => new Promise((r) => (child.once('exit', () => r()), child.stdin!.end())),
  };
}

function load(port: number, secs: number): Promise<{ handshakes: number; errors: number; seconds: number; p50: number; p99: number }> {
  return new Promise((resolve, reject) => {
    const args = ['handshakes', String(port), String(concurrency), String(secs), 'X25519', JSON.stringify({ tls13Psk: { identity: IDENTITY, hex: PSK } })];
    const child = spawn(process.execPath, [join(here, 'benchLoad.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'keyward-bench-psk-'));
const pskFile = join(dir, 'psks.txt');
writeFileSync(pskFile, `${IDENTITY}:${PSK}\n`, { mode: 0o600 });
const config = parseKeydConfig(
  {
    listen: { unix: join(dir, 'keyd.sock') },
    store: { dir: join(dir, 'store'), passphraseEnv: 'BENCH_KEYD_PASSPHRASE', scrypt: { N: 1024, r: 8, p: 1 } },
    audit: { file: join(dir, 'audit.log') },
    log: { level: 'warn' },
    clients: [{ id: 'unix', keys: ['*'], psks: ['*'], admin: true }],
  },
  dir,
  'bench keyd.json',
);
const keyd = await startKeyd(config, { logger: pino({ level: 'warn' }, pino.destination(2)), env: { BENCH_KEYD_PASSPHRASE: 'bench only, not a secret' } });
const admin = await connectKeydAdmin({ addresses: [`unix:${keyd.unixPath}`] });
await admin.putPsk(Buffer.from(IDENTITY), Buffer.from(PSK, 'hex'));
admin.close();

const modes = {
  local: { mode: 'local', identity: IDENTITY, hex: PSK },
  'key process': { mode: 'keyproc', pskFile },
  'keyd (unix)': { mode: 'keyd', address: `unix:${keyd.unixPath}` },
} as const;
const fronts = new Map<string, Front>();
const rows = new Map<string, Array<{ rate: number; frontUs: number; holderUs: number; p50: number; p99: number; errors: number }>>();
try {
  for (const [name, args] of Object.entries(modes)) {
    fronts.set(name, await startFront(args));
    rows.set(name, []);
    await load(fronts.get(name)!.port, 1); // warm-up
  }
  for (let r = 0; r < repeats; r++) {
    for (const [name, front] of fronts) {
      const a0 = await front.cpu();
      const k0 = process.cpuUsage();
      const run = await load(front.port, seconds);
      const a1 = await front.cpu();
      const k = process.cpuUsage(k0);
      const holder = name === 'key process' ? a1.holder - a0.holder : name.startsWith('keyd') ? k.user + k.system : 0;
      rows.get(name)!.push({ rate: run.handshakes / run.seconds, frontUs: (a1.cpu - a0.cpu) / run.handshakes, holderUs: holder / run.handshakes, p50: run.p50, p99: run.p99, errors: run.errors });
    }
  }
} finally {
  await Promise.all([...fronts.values()].map((f) => f.stop()));
  await keyd.close();
  rmSync(dir, { recursive: true, force: true });
}

const f = (n: number, d = 0) => n.toFixed(d);
const base = median(rows.get('local')!.map((x) => x.frontUs));
console.log(`TLS 1.3 external PSK, psk_dhe_ke x25519, ${concurrency} clients, ${repeats} x ${seconds} s per front (medians)`);
console.log('| PSK held by | handshakes/s | front CPU µs/hs | handshakes/s of front CPU | vs local | holder CPU µs/hs | p50 ms | p99 ms | errors |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, rs] of rows) {
  const m = (k: 'rate' | 'frontUs' | 'holderUs' | 'p50' | 'p99') => median(rs.map((x) => x[k]));
  const errors = rs.reduce((n, x) => n + x.errors, 0);
  console.log(`| ${name} | ${f(m('rate'))} | ${f(m('frontUs'))} | ${f(1e6 / m('frontUs'))} | ${f(base / m('frontUs'), 2)}x | ${name === 'local' ? '-' : f(m('holderUs'))} | ${f(m('p50'), 2)} | ${f(m('p99'), 2)} | ${errors} |`);
}
