import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription as A, alertName } from '../../src/tls/wire/alerts.js';
import { NamedGroup } from '../../src/tls/crypto/groups.js';
import { clientHelloBody, clientHelloRecord, defaultExtensions, ext, handshakeMsg, record, x25519Share } from '../support/clientHelloBuilder.js';
import { alertSent, feed, harness, records } from '../support/engineHarness.js';
import { MiniClient } from '../support/miniClient.js';
import { heldElsewhere } from '../support/heldElsewhere.js';
import { LocalKey } from '../../src/keys/localKey.js';
import type { KeyObject } from 'node:crypto';
import type { ServerConfigInput } from '../../src/tls/engine/config.js';

async function expectAlert(input: Uint8Array | Uint8Array[], alert: A, overrides: Partial<ServerConfigInput> = {}): Promise<void> {
  await recordTypesBeforeAlert(input, alert, overrides);
}

/** Feeds `input`, checks the connection ends with `alert`, and returns the types of the records written. */
async function recordTypesBeforeAlert(input: Uint8Array | Uint8Array[], alert: A, overrides: Partial<ServerConfigInput> = {}): Promise<number[]> {
  const h = await harness(overrides);
  const conn = new TlsServerConnection(h.config);
  const step = feed(conn, input, h.privateKey);
  assert.equal(alertSent(step.events), alert, `expected ${alertName(alert)}, got ${alertSent(step.events) === undefined ? 'no alert' : alertName(alertSent(step.events)!)}`);
  const last = records(step.out).at(-1);
  assert.ok(last, 'an alert record was written');
  assert.equal(conn.isClosed, true);
  // Before keys are set the alert is in the clear and can be read here.
  if (last.type === 21) assert.deepEqual([...last.body], [2, alert]);
  // Nothing happens after a fatal alert.
  conn.receive(clientHelloRecord());
  assert.equal(conn.takeOutput().length, 0);
  return records(step.out).map((r) => r.type);
}

/** A bad key share is found before anything is sent: the alert is the only record (no ServerHello first). */
async function expectAlertAlone(input: Uint8Array, alert: A): Promise<void> {
  assert.deepEqual(await recordTypesBeforeAlert(input, alert), [21]);
}

const noExt = (type: number) => defaultExtensions().filter((e) => e.type !== type);

test('records: unknown content type is unexpected_message', () => expectAlert(record(99, Uint8Array.of(1, 2, 3)), A.unexpected_message));
test('records: plaintext record over 2^14 is record_overflow', () => expectAlert(record(22, new Uint8Array((1 << 14) + 1)), A.record_overflow));
test('records: declared length over 2^14+2048 is record_overflow', () => expectAlert(Uint8Array.of(22, 3, 1, 0x48, 0x01), A.record_overflow));
test('records: record version not 3.x is decode_error', () => expectAlert(Uint8Array.of(22, 2, 0, 0, 4, 1, 0, 0, 0), A.decode_error));
test('records: plaintext HTTP is refused', () => expectAlert(Buffer.from('GET / HTTP/1.1\r\n\r\n'), A.unexpected_message));
test('records: zero-length handshake fragment is unexpected_message', () => expectAlert(record(22, new Uint8Array(0)), A.unexpected_message));
test('records: application data before the handshake is unexpected_message', () => expectAlert(record(23, Uint8Array.of(1, 2, 3)), A.unexpected_message));
test('records: alert of three bytes is decode_error', () => expectAlert(record(21, Uint8Array.of(1, 0, 0)), A.decode_error));
test('records: change_cipher_spec before ClientHello is unexpected_message', () => expectAlert(record(20, Uint8Array.of(1)), A.unexpected_message));
test('records: handshake message larger than the limit is refused (a Certificate: its size is the receiver\'s cap)', () =>
  expectAlert(record(22, Uint8Array.of(11, 0x01, 0x00, 0x01)), A.decode_error, { maxHandshakeMessage: 65536 }));

test('order: Finished as the first message is unexpected_message', () => expectAlert(record(22, handshakeMsg(20, new Uint8Array(32))), A.unexpected_message));
test('order: ClientHello followed by a second message in the same record is unexpected_message', () => {
  const ch = handshakeMsg(1, clientHelloBody());
  return expectAlert(record(22, Buffer.concat([ch, handshakeMsg(20, new Uint8Array(32))])), A.unexpected_message);
});

test('ClientHello: truncated body is decode_error', () => {
  const body = clientHelloBody();
  return expectAlert(record(22, handshakeMsg(1, body.subarray(0, body.length - 3))), A.decode_error);
});
test('ClientHello: trailing bytes are decode_error', () => expectAlert(record(22, handshakeMsg(1, Buffer.concat([clientHelloBody(), Buffer.of(0)]))), A.decode_error));
test('ClientHello: session id over 32 bytes is decode_error', () => expectAlert(clientHelloRecord({ sessionId: new Uint8Array(33) }), A.decode_error));
test('ClientHello: odd cipher suite list is decode_error', () => {
  const body = Buffer.from(clientHelloBody());
  body.writeUInt16BE(5, 2 + 32 + 1 + 32); // cipher_suites length
  return expectAlert(record(22, handshakeMsg(1, body)), A.decode_error);
});
test('ClientHello: duplicate extension is illegal_parameter', () =>
  expectAlert(clientHelloRecord({ extensions: [...defaultExtensions(), ext.supportedGroups([29])] }), A.illegal_parameter));
