/**
 * Helpers of the client tests: a keyward client handshake, an exchange of data, and
 * `openssl s_server` on a free loopback port (ready once it printed ACCEPT; it prints what
 * it receives, which `sendSeen` waits for).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { waitUntil } from '../support/keywardServer.js';

/** A loopback port nothing listens on (free a moment ago), for servers that cannot take port 0. */
export async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  return port;
}

/** A keyward client connected to localhost:`port`, trusting `ca`; rejects with the handshake's error. */
export function handshake(port: number, ca: string, opts: Partial<KeywardConnectOptions> = {}): Promise<KeywardClientSocket> {
  const c = connect({ port, host: 'localhost', ca, handshakeTimeout: 10_000, ...opts });
  return new Promise((resolve, reject) => {
    c.once('secureConnect', () => resolve(c));
    c.once('error', reject);
  });
}

/** Writes `text` (if any) and resolves with what comes back once `until` is in it. */
export function exchange(c: KeywardClientSocket, text: string, until = text): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += String(d);
      if (!got.includes(until)) return;
      c.off('data', onData).off('error', reject);
      resolve(got);
    };
    c.on('data', onData).once('error', reject);
    if (text) c.write(text);
  });
}

export interface SServer {
  port: number;
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
}

const started: ChildProcess[] = [];

/** Kills every s_server started (call from `after`). */
export function stopSServers(): void {
  for (const c of started) c.kill();
  started.length = 0;
}

/** Starts `openssl s_server -naccept 1 ARGS` and waits for its ACCEPT line (10 s at most). */
export async function sServer(args: string[], env?: Record<string, string>): Promise<SServer> {
  const port = await freePort();
  const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-naccept', '1', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  started.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  const deadline = Date.now() + 10_000;
  while (!out.includes('ACCEPT')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`s_server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, child, output: () => out };
}

/** Sends a line, waits until s_server printed it, then drops the connection. */
export async function sendSeen(c: KeywardClientSocket, s: SServer, line: string): Promise<void> {
  c.write(`${line}\n`);
  await waitUntil(() => s.output().includes(line), `s_server to print "${line}":\n${s.output()}`);
  c.destroy();
}
