/**
 * The clean close of a connection, as it reaches TCP: once both sides' close_notify are
 * exchanged the server socket closes soon (a short linger, not the peer's FIN: the peer may
 * send nothing more), and a peer that sends stray bytes after its close_notify still gets
 * all of a reply it reads slowly (a socket closed at once would answer them with a reset and
 * drop what the peer had not read). The clients are Python's ssl.
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

// Sends "hi" and its close_notify, then stray bytes after 0.3 s, then reads slowly: the raw byte count.
const PYTHON_STRAY = `
import socket, ssl, sys, time, json
a = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=a['ca'])
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
o = ctx.wrap_bio(inc, out, server_side=False, server_hostname='localhost')
s = socket.create_connection(('${LOOPBACK}', a['port']))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
def flush():
    d = out.read()
    if d: s.sendall(d)
while True:
    try:
        o.do_handshake(); break
    except ssl.SSLWantReadError:
        flush(); inc.write(s.recv(65536))
flush()
o.write(b'big')
try: o.unwrap()
except ssl.SSLWantReadError: pass
flush()
time.sleep(0.3)
s.sendall(bytes([23, 3, 3, 0, 5]) + b'hello')
got = 0
try:
    while True:
        time.sleep(0.002)
        d = s.recv(65536)
        if not d: break
        got += len(d)
    print('EOF', got, flush=True)
except Exception as e:
    print('ERR', e, got, flush=True)
`;

const BIG = 3_000_000;

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
    s.on('data', (d: Buffer) => {
      if (d.toString() === 'big') s.once('end', () => s.write(Buffer.alloc(BIG, 0x61)));
      else s.write('bye');
    });
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
    // It lingered until the peer's FIN (held back here) or for 2 s; now a short linger.
    assert.ok(c.closed - c.end < 1_000, `TCP socket closed ${c.closed - c.end} ms after the peer's close_notify`);
  } finally {
    py.kill();
  }
});

test('stray bytes after the close_notify exchange do not reset the connection: a slow reader gets the whole reply', async () => {
  const py = spawn('python3', ['-c', PYTHON_STRAY, JSON.stringify({ ca, port })], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const code = await once<number>(py, 'exit', 60_000);
    assert.equal(code, 0, out);
    const m = /^EOF (\d+)/m.exec(out);
    assert.ok(m, `the client read to the end without a reset: ${out}`);
    assert.ok(Number(m[1]) > BIG, `${m[1]} raw bytes for a ${BIG}-byte reply`);
  } finally {
    py.kill();
  }
});
