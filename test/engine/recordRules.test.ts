/**
 * Record-level rules of RFC 8446 5 that conformance suites probe (issue 16): empty alerts,
 * handshake messages interleaved with other records, and hellos below TLS 1.0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription as A, alertName } from '../../src/tls/wire/alerts.js';
import { encodeKeyUpdate } from '../../src/tls/wire/messages13.js';
import { clientHelloRecord, record } from '../support/clientHelloBuilder.js';
import { alertSent, feed, harness } from '../support/engineHarness.js';
import { MiniClient } from '../support/miniClient.js';

async function afterServerFlight() {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const client = new MiniClient();
  client.receive(feed(conn, client.clientHelloRecord(), h.privateKey).out);
  assert.ok(client.serverFinished);
  return { h, conn, client };
}

async function connected() {
  const c = await afterServerFlight();
  const done = feed(c.conn, c.client.finishedRecord(), c.h.privateKey);
  assert.ok(done.events.some((e) => e.type === 'handshakeComplete'));
  return c;
}

function assertAlert(events: Parameters<typeof alertSent>[0], alert: A, what: string): void {
  const got = alertSent(events);
  assert.equal(got, alert, `${what}: expected ${alertName(alert)}, got ${got === undefined ? 'no alert' : alertName(got)}`);
}

test('an empty alert record is unexpected_message: in the clear, under handshake keys and application keys, padded or not', async () => {
  const h = await harness();
  assertAlert(feed(new TlsServerConnection(h.config), record(21, new Uint8Array(0)), h.privateKey).events, A.unexpected_message, 'plaintext');
  for (const padding of [0, 20]) {
    const hs = await afterServerFlight();
    assertAlert(feed(hs.conn, hs.client.protectUnderHandshakeKey(21, new Uint8Array(0), padding), hs.h.privateKey).events, A.unexpected_message, `handshake keys, ${padding} padding`);
    const app = await connected();
    assertAlert(feed(app.conn, app.client.protect(21, new Uint8Array(0), padding), app.h.privateKey).events, A.unexpected_message, `application keys, ${padding} padding`);
  }
});

test('a one-byte or three-byte alert stays decode_error', async () => {
  for (const body of [Uint8Array.of(2), Uint8Array.of(2, 10, 0)]) {
    const app = await connected();
    assertAlert(feed(app.conn, app.client.protect(21, body), app.h.privateKey).events, A.decode_error, `${body.length} bytes`);
  }
});

test('a KeyUpdate split across records with application data between the fragments is unexpected_message', async () => {
  const { h, conn, client } = await connected();
  const ku = encodeKeyUpdate(false);
  const step = feed(conn, [client.protect(22, ku.subarray(0, 2)), client.protect(23, Buffer.from('between')), client.protect(22, ku.subarray(2))], h.privateKey);
  assertAlert(step.events, A.unexpected_message, 'interleaved');
  assert.ok(!step.events.some((e) => e.type === 'data'), 'the interleaved data is not delivered');
});

test('a KeyUpdate split across two handshake records is still read', async () => {
  const { h, conn, client } = await connected();
  const ku = encodeKeyUpdate(false);
  const parts = [client.protect(22, ku.subarray(0, 2)), client.protect(22, ku.subarray(2))];
  // The client's key changes after the whole message, as the server's read key does.
  client.keyUpdateRecord(false);
  const step = feed(conn, [...parts, client.protect(23, Buffer.from('after'))], h.privateKey);
  assert.equal(alertSent(step.events), undefined);
  assert.equal(Buffer.concat(step.events.filter((e): e is { type: 'data'; data: Uint8Array } => e.type === 'data').map((e) => Buffer.from(e.data))).toString(), 'after');
});

test('a ClientHello whose legacy_version is below TLS 1.0 is protocol_version, supported_versions or not', async () => {
  for (const legacyVersion of [0x0000, 0x0001, 0x0100, 0x0200, 0x0300, 0x02ff]) {
    const h = await harness();
    assertAlert(feed(new TlsServerConnection(h.config), clientHelloRecord({ legacyVersion }), h.privateKey).events, A.protocol_version, `0x${legacyVersion.toString(16)}`);
  }
  // TLS 1.0 and 1.1 as legacy_version with supported_versions are fine (RFC 8446 4.1.2 allows them).
  for (const legacyVersion of [0x0301, 0x0302]) {
    const h = await harness();
    assert.equal(alertSent(feed(new TlsServerConnection(h.config), clientHelloRecord({ legacyVersion }), h.privateKey).events), undefined);
  }
});
