/**
 * One server under test for bench/compare.ts: keyward (key in this process, in a forked key
 * process, or in keyd) or node:tls (key in this process), both allowing TLS 1.2 and 1.3 with
 * the same certificate, key and groups; the client chooses version and suite.
 *
 *   node --expose-gc dist/bench/compareServer.js '{"impl":"keyward","key":"local","cert":"c.pem","keyFile":"k.pem","groups":["x25519"]}'
 *
 * Arguments (JSON): impl "keyward" | "node"; key "local" | "keyproc" | "keyd" | "serve" (`keyward
 * serve`'s server: its HTTPS app, with the key file in this process); cert, keyFile
 * (PEM paths); keyId and keyd ("unix:/path") for key "keyd"; groups: "x25519",
 * "X25519MLKEM768" in preference order; holdSignsMs: every signature waits that long and
 * then until "release" (the pending-handshake memory row); noDelay: TCP_NODELAY on accepted
 * sockets (off by default in both, as in node:tls).
 *
 * Prints {"port","pid","holderPid"} when listening, then answers one JSON line per stdin
 * line: "stat" (connections completed, failed, open, signatures held, memory), "gc" (the same
 * after a full garbage collection), "release" (held signatures go on), "prof-start" /
 * "prof-stop FILE" (a V8 CPU profile of the time between, 250 µs sampling, written to FILE).
 * Exits when stdin closes.
 *
 * After the handshake a connection speaks a tiny protocol: nothing (handshake rows), or
 * "U <bytes>\n" (the client uploads, the server answers "ok\n") / "D <bytes>\n" (the server
 * sends that many bytes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import type { KeyOperations, OperationContext } from '../src/keys/keyOperations.js';
import { startKeyProcess, type KeyProcessKey } from '../src/keys/keyProcess.js';
import { LocalKey } from '../src/keys/localKey.js';
import { connectRemoteKey } from '../src/keys/remoteKey.js';
import { createServer } from '../src/node/server.js';
import { NamedGroup } from '../src/tls/crypto/groups.js';
import type { SignatureScheme } from '../src/tls/crypto/signatureSchemes.js';

interface Args {
  impl: 'keyward' | 'node';
  /** serve: `keyward serve`'s own server (its HTTPS app and key wrapper) with the key file in this process. */
  key: 'local' | 'keyproc' | 'keyd' | 'serve';
  cert: string;
  keyFile: string;
  keyId?: string;
  keyd?: string;
  groups: ('x25519' | 'X25519MLKEM768')[];
  holdSignsMs?: number;
  /** TCP_NODELAY on accepted sockets (both servers leave Nagle on by default). */
  noDelay?: boolean;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const cert = readFileSync(args.cert, 'utf8');
const GROUPS = {
  x25519: { keyward: NamedGroup.x25519, node: 'X25519' },
  X25519MLKEM768: { keyward: NamedGroup.X25519MLKEM768, node: 'X25519MLKEM768' },
};

let secure = 0;
let failed = 0;
let open = 0;

/** The bench protocol after the handshake (see the top of this file). */
function onSecure(sock: Duplex): void {
  secure++;
  open++;
  sock.once('close', () => open--);
  sock.on('error', () => {});
  let header = '';
  let uploading = 0;
  sock.on('data', (chunk: Buffer) => {
    if (uploading > 0) {
      uploading -= chunk.length;
      if (uploading <= 0) sock.write('ok\n');
      return;
    }
    header += chunk.toString('latin1');
    const nl = header.indexOf('\n');
    if (nl < 0) {
      if (header.length > 64) sock.destroy();
      return;
    }
    const [op, n] = header.slice(0, nl).split(' ');
    const rest = header.length - nl - 1;
    header = '';
    if (op === 'U') {
      uploading = Number(n) - rest;
      if (uploading <= 0) sock.write('ok\n');
    } else if (op === 'D') sendBytes(sock, Number(n));
    else sock.destroy();
  });
}

