/**
 * X25519MLKEM768 against OpenSSL 3.5 as Node 24's node:tls uses it, at the key-exchange
 * level (the engine's own handshakes with it are the engine's tests): keyward's offer as a
 * raw TLS 1.3 client to a node:tls server, and keyward's accept as a raw server to a
 * node:tls client. A wrong shared secret shows as a record that does not decrypt. On Node
 * 20 (whose OpenSSL has no ML-KEM) the node:tls peer runs on the pinned Node 24, so the
 * JS ML-KEM is checked against OpenSSL too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { NamedGroup, acceptKeyShare, offerKeyShare } from '../../src/tls/crypto/groups.js';
import { tls13EarlySecret, tls13HandshakeSecrets, tls13RecordAead } from '../../src/tls/crypto/keySchedule13.js';
import { parseClientHello } from '../../src/tls/wire/clientHello.js';
import { parseServerHello, encodeServerHello } from '../../src/tls/wire/serverHello.js';
import { extKeyShareServer, extSupportedVersionsServer } from '../../src/tls/wire/handshake.js';
import { clientHelloBody, ext, handshakeMsg, nextRecord, record } from '../support/clientHelloBuilder.js';
import { getPki } from '../support/pki.js';

const G = NamedGroup.X25519MLKEM768;
const TLS_AES_128_GCM_SHA256 = 0x1301;

function thisNodeSpeaksHybrid(): boolean {
  try {
    createSecureContext({ ecdhCurve: 'X25519MLKEM768' });
    return true;
  } catch {
    return false;
  }
}

/** A Node whose node:tls has X25519MLKEM768: this one, or the pinned Node 24 (scripts/node24.sh). */
const peerNode = thisNodeSpeaksHybrid() ? process.execPath : execFileSync('bash', ['scripts/node24.sh'], { encoding: 'utf8' }).trim().split('\n').pop()!;

/** Runs `script` (CommonJS) on the peer Node; resolves with its first stdout line as JSON. */
function peer(script: string, env: Record<string, string>): { child: ChildProcess; firstLine: Promise<Record<string, unknown>> } {
  const child = spawn(peerNode, ['-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const firstLine = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
    });
    child.on('exit', (code) => reject(new Error(`peer exited (${code}) before answering`)));
  });
  return { child, firstLine };
}

/** Reads whole TLS records from `sock` until `done` says so (leaving the socket open). */
function readRecords(sock: Socket, done: (records: { type: number; header: Buffer; body: Buffer }[]) => boolean) {
  const records: { type: number; header: Buffer; body: Buffer }[] = [];
  let buf = Buffer.alloc(0);
  return new Promise<typeof records>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let r = nextRecord(buf); r; r = nextRecord(buf)) {
        records.push({ type: r.type, header: Buffer.from(r.header), body: Buffer.from(r.body) });
        buf = r.rest;
      }
      if (done(records)) {
        sock.off('data', onData);
        resolve(records);
      }
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error(`peer closed after ${records.length} records`)));
  });
}

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