test('ClientHello: pre_shared_key not last is illegal_parameter', () =>
  expectAlert(clientHelloRecord({ extensions: [ext.raw(45, [1, 1]), ext.raw(41, [0, 0, 0, 0]), ...defaultExtensions()] }), A.illegal_parameter));
test('ClientHello: no signature_algorithms is missing_extension', () => expectAlert(clientHelloRecord({ extensions: noExt(13) }), A.missing_extension));
test('ClientHello: no key_share is missing_extension', () => expectAlert(clientHelloRecord({ extensions: noExt(51) }), A.missing_extension));
test('ClientHello: no supported_groups is missing_extension', () => expectAlert(clientHelloRecord({ extensions: noExt(10) }), A.missing_extension));
test('ClientHello: key share for a group not in supported_groups is illegal_parameter', () =>
  expectAlert(
    clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([23]), ext.keyShare([{ group: 29, key: x25519Share().publicKey }])] }),
    A.illegal_parameter,
  ));
test('ClientHello: malformed x25519 share is illegal_parameter', () =>
  expectAlertAlone(clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([{ group: 29, key: new Uint8Array(31).fill(1) }])] }), A.illegal_parameter));
test('ClientHello: all-zero x25519 share is illegal_parameter', () =>
  expectAlertAlone(clientHelloRecord({ extensions: [...noExt(51), ext.keyShare([{ group: 29, key: new Uint8Array(32) }])] }), A.illegal_parameter));
test('ClientHello: P-256 point not on the curve is illegal_parameter', () => {
  const bad = new Uint8Array(65).fill(3);
  bad[0] = 4;
  return expectAlertAlone(clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([23]), ext.keyShare([{ group: 23, key: bad }])] }), A.illegal_parameter);
});
test('ClientHello: compression other than null in TLS 1.3 is illegal_parameter', () => expectAlert(clientHelloRecord({ compression: [1, 0] }), A.illegal_parameter));
test('ClientHello: TLS 1.2 only on a TLS 1.3-only server is protocol_version', () =>
  expectAlert(clientHelloRecord({ extensions: [...noExt(43), ext.supportedVersions([0x0303])] }), A.protocol_version, { minVersion: 'TLSv1.3' }));
test('ClientHello: TLS 1.2 only with TLS 1.3 suites only is handshake_failure', () =>
  expectAlert(clientHelloRecord({ extensions: [...noExt(43), ext.supportedVersions([0x0303])] }), A.handshake_failure));
test('ClientHello: SSL 3.0 without supported_versions is protocol_version', () => expectAlert(clientHelloRecord({ legacyVersion: 0x0300, extensions: noExt(43) }), A.protocol_version));
test('ClientHello: TLS 1.0 without extensions is protocol_version', () => expectAlert(clientHelloRecord({ legacyVersion: 0x0301, extensions: undefined }), A.protocol_version));
test('ClientHello: no common cipher suite is handshake_failure', () => expectAlert(clientHelloRecord({ cipherSuites: [0xc02b, 0x009c] }), A.handshake_failure));
test('ClientHello: no common group (ffdhe8192, a GREASE value) is handshake_failure', () =>
  expectAlert(clientHelloRecord({ extensions: [...noExt(51).filter((e) => e.type !== 10), ext.supportedGroups([0x0104, 0x0a0a]), ext.keyShare([])] }), A.handshake_failure));
test('ClientHello: no common signature scheme is handshake_failure', () =>
  expectAlert(clientHelloRecord({ extensions: [...noExt(13), ext.signatureAlgorithms([0x0401, 0x0201])] }), A.handshake_failure));
test('ClientHello: no ALPN overlap is no_application_protocol', () =>
  expectAlert(clientHelloRecord({ extensions: [...defaultExtensions(), ext.alpn(['spdy/1'])] }), A.no_application_protocol, { alpnProtocols: ['h2'] }));
test('ClientHello: record_size_limit below 64 is illegal_parameter', () =>
  expectAlert(clientHelloRecord({ extensions: [...defaultExtensions(), ext.recordSizeLimit(10)] }), A.illegal_parameter));
test('ClientHello: SNI with a NUL byte is illegal_parameter', () =>
  expectAlert(clientHelloRecord({ extensions: [ext.serverName('a\0.localhost'), ...noExt(0)] }), A.illegal_parameter));
test('ClientHello: empty SNI list is decode_error', () => expectAlert(clientHelloRecord({ extensions: [ext.raw(0, [0, 0]), ...noExt(0)] }), A.decode_error));
test('ClientHello: unknown SNI with unknownServerName reject is unrecognized_name', () =>
  expectAlert(clientHelloRecord({ extensions: [ext.serverName('nope.example'), ...noExt(0)] }), A.unrecognized_name, { unknownServerName: 'reject' }));
