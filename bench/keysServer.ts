/**
 * One front for bench/keys: a keyward TLS server whose key is a LocalKey, a forked key
 * process, or keyd (Unix socket or mutual TLS). Same certificate, key and group (x25519)
 * for all. Prints {"port":N} on stdout; answers "cpu" on stdin with its own CPU time and,
 * for the key process, the key process's CPU time (µs; `sys`: the kernel's part of its own);
 * exits when stdin closes.
 *
 *   node dist/bench/keysServer.js '{"mode":"local","cert":"c.pem","key":"k.pem"}'
 *   node dist/bench/keysServer.js '{"mode":"keyproc","cert":"c.pem","key":"k.pem"}'
 *   node dist/bench/keysServer.js '{"mode":"keyd","cert":"c.pem","keyId":"…","address":"unix:/p"}'
 *   node dist/bench/keysServer.js '{"mode":"keyd","cert":"c.pem","keyId":"…","address":"tls://h:p","ca":"ca.pem","clientCert":"f.pem","clientKey":"fk.pem"}'
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import type { KeyOperations } from '../src/keys/keyOperations.js';
import { startKeyProcess, type KeyProcessKey } from '../src/keys/keyProcess.js';
import { LocalKey } from '../src/keys/localKey.js';
import { connectRemoteKey } from '../src/keys/remoteKey.js';
import { createServer } from '../src/node/server.js';
import { NamedGroup } from '../src/tls/crypto/groups.js';
import { procCpuMicros } from './keysProc.js';

interface Args {
  mode: 'local' | 'keyproc' | 'keyd';
  cert: string;
  key?: string;
  keyId?: string;
  address?: string;
  ca?: string;
  clientCert?: string;
  clientKey?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const cert = readFileSync(args.cert, 'utf8');
let key: KeyOperations;
let keyProcess: KeyProcessKey | undefined;
if (args.mode === 'local') {
  key = new LocalKey(readFileSync(args.key!, 'utf8'));
} else if (args.mode === 'keyproc') {
  // The front never reads the key file: only the forked child does.
  keyProcess = await startKeyProcess({ keyPath: args.key!, expectedPublicKey: new X509Certificate(cert).publicKey });
  key = keyProcess;
} else {
  key = await connectRemoteKey({
    addresses: [args.address!],
    keyId: args.keyId!,
    ...(args.ca ? { ca: readFileSync(args.ca), cert: readFileSync(args.clientCert!), key: readFileSync(args.clientKey!) } : {}),
  });
}

const server = createServer({ certificates: [{ cert, key }], groups: [NamedGroup.x25519] }, (sock) => {
  sock.on('error', () => {});
  sock.resume();
});
server.on('tlsClientError', () => {});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line !== 'cpu') return;
  const u = process.cpuUsage();
  const holderPid = keyProcess?.pid;
  const holder = holderPid ? procCpuMicros(holderPid) : 0;
  process.stdout.write(JSON.stringify({ cpu: u.user + u.system, sys: u.system, holder }) + '\n');
});
rl.on('close', () => {
  // Closing the key process on the way out ends the child, which exit() alone would orphan.
  void Promise.resolve(key.close?.())
    .catch(() => undefined)
    .finally(() => process.exit(0));
});
