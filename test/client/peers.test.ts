/**
 * keyward's client against gnutls-serv, a Python `ssl` server and openssl s_server: key
 * types and versions, HelloRetryRequest, and KeyUpdate in both directions (ours with
 * update_requested, and the server's: s_server's "K" command asks us to update too).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { KeywardConnectOptions } from '../../src/node/clientSocket.js';
import { getPki, type PkiFixtures } from '../support/pki.js';
import { exchange, freePort, handshake as connectTo, sServer, stopSServers } from './clientHelpers.js';

let pki: PkiFixtures;
const children: ChildProcess[] = [];

before(async () => {
  pki = await getPki();
});
after(() => {
  stopSServers();
  for (const c of children) c.kill();
});


/** Starts a server process and waits until its output matches `ready`. */
async function start(cmd: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const deadline = Date.now() + 10_000;
  while (!ready.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${cmd} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, output: () => out };
}



const handshake = (port: number, opts: Partial<KeywardConnectOptions> = {}) => connectTo(port, pki.ca.certPem, opts);

describe('client vs gnutls-serv --echo', () => {
  for (const [version, priority] of [
    ['TLSv1.3', 'NORMAL:-VERS-ALL:+VERS-TLS1.3'],
    ['TLSv1.2', 'NORMAL:-VERS-ALL:+VERS-TLS1.2'],
  ] as const) {
    for (const kt of ['ecdsa-p384', 'rsa-2048', 'ed25519'] as const) {
      it(`${version}, ${kt} server`, async () => {
        const port = await freePort();
        await start('gnutls-serv', ['--port', String(port), '--echo', '--priority', priority, '--x509certfile', pki.server[kt].chainPath, '--x509keyfile', pki.server[kt].keyPath], /IPv4.*done/);
        const c = await handshake(port);
        assert.equal(c.getProtocol(), version);
        assert.equal(c.authorized, true);
        assert.match(await exchange(c, 'one\n'), /one/);
        if (version === 'TLSv1.3') {
          c.keyUpdate(true);
          assert.match(await exchange(c, 'after update\n'), /after update/);
        }
        c.destroy();
      });
    }
  }

  it('a HelloRetryRequest from gnutls for P-256', async () => {
    const port = await freePort();
    await start('gnutls-serv', ['--port', String(port), '--echo', '--priority', 'NORMAL:-GROUP-ALL:+GROUP-SECP256R1', '--x509certfile', pki.server['ecdsa-p256'].chainPath, '--x509keyfile', pki.server['ecdsa-p256'].keyPath], /IPv4.*done/);
    const c = await handshake(port);
    assert.equal(c.negotiated.helloRetry, true);
    assert.equal(c.getEphemeralKeyInfo()?.name, 'prime256v1');
    assert.match(await exchange(c, 'retried\n'), /retried/);
    c.destroy();
  });
});

const PYTHON_SERVER = `
import json, socket, ssl, sys
p = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(p['cert'], p['key'])
ctx.maximum_version = getattr(ssl.TLSVersion, p['max'])
ctx.set_alpn_protocols(['echo'])
srv = socket.create_server(('127.0.0.1', 0))
print('READY', srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
with ctx.wrap_socket(conn, server_side=True) as s:
    data = s.recv(1024)
    s.sendall(b'python:' + data + b' ' + s.version().encode() + b' ' + (s.selected_alpn_protocol() or '-').encode())
    s.unwrap()
`;

describe('client vs a Python ssl server', () => {
  for (const max of ['TLSv1_3', 'TLSv1_2'] as const) {
    for (const kt of ['ecdsa-p256', 'rsa-2048'] as const) {
      it(`${max}, ${kt}: data, ALPN and the server's close_notify`, async () => {
        const py = await start('python3', ['-c', PYTHON_SERVER, JSON.stringify({ cert: pki.server[kt].chainPath, key: pki.server[kt].keyPath, max })], /^READY \d+/m);
        const port = Number(/^READY (\d+)/m.exec(py.output())![1]);
        const c = await handshake(port, { ALPNProtocols: ['echo'] });
        const ended = once(c, 'end');
        const version = max === 'TLSv1_3' ? 'TLSv1.3' : 'TLSv1.2';
        assert.equal(await exchange(c, 'hi', 'echo'), `python:hi ${version} echo`);
        await ended;
        assert.equal(c.peerSentCloseNotify, true);
        c.destroy();
      });
    }
  }
});

describe('client vs openssl s_server: KeyUpdate from the server', () => {
  async function until(what: RegExp, output: () => string): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!what.test(output())) {
      if (Date.now() > deadline) throw new Error(`never saw ${what}:\n${output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('the server updates and asks us to ("K"): we answer with our own KeyUpdate, and data flows both ways after', async () => {
    // -msg logs every handshake message: ">>>" sent by s_server, "<<<" received from us.
    const s = await sServer(['-cert', pki.server['ecdsa-p256'].chainPath, '-key', pki.server['ecdsa-p256'].keyPath, '-tls1_3', '-msg']);
    const c = await handshake(s.port);
    c.write('before\n');
    await until(/before/, s.output);
    s.child.stdin!.write('K\n');
    await until(/>>> .*KeyUpdate/, s.output);
    // s_server relays its stdin to us: data under its new key reaches us.
    const got = exchange(c, '', 'from server');
    s.child.stdin!.write('from server\n');
    assert.match(await got, /from server/);
    await until(/<<< .*KeyUpdate/, s.output);
    // Ours, under our updated key, reaches it.
    c.write('after\n');
    await until(/after/, s.output);
    c.destroy();
  });
});