test('ClientHello: unknown extensions are ignored', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const step = feed(conn, clientHelloRecord({ extensions: [ext.raw(0x1a1a, []), ...defaultExtensions(), ext.raw(0xfe00, [1, 2, 3])] }), h.privateKey);
  assert.equal(alertSent(step.events), undefined);
  assert.equal(records(step.out)[0].type, 22);
});

test('HelloRetryRequest: second ClientHello with changed cipher suites is illegal_parameter', async () => {
  const h = await harness({ groups: [NamedGroup.secp256r1] });
  const conn = new TlsServerConnection(h.config);
  const first = feed(conn, clientHelloRecord(), h.privateKey);
  assert.equal(alertSent(first.events), undefined);
  const p256 = (await import('../../src/tls/crypto/groups.js')).generateKeyExchange(NamedGroup.secp256r1).publicKey;
  const ch2 = clientHelloRecord({ cipherSuites: [0x1301], extensions: [...noExt(51), ext.keyShare([{ group: 23, key: p256 }])] });
  assert.equal(alertSent(feed(conn, ch2, h.privateKey).events), A.illegal_parameter);
});
test('HelloRetryRequest: second ClientHello with a share for another group is illegal_parameter', async () => {
  const h = await harness({ groups: [NamedGroup.secp256r1] });
  const conn = new TlsServerConnection(h.config);
  feed(conn, clientHelloRecord(), h.privateKey);
  assert.equal(alertSent(feed(conn, clientHelloRecord(), h.privateKey).events), A.illegal_parameter);
});

test('encrypted phase: corrupted client Finished is decrypt_error', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  assert.ok(c.serverFinished);
  const step = feed(conn, c.finishedRecord(true), h.privateKey);
  assert.equal(alertSent(step.events), A.decrypt_error);
  c.receive(step.out);
  assert.deepEqual(c.alerts, [A.decrypt_error]);
});
test('encrypted phase: tampered record is bad_record_mac', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  const fin = Buffer.from(c.finishedRecord());
  fin[fin.length - 1] ^= 0x80;
  assert.equal(alertSent(feed(conn, fin, h.privateKey).events), A.bad_record_mac);
});
test('encrypted phase: a second ClientHello after the handshake is unexpected_message', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  feed(conn, c.finishedRecord(), h.privateKey);
  assert.equal(alertSent(feed(conn, c.protect(22, handshakeMsg(1, clientHelloBody())), h.privateKey).events), A.unexpected_message);
});
test('encrypted phase: KeyUpdate with request_update 2 is illegal_parameter', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  feed(conn, c.finishedRecord(), h.privateKey);
  assert.equal(alertSent(feed(conn, c.protect(22, handshakeMsg(24, Uint8Array.of(2))), h.privateKey).events), A.illegal_parameter);
});
test('encrypted phase: change_cipher_spec after the handshake is unexpected_message', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  feed(conn, c.finishedRecord(), h.privateKey);
  assert.equal(alertSent(feed(conn, record(20, Uint8Array.of(1)), h.privateKey).events), A.unexpected_message);
});
test('encrypted phase: protected record with only padding is unexpected_message', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  feed(conn, c.finishedRecord(), h.privateKey);
  // Inner type 0 plus zero padding: no content type byte at all.
  assert.equal(alertSent(feed(conn, c.protect(0, new Uint8Array(0), 4), h.privateKey).events), A.unexpected_message);
});
test('encrypted phase: inner plaintext over 2^14 is record_overflow', async () => {
  const h = await harness();
  const conn = new TlsServerConnection(h.config);
  const c = new MiniClient();
  c.receive(feed(conn, c.clientHelloRecord(), h.privateKey).out);
  feed(conn, c.finishedRecord(), h.privateKey);
  assert.equal(alertSent(feed(conn, c.protect(23, new Uint8Array((1 << 14) + 1)), h.privateKey).events), A.record_overflow);
});
// Only a LocalKey itself is trusted to sign right (node:crypto with the certificate's key):
// any other holder, a LocalKey's subclass included, has its signature checked.
class SubclassedLocalKey extends LocalKey {}
for (const [name, holder] of [
  ['a holder other than a LocalKey', (k: KeyObject) => heldElsewhere(new LocalKey(k))],
  ['a subclass of LocalKey', (k: KeyObject) => new SubclassedLocalKey(k)],
] as const) {
  test(`key holder: a signature that does not verify is never sent (internal_error), ${name}`, async () => {
    const h = await harness({}, 'ecdsa-p256', holder);
    const conn = new TlsServerConnection(h.config);
    const c = new MiniClient();
    const step = feed(conn, c.clientHelloRecord(), h.privateKey, (sig) => {
      const bad = Buffer.from(sig);
      bad[bad.length - 3] ^= 1;
      return bad;
    });
    assert.equal(alertSent(step.events), A.internal_error);
    c.receive(step.out);
    assert.ok(!c.serverMessages.some((m) => m.type === 15), 'no CertificateVerify was sent');
    assert.deepEqual(c.alerts, [A.internal_error]);
  });
}
