/**
 * 0-RTT is always declined (RFC 8446 4.2.10), with and without a HelloRetryRequest: what the
 * server skips, and where early data is an error. The raw ClientHellos come from the test
 * builder; the early records are random bytes, as a client whose PSK the server cannot use
 * would send.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { TlsServerConnection } from '../../src/tls/engine/serverConnection.js';
import { AlertDescription, alertName } from '../../src/tls/wire/alerts.js';
import { ExtensionType, HandshakeType } from '../../src/tls/wire/constants.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { preSharedKeyOfferExt } from '../../src/tls/wire/preSharedKey.js';
import { clientHelloBody, ext, handshakeMsg, record } from '../support/clientHelloBuilder.js';
import { alertSent, feed, harness, records } from '../support/engineHarness.js';
import { MiniClient } from '../support/miniClient.js';

const EARLY_DATA = ext.raw(ExtensionType.early_data, []);
const PSK_MODES = ext.raw(ExtensionType.psk_key_exchange_modes, [1, 1]);
/** A ticket the server cannot open (another server's, or garbage), with a random binder. */
const FOREIGN_PSK = preSharedKeyOfferExt.encode({ identities: [{ identity: randomBytes(120), obfuscatedTicketAge: 12345 }], binders: [randomBytes(32)] });
/** An early data record: outer type application_data, bytes no key of ours opens. */
const earlyRecord = (n = 300) => record(23, randomBytes(n));

function hello(share: { group: number; key: Uint8Array }, early: boolean): Uint8Array {
  const extensions: Extension[] = [
    ext.serverName('localhost'),
    ext.supportedGroups([NamedGroup.x25519, NamedGroup.secp256r1]),
    ext.signatureAlgorithms([0x0403, 0x0804]),
    ext.supportedVersions([0x0304]),
    ext.keyShare([share]),
    ...(early ? [EARLY_DATA] : []),
    PSK_MODES,
    FOREIGN_PSK,
  ];
  return handshakeMsg(HandshakeType.client_hello, clientHelloBody({ extensions }));
}

const x25519 = () => ({ group: NamedGroup.x25519, key: generateKeyExchange(NamedGroup.x25519).publicKey });
const p256 = () => ({ group: NamedGroup.secp256r1, key: generateKeyExchange(NamedGroup.secp256r1).publicKey });
const alertOf = (events: Parameters<typeof alertSent>[0]) => {
  const a = alertSent(events);
  return a === undefined ? 'none' : alertName(a);
};

describe('0-RTT declined: early data skipped within the limit', () => {
  it('without a retry: undecryptable records after the hello are skipped and the handshake completes', async () => {
    const h = await harness();
    const conn = new TlsServerConnection(h.config);
    const client = new MiniClient({ extraExtensions: [EARLY_DATA, PSK_MODES, FOREIGN_PSK] });
    const step = feed(conn, [client.clientHelloRecord(), earlyRecord(), earlyRecord(1000)], h.privateKey);
    assert.equal(alertOf(step.events), 'none');
    client.receive(step.out);
    assert.ok(client.serverFinished);
    const done = feed(conn, client.finishedRecord(), h.privateKey);
    assert.ok(done.events.some((e) => e.type === 'handshakeComplete'));
  });

  it('without a retry: early data beyond maxEarlyDataSkip is bad_record_mac', async () => {
    const h = await harness({ maxEarlyDataSkip: 1000 });
    const conn = new TlsServerConnection(h.config);
    const client = new MiniClient({ extraExtensions: [EARLY_DATA, PSK_MODES, FOREIGN_PSK] });
    const step = feed(conn, [client.clientHelloRecord(), earlyRecord(600), earlyRecord(600)], h.privateKey);
    assert.equal(alertOf(step.events), 'bad_record_mac');
  });

  it('with a retry: the early records before ClientHello2 are skipped, then the handshake goes on', async () => {
    const h = await harness({ groups: [NamedGroup.secp256r1] });
    const conn = new TlsServerConnection(h.config);
    const first = feed(conn, [record(22, hello(x25519(), true), 0x0301), earlyRecord(), earlyRecord(16_384)], h.privateKey);
    assert.equal(alertOf(first.events), 'none');
    assert.equal(conn.info.helloRetry, true);
    const second = feed(conn, record(22, hello(p256(), false)), h.privateKey);
    assert.equal(alertOf(second.events), 'none');
    assert.ok(second.events.some((e) => e.type === 'keyOperation'), 'a certificate handshake follows (the PSK is not ours)');
    assert.equal(records(second.out)[0].body[0], HandshakeType.server_hello);
  });

  it('with a retry: a record after ClientHello2 that does not decrypt is bad_record_mac (nothing is skipped any more)', async () => {
    const h = await harness({ groups: [NamedGroup.secp256r1] });
    const conn = new TlsServerConnection(h.config);
    feed(conn, [record(22, hello(x25519(), true), 0x0301), earlyRecord()], h.privateKey);
    feed(conn, record(22, hello(p256(), false)), h.privateKey);
    assert.equal(alertOf(feed(conn, earlyRecord(64), h.privateKey).events), 'bad_record_mac');
  });

  it('with a retry but no early_data offered: a record where ClientHello2 is due is unexpected_message', async () => {
    const h = await harness({ groups: [NamedGroup.secp256r1] });
    const conn = new TlsServerConnection(h.config);
    const step = feed(conn, [record(22, hello(x25519(), false), 0x0301), earlyRecord()], h.privateKey);
    assert.equal(alertOf(step.events), 'unexpected_message');
  });

  it('with a retry: early data beyond the limit before ClientHello2 is unexpected_message', async () => {
    const h = await harness({ groups: [NamedGroup.secp256r1], maxEarlyDataSkip: 1000 });
    const conn = new TlsServerConnection(h.config);
    const step = feed(conn, [record(22, hello(x25519(), true), 0x0301), earlyRecord(600), earlyRecord(600)], h.privateKey);
    assert.equal(alertOf(step.events), 'unexpected_message');
  });

  it('early_data in the second ClientHello is illegal_parameter', async () => {
    const h = await harness({ groups: [NamedGroup.secp256r1] });
    const conn = new TlsServerConnection(h.config);
    feed(conn, record(22, hello(x25519(), true), 0x0301), h.privateKey);
    const step = feed(conn, record(22, hello(p256(), true)), h.privateKey);
    assert.equal(alertSent(step.events), AlertDescription.illegal_parameter);
  });
});
