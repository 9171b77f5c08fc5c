/**
 * Load generator process (node:tls client), so the server under test has its own core.
 *
 *   node dist/bench/benchLoad.js handshakes PORT CONCURRENCY SECONDS [GROUP] [TLS12_JSON]
 *
 * TLS12_JSON: {"cipher":"ECDHE-RSA-AES128-GCM-SHA256"} and optionally "psk":{"identity","hex"}: a TLS 1.2 handshake with that suite;
 * {"tls13Psk":{"identity","hex"}}: a TLS 1.3 handshake with that external PSK.
 *   node dist/bench/benchLoad.js bulk PORT MEGABYTES
 *
 * Prints one JSON line of results.
 */
import tls from 'node:tls';

const [kind, portArg, a, b, groupArg = 'X25519', tls12Arg] = process.argv.slice(2);
const port = Number(portArg);
const extra: { cipher?: string; psk?: { identity: string; hex: string }; tls13Psk?: { identity: string; hex: string } } | undefined = tls12Arg ? JSON.parse(tls12Arg) : undefined;
const tls13Psk = extra?.tls13Psk;
const tls12 = extra?.cipher !== undefined ? (extra as { cipher: string; psk?: { identity: string; hex: string } }) : undefined;
const versionOptions: tls.ConnectionOptions = tls13Psk
  ? { minVersion: 'TLSv1.3', ciphers: 'PSK', pskCallback: () => ({ identity: tls13Psk.identity, psk: Buffer.from(tls13Psk.hex, 'hex') }) }
  : tls12
  ? {
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      ciphers: tls12.cipher,
      ...(tls12.psk ? { pskCallback: () => ({ identity: tls12.psk!.identity, psk: Buffer.from(tls12.psk!.hex, 'hex') }) } : {}),
    }
  : { minVersion: 'TLSv1.3' };

function connect(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...versionOptions, ecdhCurve: groupArg, servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
}

async function handshakes(concurrency: number, seconds: number): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  async function worker(): Promise<void> {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const s = await connect();
        latencies.push(performance.now() - t0);
        // end(), not destroy(): the client Finished must reach the server, or the
        // server counts a failed handshake instead of a full one.
        s.end();
      } catch {
        errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ handshakes: latencies.length, errors, seconds: elapsed, p50: pct(0.5), p99: pct(0.99), cpuUs: cpu.user + cpu.system }) + '\n');
}

async function bulk(megabytes: number): Promise<void> {
  const total = megabytes * 1024 * 1024;
  const s = await connect();
  // Upload: client sends `total` bytes, server answers "ok".
  const block = Buffer.alloc(64 * 1024, 0x62);
  let t0 = performance.now();
  s.write(`U ${total}\n`);
  await new Promise<void>((resolve) => {
    s.once('data', () => resolve());
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += block.length;
        if (!s.write(block)) return void s.once('drain', pump);
      }
    };
    pump();
  });
  const upload = megabytes / ((performance.now() - t0) / 1000);
  // Download: server sends `total` bytes.
  t0 = performance.now();
  s.write(`D ${total}\n`);
  await new Promise<void>((resolve) => {
    let got = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= total) resolve();
    });
  });
  const download = megabytes / ((performance.now() - t0) / 1000);
  s.destroy();
  process.stdout.write(JSON.stringify({ uploadMBps: upload, downloadMBps: download }) + '\n');
}

if (kind === 'handshakes') await handshakes(Number(a), Number(b));
else await bulk(Number(a));
