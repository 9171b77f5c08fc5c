/**
 * `openssl s_server` for the client tests: started on a free loopback port, ready once it
 * printed ACCEPT; it prints what it receives, which `sendSeen` waits for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import type { KeywardClientSocket } from '../../src/node/clientSocket.js';

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

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  return port;
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
  const deadline = Date.now() + 5_000;
  while (!s.output().includes(line)) {
    if (Date.now() > deadline) throw new Error(`s_server never printed "${line}":\n${s.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  c.destroy();
}