const block = Buffer.alloc(64 * 1024, 0x61);
function sendBytes(sock: Duplex, total: number): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(block.length, total - sent);
      sent += n;
      if (!sock.write(n === block.length ? block : block.subarray(0, n))) {
        sock.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

/** A key holder that answers each signature after `ms`, and not before "release". */
class HeldKey implements KeyOperations {
  pending = 0;
  readonly publicKey: KeyOperations['publicKey'];
  readonly schemes: KeyOperations['schemes'];
  readonly keyId: string;
  #released = false;
  #waiting: (() => void)[] = [];

  constructor(
    private readonly inner: KeyOperations,
    private readonly ms: number,
  ) {
    ({ publicKey: this.publicKey, schemes: this.schemes, keyId: this.keyId } = inner);
  }

  async sign(scheme: SignatureScheme, message: Uint8Array, ctx: OperationContext, signal: AbortSignal): Promise<Uint8Array> {
    this.pending++;
    try {
      await new Promise((r) => setTimeout(r, this.ms));
      if (!this.#released) await new Promise<void>((r) => this.#waiting.push(r));
      return await this.inner.sign(scheme, message, ctx, signal);
    } finally {
      this.pending--;
    }
  }

  release(): number {
    this.#released = true;
    const n = this.#waiting.length;
    for (const w of this.#waiting.splice(0)) w();
    return n;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}

let key: KeyOperations | undefined;
let held: HeldKey | undefined;
let keyProcess: KeyProcessKey | undefined;
let server: Server;
/** Set when `serve` listens by itself. */
let listening: AddressInfo | undefined;
if (args.impl === 'keyward' && args.key === 'serve') {
  // Imported only here: serve's module graph (the CLI's, keyd client, PKI) is not what the other rows measure.
  const { serve } = await import('../src/cli/serve.js');
  const running = await serve({
    listen: '127.0.0.1:0',
    certs: [args.cert],
    keys: [{ kind: 'file', path: args.keyFile }],
    groups: args.groups.map((g) => GROUPS[g].node),
    minVersion: 'TLSv1.2',
  });
  running.server.on('secureConnection', (sock: Duplex) => onSecure(sock));
  running.server.on('tlsClientError', () => failed++);
  server = running.server as unknown as Server;
  listening = running.address;
} else if (args.impl === 'keyward') {
  if (args.key === 'local') key = new LocalKey(readFileSync(args.keyFile, 'utf8'));
  else if (args.key === 'keyproc') {
    // The front never reads the key file: the forked child does (it inherits this process's CPU pinning).
    keyProcess = await startKeyProcess({ keyPath: args.keyFile, expectedPublicKey: new X509Certificate(cert).publicKey });
    key = keyProcess;
  } else key = await connectRemoteKey({ addresses: [args.keyd!], keyId: args.keyId! });
  if (args.holdSignsMs !== undefined) key = held = new HeldKey(key, args.holdSignsMs);
  const s = createServer({ certificates: [{ cert, key }], groups: args.groups.map((g) => GROUPS[g].keyward), minVersion: 'TLSv1.2' }, onSecure);
  s.on('tlsClientError', () => failed++);
  // Before the acceptor's own listener: the handshake's writes already go without Nagle.
  if (args.noDelay) s.prependListener('connection', (raw: Socket) => raw.setNoDelay(true));
  server = s;
} else {
  const s = tls.createServer(
    {
      cert,
      key: readFileSync(args.keyFile, 'utf8'),
      ecdhCurve: args.groups.map((g) => GROUPS[g].node).join(':'),
      minVersion: 'TLSv1.2',
      noDelay: args.noDelay === true,
      // node:tls picks TLS 1.3 suites in its own order (AES-256-GCM first); keyward and the load
      // generator put AES-128-GCM first, so it goes first here too: the same suite for both.
      ciphers: ['TLS_AES_128_GCM_SHA256', ...tls.DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':'),
    },
    onSecure,
  );
  s.on('tlsClientError', () => failed++);
  server = s;
}

const ready = (a: AddressInfo) => process.stdout.write(JSON.stringify({ port: a.port, pid: process.pid, holderPid: keyProcess?.pid ?? null }) + '\n');
if (listening) ready(listening);
else server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => ready(server.address() as AddressInfo));

function stat(): Record<string, unknown> {
  const m = process.memoryUsage();
  return { secure, failed, open, pending: held?.pending ?? 0, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

let profiler: Session | undefined;

async function command(line: string): Promise<Record<string, unknown>> {
  if (line === 'prof-start') {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 250 });
    await profiler.post('Profiler.start');
    return { profiling: true };
  }
  if (line.startsWith('prof-stop ') && profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = undefined;
    writeFileSync(line.slice('prof-stop '.length), JSON.stringify(profile));
    return { ...stat(), profile: line.slice('prof-stop '.length) };
  }
  let answer: Record<string, unknown>;
  if (line === 'stat') answer = stat();
  else if (line === 'gc') {
    // Twice: the first pass can leave finalizers for the second.
    (globalThis as { gc?: () => void }).gc?.();
    (globalThis as { gc?: () => void }).gc?.();
    answer = stat();
  } else if (line === 'release') answer = { released: held?.release() ?? 0 };
  else answer = { error: `unknown command ${line}` };
  return answer;
}

// One command at a time, answers in order.
let queue = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  queue = queue.then(async () => {
    const answer = await command(line).catch((e: Error) => ({ error: e.message }));
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
rl.on('close', () => {
  // Closing the key process on the way out ends the child, which exit() alone would orphan.
  void Promise.resolve(key?.close?.())
    .catch(() => undefined)
    .finally(() => process.exit(0));
});