test('keyward offers X25519MLKEM768 to a node:tls server (OpenSSL 3.5): the server handshake records decrypt', { timeout: 30_000 }, async () => {
  const pki = await getPki();
  const cert = pki.server['ecdsa-p256'];
  const server = peer(
    `const tls = require('tls'); const fs = require('fs');
     const s = tls.createServer({ key: fs.readFileSync(process.env.KEY), cert: fs.readFileSync(process.env.CERT), ecdhCurve: 'X25519MLKEM768', minVersion: 'TLSv1.3' }, (c) => c.end());
     s.on('tlsClientError', () => {});
     s.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: s.address().port })));`,
    { KEY: cert.keyPath, CERT: cert.chainPath },
  );
  try {
    const { port } = (await server.firstLine) as { port: number };
    const offer = offerKeyShare(G);
    const ch = handshakeMsg(
      1,
      clientHelloBody({
        cipherSuites: [TLS_AES_128_GCM_SHA256],
        extensions: [
          ext.serverName('localhost'),
          ext.supportedGroups([G]),
          ext.signatureAlgorithms([0x0403, 0x0804]),
          ext.supportedVersions([0x0304]),
          ext.keyShare([{ group: G, key: offer.publicKey }]),
        ],
      }),
    );
    const sock = connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.write(record(22, ch, 0x0301));
    const records = await readRecords(sock, (rs) => rs.some((r) => r.type === 23));
    sock.destroy();
    const shRecord = records.find((r) => r.type === 22)!;
    assert.ok(shRecord, 'a ServerHello came back');
    const sh = parseServerHello(shRecord.body.subarray(4));
    assert.equal(sh.keyShare?.group, G, 'the server chose X25519MLKEM768');
    assert.equal(sh.keyShare.keyExchange.length, 1120);
    const secret = offer.complete(sh.keyShare.keyExchange);
    const hs = tls13HandshakeSecrets('sha256', tls13EarlySecret('sha256'), secret, sha256(ch, shRecord.body));
    const first = records.find((r) => r.type === 23)!;
    const plain = tls13RecordAead('sha256', 'aes-128-gcm', hs.serverHandshakeTraffic).open(0, first.header, first.body);
    assert.ok(plain, 'the first protected record decrypts under keyward\'s shared secret');
    let end = plain.length - 1;
    while (plain[end] === 0) end--;
    assert.equal(plain[end], 22, 'it holds handshake messages');
    assert.equal(plain[0], 8, 'the first is EncryptedExtensions');
  } finally {
    server.child.kill();
  }
});

test('a node:tls client (OpenSSL 3.5) offering X25519MLKEM768: keyward accepts, and the client decrypts the reply', { timeout: 30_000 }, async () => {
  const raw = createServer();
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  const port = (raw.address() as { port: number }).port;
  const client = peer(
    `const tls = require('tls');
     const s = tls.connect({ port: Number(process.env.PORT), host: '127.0.0.1', servername: 'localhost', ecdhCurve: 'X25519MLKEM768', minVersion: 'TLSv1.3', rejectUnauthorized: false });
     s.on('error', (e) => { console.log(JSON.stringify({ code: e.code, message: e.message })); process.exit(0); });
     s.on('secureConnect', () => { console.log(JSON.stringify({ code: 'connected' })); process.exit(0); });`,
    { PORT: String(port) },
  );
  try {
    const [sock] = (await once(raw, 'connection')) as [Socket];
    const [chRecord] = await readRecords(sock, (rs) => rs.length > 0);
    const chMsg = chRecord.body;
    const ch = parseClientHello(chMsg.subarray(4));
    const share = ch.keyShares?.find((s) => s.group === G);
    assert.ok(share, 'the node:tls client sent an X25519MLKEM768 share');
    assert.equal(share.keyExchange.length, 1216);
    const accepted = acceptKeyShare(G, share.keyExchange);
    const sh = encodeServerHello({
      random: Buffer.alloc(32, 0x5e),
      sessionId: ch.sessionId,
      cipherSuite: TLS_AES_128_GCM_SHA256,
      extensions: [extKeyShareServer(G, accepted.publicKey), extSupportedVersionsServer(0x0304)],
    });
    const hs = tls13HandshakeSecrets('sha256', tls13EarlySecret('sha256'), accepted.sharedSecret, sha256(chMsg, sh));
    // A protected access_denied alert: the client reports that alert only if it decrypted it.
    const inner = Buffer.of(2, 49, 21);
    const header = Buffer.of(23, 3, 3, 0, inner.length + 16);
    const protectedAlert = tls13RecordAead('sha256', 'aes-128-gcm', hs.serverHandshakeTraffic).seal(0, header, [inner], header);
    sock.write(Buffer.concat([record(22, sh), protectedAlert]));
    const result = await client.firstLine;
    sock.destroy();
    assert.equal(result.code, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', `the client decrypted keyward's record (got ${JSON.stringify(result)})`);
  } finally {
    client.child.kill();
    raw.close();
  }
});
