/**
 * One benchmark server process: keyward or node:tls, same certificate, key and group.
 * Prints {"port":N} on stdout; answers "cpu" on stdin with its CPU usage so the
 * orchestrator measures server CPU per handshake; exits when stdin closes.
 *
 *   node dist/bench/benchServer.js keyward|node CERT KEY [GROUP] [TLS12_JSON]
 *
 * TLS12_JSON, for the TLS 1.2 rows: {"rsaKeyExchange":true} and/or {"psk":{"identity":"id","hex":"..."}}
 * (both servers then allow TLS 1.2; the client picks the suite).
 *
 * Connections speak a tiny protocol after the handshake: nothing (handshake bench),
 * or "U <bytes>\n" (client uploads, server answers "ok\n") / "D <bytes>\n" (server sends).
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Server } from 'node:net';
import { createInterface } from 'node:readline';
import { createServer } from '../src/node/server.js';
import { LocalKey } from '../src/keys/localKey.js';
import { NamedGroup } from '../src/tls/crypto/groups.js';
import { CipherSuite } from '../src/tls/crypto/cipherSuites.js';
import { DEFAULT_TLS12_SUITES } from '../src/tls/engine/defaults.js';
import { localPsk } from '../src/keys/localPsk.js';

const [mode, certPath, keyPath, groupArg = 'x25519', tls12Arg] = process.argv.slice(2);
const tls12: { rsaKeyExchange?: boolean; psk?: { identity: string; hex: string } } | undefined = tls12Arg ? JSON.parse(tls12Arg) : undefined;
const cert = readFileSync(certPath, 'utf8');
const keyPem = readFileSync(keyPath, 'utf8');
const groupMap: Record<string, { keyward: NamedGroup; node: string }> = {
  x25519: { keyward: NamedGroup.x25519, node: 'X25519' },
  p256: { keyward: NamedGroup.secp256r1, node: 'prime256v1' },
};
const group = groupMap[groupArg];

function onSecure(sock: Duplex): void {
  let header = '';
  let mode: 'header' | 'upload' = 'header';
  let remaining = 0;
  sock.on('error', () => {});
  sock.on('data', (chunk: Buffer) => {
    if (mode === 'upload') {
      remaining -= chunk.length;
      if (remaining <= 0) {
        sock.write('ok\n');
        mode = 'header';
      }
      return;
    }
    header += chunk.toString('latin1');
    const nl = header.indexOf('\n');
    if (nl < 0) return;
    const [op, n] = header.slice(0, nl).split(' ');
    const rest = Buffer.from(header.slice(nl + 1), 'latin1');
    header = '';
    if (op === 'U') {
      mode = 'upload';
      remaining = Number(n) - rest.length;
      if (remaining <= 0) sock.write('ok\n');
    } else if (op === 'D') {
      sendBytes(sock, Number(n));
    }
  });
}

const block = Buffer.alloc(64 * 1024, 0x61);
function sendBytes(sock: Duplex, total: number): void {
  let sent = 0;
  const pump = () => {
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

const NODE_ECDHE_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

let server: Server;
if (mode === 'keyward') {
  const psk = tls12?.psk ? { holder: localPsk(new Map([[tls12.psk.identity, Buffer.from(tls12.psk.hex, 'hex')]])) } : undefined;
  const tls12Suites = tls12 ? [...DEFAULT_TLS12_SUITES, ...(tls12.rsaKeyExchange ? [CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256] : []), ...(psk ? [CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256] : [])] : undefined;
  server = createServer(
    {
      certificates: [{ cert, key: new LocalKey(keyPem) }],
      groups: [group.keyward],
      minVersion: tls12 ? 'TLSv1.2' : 'TLSv1.3',
      rsaKeyExchange: tls12?.rsaKeyExchange,
      psk,
      tls12CipherSuites: tls12Suites,
    },
    onSecure,
  );
  server.on('tlsClientError', () => {});
} else {
  const psk = tls12?.psk;
  server = tls.createServer(
    {
      cert,
      key: keyPem,
      ecdhCurve: group.node,
      minVersion: tls12 ? 'TLSv1.2' : 'TLSv1.3',
      // node's default list ends in !PSK, which no later entry can undo: list the suites.
      ...(tls12 ? { ciphers: [...NODE_ECDHE_SUITES, ...(tls12.rsaKeyExchange ? ['AES128-GCM-SHA256'] : []), ...(psk ? ['PSK-AES128-GCM-SHA256'] : [])].join(':') } : {}),
      ...(psk ? { pskCallback: (_s: tls.TLSSocket, id: string) => (id === psk.identity ? Buffer.from(psk.hex, 'hex') : null) } : {}),
    },
    onSecure,
  );
  server.on('tlsClientError', () => {});
}
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
});
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line === 'cpu') process.stdout.write(JSON.stringify({ cpu: process.cpuUsage() }) + '\n');
});
rl.on('close', () => process.exit(0));
