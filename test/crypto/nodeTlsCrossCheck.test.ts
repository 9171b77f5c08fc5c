// Cross-checks the TLS 1.2 PRF, key block, Finished, extended master secret, PSK premaster,
// record protection and both exporters against a real peer: node:tls (OpenSSL) talking
// to itself over loopback through a small capturing proxy. The client's keylog gives the
// master secret (1.2) or traffic/exporter secrets (1.3); the captured bytes give the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { constants, randomBytes } from 'node:crypto';
import {
  prf12,
  pskPremaster,
  tls12ExtendedMasterSecret,
  tls12KeyBlock,
  tls12MasterSecret,
  tls12VerifyData,
  type Prf12Hash,
} from '../../src/tls/crypto/prf12.js';
import { tls13ExportKeyingMaterial, tls13TrafficKeys } from '../../src/tls/crypto/keySchedule13.js';
import { RecordAead } from '../../src/tls/crypto/aead.js';
import { Transcript } from '../../src/tls/crypto/transcript.js';
import type { AeadName } from '../../src/tls/crypto/cipherSuites.js';

interface Capture {
  c2s: Buffer;
  s2c: Buffer;
  keylog: Map<string, Buffer>;
  received: Buffer;
  ekm: Buffer;
}

const EKM_LABEL = 'EXPORTER-keyward-test';
const EKM_CONTEXT = Buffer.from('some context');
const APP_DATA = Buffer.from('hello from node:tls');
const PSK = randomBytes(32);
// OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (bit 0), which node:crypto's constants do not list.
const SSL_OP_NO_EXTENDED_MASTER_SECRET = 1;

