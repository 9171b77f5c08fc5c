/**
 * One bulk direction, keyward now against another built checkout, in many alternating
 * rounds: for a change worth a few percent of CPU per MiB, which `npm run bench`'s bulk
 * rows (3 × 512 MiB per server, 10 ms CPU ticks) cannot tell from noise. Same set-up as
 * compare.ts: each server pinned to CPU 0 with its key in process, bench/loadgen on CPU 1;
 * server CPU from /proc over each round's transfers.
 *
 *   node dist/bench/bulkAb.js --baseline DIR [--direction up|down] [--rounds 15] [--mb 512]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../src/cli/pki.js';
import { median, procCpuMicros } from './keysProc.js';
import { LOAD_CORE, buildLoadgen, runJson, startServer, type Server } from './pinned.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const baselineDir = option('baseline');
if (!baselineDir) throw new Error('--baseline DIR (a built checkout) is required');
const direction = option('direction') ?? 'up';
if (direction !== 'up' && direction !== 'down') throw new Error(`--direction: up or down, got ${direction}`);
const rounds = Number(option('rounds') ?? 15);
/** Per server and round, as connections of 128 MiB: a round of 512 MiB is ~0.5 s of CPU, 2% of it one tick. */
const mb = Number(option('mb') ?? 512);
const PER_CONNECTION = 128;

async function main(): Promise<void> {
  const loadgen = buildLoadgen();
  const dir = mkdtempSync(join(tmpdir(), 'keyward-bulkab-'));
  const servers: Server[] = [];
  try {
    const ca = await createCa({ keyType: 'ecdsa-p256' });
    const leaf = await issueCertificate(ca, { keyType: 'ecdsa-p256', commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    writeFileSync(cert, leaf.chainPem);
    writeFileSync(key, leaf.keyPem, { mode: 0o600 });
    const site = { type: 'ecdsa-p256' as const, label: 'ECDSA P-256', cert, key, keyId: '' };
    servers.push(await startServer('local', site, undefined, process.execPath));
    servers.push(await startServer('local', site, undefined, process.execPath, {}, [], { benchDir: join(baselineDir!, 'dist', 'bench'), tag: 'baseline' }));
    /** Server CPU µs per MiB over `total` MiB in connections of PER_CONNECTION MiB. */
    const round = async (s: Server, total: number): Promise<number> => {
      const c0 = procCpuMicros(s.child.pid);
      for (let done = 0; done < total; done += PER_CONNECTION) {
        await runJson(LOAD_CORE, loadgen, ['-mode', 'bulk', '-port', String(s.port), '-mb', String(Math.min(PER_CONNECTION, total - done)), '-direction', direction], 120_000);
      }
      return (procCpuMicros(s.child.pid) - c0) / total;
    };
    for (const s of servers) await round(s, 256);
    const us = servers.map((): number[] => []);
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) us[i].push(await round(servers[i], mb));
      ratios.push(us[0][r] / us[1][r]);
    }
    console.log(`bulk ${direction === 'up' ? 'upload' : 'download'}, keyward key in process, ${rounds} alternating rounds of ${mb} MiB per server; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    for (const [i, label] of ['now', 'baseline'].entries()) {
      console.log(`  ${label.padEnd(9)} µs/MiB median ${median(us[i]).toFixed(0)} (${Math.min(...us[i]).toFixed(0)}–${Math.max(...us[i]).toFixed(0)})`);
    }
    const below = ratios.filter((x) => x < 1).length;
    console.log(`  now / baseline per round: median ${median(ratios).toFixed(3)}x, ${below} of ${rounds} rounds below 1`);
  } finally {
    for (const s of servers) await s.child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
