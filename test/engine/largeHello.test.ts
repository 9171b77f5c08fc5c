/**
 * Large but legal ClientHellos (issue 16): the server answers them in both versions, however
 * they are split into records, and refuses only what the protocol itself forbids.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription as A } from '../../src/tls/wire/alerts.js';
import { MAX_CLIENT_HELLO_BODY } from '../../src/tls/wire/limits.js';
import { clientHelloBody, defaultExtensions, ext, handshakeMsg, record } from '../support/clientHelloBuilder.js';
import { alertSent, feed, harness, records } from '../support/engineHarness.js';

/** Splits a handshake message into handshake records of `size` bytes. */
function inRecords(message: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < message.length; i += size) out.push(record(22, message.subarray(i, i + size)));
  return out;
}

/** Feeds the hello (as one record stream) and returns the first handshake message type sent back, or the alert. */
async function answer(body: Uint8Array, recordSize = 16_384): Promise<{ firstType?: number; alert?: number }> {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const step = feed(conn, Buffer.concat(inRecords(handshakeMsg(1, body), recordSize)), h.privateKey);
  const alert = alertSent(step.events);
  if (alert !== undefined) return { alert };
  const hs = records(step.out).find((r) => r.type === 22);
  return { firstType: hs?.body[0] };
}

/** Unassigned code points (not in any table keyward knows) from `base`, distinct. */
function unknownCodes(n: number, base: number): number[] {
  return Array.from({ length: n }, (_, i) => base + i);
}

const TLS12_EXTENSIONS = [
  ext.serverName('localhost'),
  ext.supportedGroups([23]),
  ext.raw(11, [1, 0]), // ec_point_formats: uncompressed
];

test('32,715 signature algorithms (about 65 KB): TLS 1.3 and TLS 1.2 both answer with a ServerHello', async () => {
  const schemes = [...unknownCodes(32_714, 0x0a00).map((c) => c & 0xffff), 0x0403];
  const sigs = ext.signatureAlgorithms(schemes);
  const v13 = defaultExtensions().map((e) => (e.type === 13 ? sigs : e));
  assert.deepEqual(await answer(clientHelloBody({ extensions: v13 })), { firstType: 2 });
  const v12 = clientHelloBody({ cipherSuites: [0xc02b], extensions: [...TLS12_EXTENSIONS, sigs] });
  assert.deepEqual(await answer(v12), { firstType: 2 });
});

test('thousands of unknown extensions, empty or with payloads, are ignored', async () => {
  const unknown = unknownCodes(6_000, 0x4000).map((t, i) => ext.raw(t, i % 2 === 0 ? [] : [1, 2, 3, 4]));
  assert.deepEqual(await answer(clientHelloBody({ extensions: [...unknown, ...defaultExtensions()] })), { firstType: 2 });
});

test('about 11,000 cipher suites, one of them known', async () => {
  const suites = [...unknownCodes(11_000, 0x2000), 0x1301];
  assert.deepEqual(await answer(clientHelloBody({ cipherSuites: suites })), { firstType: 2 });
});

test('a 65 KB extension in a hello split over many small records (1-byte and 7-byte fragments)', async () => {
  const big = ext.raw(0x7a7a, new Uint8Array(65_000).fill(0x42));
  const body = clientHelloBody({ extensions: [big, ...defaultExtensions()] });
  for (const size of [7, 1]) assert.deepEqual(await answer(body, size), { firstType: 2 }, `${size}-byte records`);
});

test('the largest legal hello is read; a header claiming more than the protocol allows is decode_error', async () => {
  // 32,767 suites, 65,531 bytes of extensions: MAX_CLIENT_HELLO_BODY exactly.
  const h = await harness();
  const over = new TlsServerConnection(h.config);
  const len = MAX_CLIENT_HELLO_BODY + 1;
  const step = feed(over, record(22, Uint8Array.of(1, len >> 16, (len >> 8) & 0xff, len & 0xff)), h.privateKey);
  assert.equal(alertSent(step.events), A.decode_error);
  const suites = [...unknownCodes(32_766, 0x2000), 0x1301];
  const filler = ext.raw(0x7a7b, new Uint8Array(65_531 - 4 - defaultExtensions().reduce((n, e) => n + 4 + e.data.length, 0)));
  const body = clientHelloBody({ cipherSuites: suites, sessionId: new Uint8Array(32), extensions: [filler, ...defaultExtensions()] });
  assert.ok(body.length > 131_000, `a hello of ${body.length} bytes`);
  assert.deepEqual(await answer(body), { firstType: 2 });
});
