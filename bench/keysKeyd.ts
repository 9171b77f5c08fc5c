/**
 * keyd for bench/keys, in its own process, configured as in production (sealed store,
 * durable audit log with batched fsync, mutual TLS and a Unix socket), with logs at "warn".
 * Prints {"tls":"HOST:PORT","unix":PATH} when ready; answers "cpu" on stdin with its CPU
 * time (µs) and the audit log's counters; closes gracefully when stdin closes.
 *
 *   node dist/bench/keysKeyd.js '{"dir":"/tmp/x","ca":"ca.pem","cert":"keyd.pem","key":"keyd-key.pem"}'
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { parseKeydConfig } from '../src/keyd/config.js';
import { startKeyd } from '../src/keyd/server.js';

function auditMode(): { durable?: boolean; sync?: string } {
  const mode = process.env.BENCH_KEYD_AUDIT ?? 'batch';
  if (mode === 'none') return { durable: false };
  if (mode === 'batch' || mode === 'always') return { sync: mode };
  throw new Error(`BENCH_KEYD_AUDIT must be batch, always or none, not ${mode}`);
}

const args = JSON.parse(process.argv[2] ?? '{}') as { dir: string; ca: string; cert: string; key: string };
const config = parseKeydConfig(
  {
    listen: { tls: '127.0.0.1:0', unix: join(args.dir, 'keyd.sock') },
    tls: { cert: args.cert, key: args.key, clientCa: args.ca },
    // Cheap scrypt: it only runs at start; the store format is the same.
    store: { dir: join(args.dir, 'store'), passphraseEnv: 'BENCH_KEYD_PASSPHRASE', scrypt: { N: 1024, r: 8, p: 1 } },
    // BENCH_KEYD_AUDIT: "batch" (default, as in production), "always" (fsync per result) or
    // "none" (no fsync while running) shows what durability costs.
    audit: { file: join(args.dir, 'audit.log'), ...auditMode() },
    log: { level: 'warn' },
    clients: [
      { id: 'cn:front', keys: ['*'] },
      { id: 'unix', keys: ['*'], admin: true },
    ],
  },
  args.dir,
  'bench keyd.json',
);
const keyd = await startKeyd(config, {
  logger: pino({ level: 'warn' }, pino.destination(2)),
  env: { BENCH_KEYD_PASSPHRASE: 'bench only, not a secret' },
});
const t = keyd.tlsAddress!;
process.stdout.write(JSON.stringify({ tls: `${t.host}:${t.port}`, unix: keyd.unixPath }) + '\n');

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line !== 'cpu') return;
  const u = process.cpuUsage();
  process.stdout.write(JSON.stringify({ cpu: u.user + u.system, audit: keyd.audit.stats }) + '\n');
});
rl.on('close', () => {
  void keyd
    .close()
    .catch(() => undefined)
    .finally(() => process.exit(0));
});
