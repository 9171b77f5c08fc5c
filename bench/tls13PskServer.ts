/**
 * One front for bench/tls13Psk: a PSK-only keyward TLS 1.3 server (x25519, psk_dhe_ke) whose
 * external PSK is in this process (localPsk), in a key process, or in keyd (Unix socket).
 * Prints {"port":N}; answers "cpu" on stdin with its CPU time and, for the key process, the
 * key process's (µs); exits when stdin closes.
 *
 *   node dist/bench/tls13PskServer.js '{"mode":"local","identity":"bench","hex":"…"}'
 *   node dist/bench/tls13PskServer.js '{"mode":"keyproc","pskFile":"psks.txt"}'
 *   node dist/bench/tls13PskServer.js '{"mode":"keyd","address":"unix:/p"}'
 */
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import type { Tls13PskOperations } from '../src/keys/keyOperations.js';
import { startPskProcess, type KeyProcessPsk } from '../src/keys/keyProcess.js';
import { localPsk } from '../src/keys/localPsk.js';
import { connectRemotePsk } from '../src/keys/remoteKey.js';
import { createServer } from '../src/node/server.js';
import { NamedGroup } from '../src/tls/crypto/groups.js';
import { procCpuMicros } from './keysProc.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { mode: 'local' | 'keyproc' | 'keyd'; identity?: string; hex?: string; pskFile?: string; address?: string };
let holder: Tls13PskOperations & { close?(): Promise<void> };
let keyProcess: KeyProcessPsk | undefined;
if (args.mode === 'local') holder = localPsk(new Map([[args.identity!, Buffer.from(args.hex!, 'hex')]]));
else if (args.mode === 'keyproc') holder = keyProcess = await startPskProcess({ pskPath: args.pskFile! });
else holder = await connectRemotePsk({ addresses: [args.address!] });

// ticketCount 0: every connection is a full PSK handshake, and tickets would add a holder call.
const server = createServer({ certificates: [], tls13Psk: { holder }, groups: [NamedGroup.x25519], ticketCount: 0 }, (sock) => {
  sock.on('error', () => {});
  sock.resume();
});
server.on('tlsClientError', () => {});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n'));

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line !== 'cpu') return;
  const u = process.cpuUsage();
  process.stdout.write(JSON.stringify({ cpu: u.user + u.system, holder: keyProcess?.pid ? procCpuMicros(keyProcess.pid) : 0 }) + '\n');
});
rl.on('close', () => {
  void Promise.resolve(holder.close?.())
    .catch(() => undefined)
    .finally(() => process.exit(0));
});
