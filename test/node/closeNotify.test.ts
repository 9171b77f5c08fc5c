/**
 * The clean close of a connection, as it reaches TCP: once both sides' close_notify are
 * exchanged the server socket closes at once, without waiting for the peer's FIN (the peer
 * may send nothing more). The client is Python's ssl: `unwrap()` sends close_notify, reads
 * the server's, and leaves the TCP connection open.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createServer, type KeywardServer } from '../../src/node/server.js';
import type { KeywardTLSSocket } from '../../src/node/tlsSocket.js';
import { LOOPBACK } from '../support/peers.js';
import { caPath, listen, once, serverCertificate, stopServer } from './helpers.js';

// Connects, sends "hi", unwraps (close_notify both ways), then holds TCP open for `hold` s.
const PYTHON_CLIENT = `
import socket, ssl, sys, time, json
a = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=a['ca'])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
raw = socket.create_connection(('${LOOPBACK}', a['port']))
s = ctx.wrap_socket(raw, server_hostname='localhost')
s.sendall(b'hi')
got = b''
while not got.endswith(b'bye'):
    d = s.recv(100)
    if not d: break
    got += d
plain = s.unwrap()
print('UNWRAPPED', got.decode(), flush=True)
time.sleep(a['hold'])
plain.close()
`;

let server: KeywardServer;
let port: number;
let ca: string;
/** Per connection: when the server saw the peer's close_notify ('end') and when its TCP socket closed. */
const seen: { end?: number; closed?: number; closeNotify?: boolean }[] = [];

before(async () => {
  ca = await caPath();
  server = createServer({ certificates: [await serverCertificate('ecdsa-p256')] }, (s: KeywardTLSSocket) => {
    const times: (typeof seen)[number] = {};
    seen.push(times);
    s.on('data', () => s.write('bye'));
    s.on('end', () => {
      times.end = Date.now();
      times.closeNotify = s.peerSentCloseNotify;
    });
    s.rawSocket.on('close', () => (times.closed = Date.now()));
  });
  port = await listen(server);
});

after(async () => {
  await stopServer(server);
});

test("after both close_notifys the server closes its TCP socket at once, without waiting for the peer's FIN", async () => {
  const hold = 3;
  const py = spawn('python3', ['-c', PYTHON_CLIENT, JSON.stringify({ ca, port, hold })], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    // The client holds its FIN back for `hold` s after the close_notify exchange; it exits then.
    const code = await once<number>(py, 'exit', (hold + 10) * 1000);
    assert.equal(code, 0, out);
    assert.match(out, /UNWRAPPED bye/);
    assert.equal(seen.length, 1);
    const [c] = seen;
    assert.equal(c.closeNotify, true);
    assert.ok(c.end !== undefined && c.closed !== undefined, 'the server saw the close_notify and closed');
    // Before, the socket lingered until the peer's FIN (held back here) or for 2 s.
    assert.ok(c.closed - c.end < 1_000, `TCP socket closed ${c.closed - c.end} ms after the peer's close_notify`);
  } finally {
    py.kill();
  }
});
