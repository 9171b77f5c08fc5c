/**
 * The processes of bench/proxy.ts, chosen by the first argument:
 *
 *   upstream PORTFILE        the application: 'U' then bytes: counts them, answers the count
 *                            at the client's end; 'D' + 8-byte length: sends that many bytes;
 *                            'E': echoes
 *   nodetls PORT CERT KEY UPSTREAM_PORT
 *                            the baseline: node:tls terminating and piping to the upstream
 *   load MODE PORT CA SECONDS|MB CONCURRENCY
 *                            the client side: 'upload'/'download' of MB through one
 *                            connection, or 'connections': full handshakes + one echoed
 *                            byte each, CONCURRENCY at a time; prints one JSON line
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import tls from 'node:tls';

const [mode, ...args] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function upstream(portFile: string): void {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.once('readable', function first() {
      const head = s.read(1) as Buffer | null;
      if (!head) return s.once('readable', first);
      const m = String.fromCharCode(head[0]);
      if (m === 'U') {
        let n = 0;
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => s.end(`${n}\n`));
      } else if (m === 'D') {
        const lenBuf = s.read(8) as Buffer | null;
        const total = Number(lenBuf ? lenBuf.readBigUInt64BE() : 0n);
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const n = Math.min(CHUNK.length, total - sent);
            sent += n;
            if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
        s.resume();
      } else {
        s.write(head);
        s.pipe(s);
      }
    });
  });
  server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String((server.address() as AddressInfo).port)));
}

function nodeTlsProxy(port: number, certPath: string, keyPath: string, upstreamPort: number): void {
  const server = tls.createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath), allowHalfOpen: true }, (c) => {
    const u = createConnection({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true });
    u.setNoDelay(true);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.pipe(u);
    u.pipe(c);
  });
  server.on('tlsClientError', () => undefined);
  server.listen(port, '127.0.0.1');
}

function connect(port: number, ca: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, allowHalfOpen: true } as tls.ConnectionOptions, () => resolve(s));
    s.once('error', reject);
  });
}

async function load(kind: string, port: number, caPath: string, amount: number, concurrency: number): Promise<void> {
  const ca = readFileSync(caPath, 'utf8');
  if (kind === 'upload' || kind === 'download') {
    const bytes = amount * 1024 * 1024;
    const s = await connect(port, ca);
    const t0 = performance.now();
    if (kind === 'upload') {
      s.write('U');
      let sent = 0;
      await new Promise<void>((resolve) => {
        const pump = () => {
          while (sent < bytes) {
            sent += CHUNK.length;
            if (!s.write(CHUNK)) return void s.once('drain', pump);
          }
          s.end();
          resolve();
        };
        pump();
      });
      const reply = await new Promise<string>((resolve) => {
        let t = '';
        s.on('data', (d: Buffer) => (t += d.toString()));
        s.on('end', () => resolve(t));
      });
      if (Number(reply) !== bytes) throw new Error(`upstream counted ${reply.trim()} of ${bytes}`);
    } else {
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(bytes));
      s.write(Buffer.concat([Buffer.from('D'), len]));
      let got = 0;
      await new Promise<void>((resolve) => {
        s.on('data', (d: Buffer) => (got += d.length));
        s.on('end', () => resolve());
      });
      s.end();
      if (got !== bytes) throw new Error(`received ${got} of ${bytes}`);
    }
    const secs = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ mbPerSec: bytes / 1e6 / secs }) + '\n');
    s.destroy();
    return;
  }
  // connections: handshake, one echoed byte, close; for `amount` seconds.
  const end = performance.now() + amount * 1000;
  let done = 0;
  let failed = 0;
  const worker = async () => {
    while (performance.now() < end) {
      try {
        const s = await connect(port, ca);
        s.write('E');
        await new Promise((r) => s.once('data', r));
        s.end();
        s.destroy();
        done++;
      } catch {
        failed++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(JSON.stringify({ perSec: done / ((performance.now() - t0) / 1000), failed }) + '\n');
}

if (mode === 'upstream') upstream(args[0]);
else if (mode === 'nodetls') nodeTlsProxy(Number(args[0]), args[1], args[2], Number(args[3]));
else if (mode === 'load') await load(args[0], Number(args[1]), args[2], Number(args[3]), Number(args[4]));
else throw new Error(`unknown mode ${mode}`);