/** One PSK connection node:tls -> proxy -> node:tls; everything closed before it resolves. */
async function connectThroughProxy(version: 'TLSv1.2' | 'TLSv1.3', cipher: string, noEms = false): Promise<Capture> {
  const psk = PSK;
  const tlsOpts = {
    minVersion: version,
    maxVersion: version,
    ciphers: cipher, // node:tls takes TLS 1.3 suite names here too
  };
  const server = tls.createServer(
    { ...tlsOpts, pskCallback: () => psk, secureOptions: constants.SSL_OP_NO_TICKET | (noEms ? SSL_OP_NO_EXTENDED_MASTER_SECRET : 0) },
    (s) => {
      s.on('error', () => undefined);
      s.end(APP_DATA);
    },
  );
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  const proxy = net.createServer((down) => {
    const up = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    down.on('data', (d: Buffer) => {
      c2s.push(d);
      up.write(d);
    });
    up.on('data', (d: Buffer) => {
      s2c.push(d);
      down.write(d);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<Capture>((resolve, reject) => {
      const keylog = new Map<string, Buffer>();
      const received: Buffer[] = [];
      let ekm: Buffer | undefined;
      const client = tls.connect({
        ...tlsOpts,
        host: '127.0.0.1',
        port: (proxy.address() as net.AddressInfo).port,
        pskCallback: () => ({ psk, identity: 'keyward-test' }),
        checkServerIdentity: () => undefined,
      });
      client.on('keylog', (line: Buffer) => {
        const [name, , secret] = line.toString('latin1').trim().split(' ');
        keylog.set(name, Buffer.from(secret, 'hex'));
      });
      client.on('secureConnect', () => {
        ekm = client.exportKeyingMaterial(42, EKM_LABEL, EKM_CONTEXT);
      });
      client.on('data', (d: Buffer) => received.push(d));
      client.on('error', reject);
      client.on('close', () => {
        if (ekm === undefined) return reject(new Error('no handshake'));
        resolve({ c2s: Buffer.concat(c2s), s2c: Buffer.concat(s2c), keylog, received: Buffer.concat(received), ekm });
      });
    });
  } finally {
    await new Promise<void>((r) => proxy.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  }
}

interface TlsRecord {
  type: number;
  header: Buffer;
  fragment: Buffer;
}

function records(stream: Buffer): TlsRecord[] {
  const out: TlsRecord[] = [];
  let o = 0;
  while (o + 5 <= stream.length) {
    const len = stream.readUInt16BE(o + 3);
    assert.ok(o + 5 + len <= stream.length, 'truncated record in capture');
    out.push({ type: stream[o], header: stream.subarray(o, o + 5), fragment: stream.subarray(o + 5, o + 5 + len) });
    o += 5 + len;
  }
  assert.equal(o, stream.length);
  return out;
}

/** Handshake messages (with headers) from the plaintext handshake records before ChangeCipherSpec. */
function plaintextHandshake(recs: TlsRecord[]): Buffer[] {
  const parts: Buffer[] = [];
  for (const r of recs) {
    if (r.type === 20) break;
    if (r.type === 22) parts.push(r.fragment);
  }
  const all = Buffer.concat(parts);
  const msgs: Buffer[] = [];
  for (let o = 0; o < all.length; ) {
    const len = all.readUIntBE(o + 1, 3);
    msgs.push(all.subarray(o, o + 4 + len));
    o += 4 + len;
  }
  return msgs;
}

/** Encrypted records after ChangeCipherSpec. */
function protectedRecords(recs: TlsRecord[]): TlsRecord[] {
  const i = recs.findIndex((r) => r.type === 20);
  return recs.slice(i + 1).filter((r) => r.type !== 20);
}

function hasExtension(serverHello: Buffer, ext: number): boolean {
  let o = 4 + 2 + 32;
  o += 1 + serverHello[o]; // session id
  o += 2 + 1; // cipher suite, compression
  const end = o + 2 + serverHello.readUInt16BE(o);
  for (o += 2; o < end; o += 4 + serverHello.readUInt16BE(o + 2)) {
    if (serverHello.readUInt16BE(o) === ext) return true;
  }
  return false;
}

function aad12(seq: number, type: number, length: number): Buffer {
  const a = Buffer.alloc(13);
  a.writeUIntBE(seq, 2, 6);
  a[8] = type;
  a.writeUInt16BE(0x0303, 9);
  a.writeUInt16BE(length, 11);
  return a;
}

function open12(aead: RecordAead, seq: number, r: TlsRecord): Buffer {
  const len = r.fragment.length - aead.explicitNonceLength - aead.tagLength;
  const pt = aead.open(seq, aad12(seq, r.type, len), r.fragment);
  assert.ok(pt, `record ${seq} (type ${r.type}) failed to open`);
  return pt;
}

const tls12Cases: { cipher: string; hash: Prf12Hash; aead: AeadName; ems: boolean }[] = [
  { cipher: 'PSK-AES128-GCM-SHA256', hash: 'sha256', aead: 'aes-128-gcm', ems: true },
  { cipher: 'PSK-AES256-GCM-SHA384', hash: 'sha384', aead: 'aes-256-gcm', ems: true },
  { cipher: 'PSK-CHACHA20-POLY1305', hash: 'sha256', aead: 'chacha20-poly1305', ems: true },
  { cipher: 'PSK-AES128-GCM-SHA256', hash: 'sha256', aead: 'aes-128-gcm', ems: false },
];

for (const { cipher, hash, aead, ems } of tls12Cases) {
  const what = ems ? 'extended master secret' : 'classic master secret';
  test(`TLS 1.2 ${cipher} (${what}): master secret, key block, records, Finished, exporter match OpenSSL`, { timeout: 15_000 }, async () => {
    const cap = await connectThroughProxy('TLSv1.2', cipher, !ems);
    const master = cap.keylog.get('CLIENT_RANDOM');
    assert.ok(master && master.length === 48, 'keylog has the master secret');
    const c2s = records(cap.c2s);
    const s2c = records(cap.s2c);
    const clientMsgs = plaintextHandshake(c2s); // ClientHello, ClientKeyExchange
    const serverMsgs = plaintextHandshake(s2c); // ServerHello, ServerHelloDone
    assert.deepEqual([...clientMsgs.map((m) => m[0])], [1, 16]);
    assert.deepEqual([...serverMsgs.map((m) => m[0])], [2, 14]);
    const [clientHello, clientKeyExchange] = clientMsgs;
    const [serverHello, serverHelloDone] = serverMsgs;
    const clientRandom = clientHello.subarray(6, 38);
    const serverRandom = serverHello.subarray(6, 38);

    const t = new Transcript(hash);
    for (const m of [clientHello, serverHello, serverHelloDone, clientKeyExchange]) t.update(m);
    const sessionHash = t.current();
    const premaster = pskPremaster(PSK, null);
    assert.equal(hasExtension(serverHello, 0x0017), ems, 'extended_master_secret negotiated as configured');
    const expected = ems
      ? tls12ExtendedMasterSecret(hash, premaster, sessionHash)
      : tls12MasterSecret(hash, premaster, clientRandom, serverRandom);
    assert.deepEqual(expected, master);

    const kb = tls12KeyBlock(hash, master, clientRandom, serverRandom, aead);
    const clientAead = new RecordAead(aead, kb.clientKey, kb.clientIv, 'tls12');
    const serverAead = new RecordAead(aead, kb.serverKey, kb.serverIv, 'tls12');
    assert.equal(clientAead.explicitNonceLength, aead === 'chacha20-poly1305' ? 0 : 8);

    const clientFinished = open12(clientAead, 0, protectedRecords(c2s)[0]);
    assert.deepEqual(clientFinished.subarray(0, 4), Buffer.of(20, 0, 0, 12));
    assert.deepEqual(clientFinished.subarray(4), tls12VerifyData(hash, master, 'client finished', sessionHash));
    t.update(clientFinished);

    const [serverFinRec, appRec] = protectedRecords(s2c);
    const serverFinished = open12(serverAead, 0, serverFinRec);
    assert.deepEqual(serverFinished.subarray(4), tls12VerifyData(hash, master, 'server finished', t.current()));
    assert.deepEqual(open12(serverAead, 1, appRec), APP_DATA);
    assert.deepEqual(cap.received, APP_DATA);

    // RFC 5705 with a context: PRF(master, label, client_random || server_random || uint16 len || context).
    const seed = Buffer.concat([clientRandom, serverRandom, Buffer.of(0, EKM_CONTEXT.length), EKM_CONTEXT]);
    assert.deepEqual(prf12(hash, master, EKM_LABEL, seed, 42), cap.ekm);
  });
}

test('TLS 1.3 TLS_AES_128_GCM_SHA256: traffic keys open OpenSSL records, exporter matches', { timeout: 15_000 }, async () => {
  const cap = await connectThroughProxy('TLSv1.3', 'TLS_AES_128_GCM_SHA256');
  const exporter = cap.keylog.get('EXPORTER_SECRET');
  const sHs = cap.keylog.get('SERVER_HANDSHAKE_TRAFFIC_SECRET');
  const sAp = cap.keylog.get('SERVER_TRAFFIC_SECRET_0');
  assert.ok(exporter && sHs && sAp, 'keylog has the TLS 1.3 secrets');
  assert.deepEqual(tls13ExportKeyingMaterial('sha256', exporter, EKM_LABEL, EKM_CONTEXT, 42), cap.ekm);

  // Walk the server's protected records: handshake keys until its Finished, then application keys.
  const hsKeys = tls13TrafficKeys('sha256', sHs, 'aes-128-gcm');
  const apKeys = tls13TrafficKeys('sha256', sAp, 'aes-128-gcm');
  let aead = new RecordAead('aes-128-gcm', hsKeys.key, hsKeys.iv, 'tls13');
  let seq = 0;
  let inHandshake = true;
  const handshakeTypes: number[] = [];
  const appData: Buffer[] = [];
  for (const r of records(cap.s2c).filter((x) => x.type === 23)) {
    const inner = aead.open(seq++, r.header, r.fragment);
    assert.ok(inner, 'record opens');
    let end = inner.length - 1;
    while (end >= 0 && inner[end] === 0) end--;
    const type = inner[end];
    const content = inner.subarray(0, end);
    if (type === 22) {
      for (let o = 0; o < content.length; o += 4 + content.readUIntBE(o + 1, 3)) handshakeTypes.push(content[o]);
      if (inHandshake && handshakeTypes.includes(20)) {
        inHandshake = false;
        aead = new RecordAead('aes-128-gcm', apKeys.key, apKeys.iv, 'tls13');
        seq = 0;
      }
    } else if (type === 23) {
      appData.push(content);
    }
  }
  assert.deepEqual(handshakeTypes.slice(0, 2), [8, 20]); // EncryptedExtensions, Finished (PSK: no certificate)
  assert.deepEqual(Buffer.concat(appData), APP_DATA);
});
