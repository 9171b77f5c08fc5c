import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { handshakeMsg, record } from '../support/clientHelloBuilder.js';
import { alertSent, feed, harness, records } from '../support/engineHarness.js';
import { MiniClient } from '../support/miniClient.js';
import { ext } from '../support/clientHelloBuilder.js';

async function connected(extra: Parameters<typeof harness>[0] = {}, client = new MiniClient()) {
  const h = await harness(extra);
  const conn = new TlsServerConnection(h.config);
  client.receive(feed(conn, client.clientHelloRecord(), h.privateKey).out);
  assert.ok(client.serverFinished, 'server sent its Finished');
  const done = feed(conn, client.finishedRecord(), h.privateKey);
  assert.ok(done.events.some((e) => e.type === 'handshakeComplete'));
  return { h, conn, client };
}

function dataOf(events: { type: string }[]): Buffer {
  return Buffer.concat(events.filter((e): e is { type: 'data'; data: Uint8Array } => e.type === 'data').map((e) => Buffer.from(e.data)));
}

test('full handshake, then application data both ways', async () => {
  const { h, conn, client } = await connected();
  const step = feed(conn, client.protect(23, Buffer.from('ping')), h.privateKey);
  assert.equal(dataOf(step.events).toString(), 'ping');
  conn.write(Buffer.from('pong'));
  client.receive(conn.takeOutput());
  assert.equal(Buffer.concat(client.appData).toString(), 'pong');
  assert.equal(conn.info.version, 'TLSv1.3');
});

test('ClientHello split one byte per record, and all records in one chunk', async () => {
  for (const oneChunk of [false, true]) {
    const h = await harness();
    const conn = new TlsServerConnection(h.config);
    const c = new MiniClient();
    const ch = Buffer.from(c.clientHelloRecord()).subarray(5);
    const recs = [...ch].map((b) => record(22, Uint8Array.of(b), 0x0301));
    const step = feed(conn, oneChunk ? [Buffer.concat(recs)] : recs, h.privateKey);
    c.receive(step.out);
    assert.ok(c.serverFinished);
    assert.ok(feed(conn, c.finishedRecord(), h.privateKey).events.some((e) => e.type === 'handshakeComplete'));
  }
});

test('record bytes delivered one byte at a time', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  const bytes = Buffer.from(c.clientHelloRecord());
  const step = feed(conn, [...bytes].map((b) => Uint8Array.of(b)), h.privateKey);
  c.receive(step.out);
  assert.ok(c.serverFinished);
});

test('server flight: ServerHello, one CCS (compat mode), encrypted EE..Finished', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  const recs = records(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  assert.deepEqual(recs.map((r) => r.type).slice(0, 3), [22, 20, 23]);
  c.receive(feed(conn, [], h.privateKey).out);
});

test('padding in protected records is accepted', async () => {
  const { h, conn, client } = await connected();
  const step = feed(conn, client.protect(23, Buffer.from('padded'), 1000), h.privateKey);
  assert.equal(dataOf(step.events).toString(), 'padded');
});

test('handshake messages coalesced and fragmented in protected records (KeyUpdate split)', async () => {
  const { h, conn, client } = await connected();
  const ku = handshakeMsg(24, Uint8Array.of(0));
  // Two fragments of one KeyUpdate in two records.
  feed(conn, client.protect(22, ku.subarray(0, 2)), h.privateKey);
  const rec2 = client.protect(22, ku.subarray(2));
  // The client switches keys after the whole message.
  const step = feed(conn, rec2, h.privateKey);
  assert.equal(alertSent(step.events), undefined);
});

test('KeyUpdate: update_requested is answered and both directions keep working', async () => {
  const { h, conn, client } = await connected();
  const step = feed(conn, client.keyUpdateRecord(true), h.privateKey);
  assert.equal(alertSent(step.events), undefined);
  client.receive(step.out);
  assert.ok(client.serverMessages.some((m) => m.type === 24), 'server answered with its own KeyUpdate');
  const step2 = feed(conn, client.protect(23, Buffer.from('after update')), h.privateKey);
  assert.equal(dataOf(step2.events).toString(), 'after update');
  conn.write(Buffer.from('server after update'));
  client.receive(conn.takeOutput());
  assert.equal(Buffer.concat(client.appData).toString(), 'server after update');
});

test('KeyUpdate initiated by the server', async () => {
  const { conn, client } = await connected();
  conn.keyUpdate(false);
  conn.write(Buffer.from('x'));
  client.receive(conn.takeOutput());
  assert.equal(Buffer.concat(client.appData).toString(), 'x');
});

test('close_notify from the client ends the stream; ours is sent on close()', async () => {
  const { h, conn, client } = await connected();
  const step = feed(conn, client.protect(21, Uint8Array.of(1, 0)), h.privateKey);
  assert.ok(step.events.some((e) => e.type === 'peerClosed'));
  conn.close();
  client.receive(conn.takeOutput());
  assert.deepEqual(client.alerts, [0]);
});

test('large writes are split into records no larger than the peer record_size_limit', async () => {
  const { conn, client } = await connected({}, new MiniClient({ extraExtensions: [ext.recordSizeLimit(256)] }));
  conn.write(Buffer.alloc(5000, 0x61));
  const out = conn.takeOutput();
  for (const r of records(out.map((b) => Buffer.from(b)))) assert.ok(r.body.length <= 255 + 1 + 16, `record of ${r.body.length} bytes`);
  client.receive(out);
  assert.equal(Buffer.concat(client.appData).length, 5000);
});

test('handshake waits on the key: input is buffered, not processed, until the signature arrives', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  conn.receive(c.clientHelloRecord());
  const ev = conn.takeEvents();
  const op = ev.find((e) => e.type === 'keyOperation');
  assert.ok(op && op.type === 'keyOperation');
  assert.equal(op.request.context.purpose, 'tls13-server-certificate-verify');
  assert.equal(op.request.context.serverName, 'localhost');
  // A client CCS arrives meanwhile.
  conn.receive(record(20, Uint8Array.of(1)));
  assert.equal(conn.takeEvents().length, 0);
  const step = feed(conn, [], h.privateKey);
  assert.equal(step.events.length, 0);
  conn.failKeyOperation(op.request.id, new Error('key holder down'));
  assert.equal(alertSent(conn.takeEvents()), 80);
});
