/**
 * RFC 8448 section 3 (Simple 1-RTT Handshake) replayed from the client side: with the RFC's
 * random and x25519 key, keyward's client sends the RFC's ClientHello record byte for
 * byte, takes the RFC's server records, and answers with the RFC's client Finished,
 * application data and close_notify records, byte for byte.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import type { EngineEvent } from '../../src/tls/engine/events.js';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import { pskKeyExchangeModesExt, renegotiationInfoExt, sessionTicketExt, signatureAlgorithmsExt, supportedGroupsExt } from '../../src/tls/wire/extensionCodecs.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { simple1Rtt } from '../support/rfc8448Vectors.js';

/** {client} create an ephemeral x25519 key pair: private key (RFC 8448 section 3). */
const CLIENT_X25519_PRIVATE = Buffer.from('49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005', 'hex');
/** ClientHello.random: the 32 bytes after the record header (5), the handshake header (4) and legacy_version (2). */
const CLIENT_RANDOM = simple1Rtt.clientHelloRecord.subarray(11, 43);
/** The lists the RFC's client (NSS) offered, wider than what keyward verifies (SHA-1, DSA, FFDHE). */
const RFC_GROUPS = [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104];
const RFC_SCHEMES = [0x0403, 0x0503, 0x0603, 0x0203, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201, 0x0402, 0x0502, 0x0602, 0x0202];

/**
 * The RFC client's extension order (server_name, renegotiation_info, supported_groups,
 * SessionTicket, key_share, supported_versions, signature_algorithms, psk_key_exchange_modes,
 * record_size_limit): keyward's own server_name, key_share, supported_versions and
 * record_size_limit, with NSS's lists and its three extra extensions around them.
 */
function rfcExtensions(built: Extension[]): Extension[] {
  const own = (t: number) => {
    const e = built.find((x) => x.type === t);
    assert.ok(e, `the client built extension ${t}`);
    return e;
  };
  return [
    own(ExtensionType.server_name),
    renegotiationInfoExt.encode(new Uint8Array(0)),
    supportedGroupsExt.encode(RFC_GROUPS),
    sessionTicketExt.encode(new Uint8Array(0)),
    own(ExtensionType.key_share),
    own(ExtensionType.supported_versions),
    signatureAlgorithmsExt.encode(RFC_SCHEMES),
    pskKeyExchangeModesExt.encode(Uint8Array.of(1)),
    own(ExtensionType.record_size_limit),
  ];
}

function rfcClient(): TlsClientConnection {
  const config = resolveClientConfig({
    serverName: 'server',
    minVersion: 'TLSv1.3',
    tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384],
    groups: [NamedGroup.x25519],
    compatibilityMode: false,
    helloExtensions: rfcExtensions,
  });
  return new TlsClientConnection(config, {
    random: (n) => {
      assert.equal(n, 32, 'the client draws only its random');
      return Buffer.from(CLIENT_RANDOM);
    },
    keyShareFactory: (g) => generateKeyExchange(g, CLIENT_X25519_PRIVATE),
  });
}

const out = (c: TlsClientConnection) => Buffer.concat(c.takeOutput());
const types = (ev: EngineEvent[]) => ev.map((e) => (e.type === 'error' ? `error(${e.error.message})` : e.type));

describe('RFC 8448 section 3 from the client side', () => {
  it('the RFC key pair is the one the ClientHello carries', () => {
    const kx = generateKeyExchange(NamedGroup.x25519, CLIENT_X25519_PRIVATE);
    assert.ok(simple1Rtt.clientHelloRecord.includes(Buffer.from(kx.publicKey)));
  });

  it('ClientHello, client Finished, application data and close_notify, byte for byte', () => {
    const c = rfcClient();
    assert.deepEqual(out(c).toString('hex'), simple1Rtt.clientHelloRecord.toString('hex'), 'ClientHello record');
    c.receive(simple1Rtt.serverHelloRecord);
    c.receive(simple1Rtt.serverFlightRecord);
    const ev = c.takeEvents();
    assert.deepEqual(types(ev), ['verifyPeer'], 'the server chain goes to the driver');
    const req = ev[0].type === 'verifyPeer' ? ev[0].request : assert.fail('verifyPeer');
    assert.equal(req.peer, 'server');
    assert.equal(req.serverName, 'server');
    assert.equal(req.chain.length, 1);
    assert.deepEqual(out(c).length, 0, 'nothing is sent while the chain is judged');
    c.completePeerVerification(req.id, { ok: true });
    assert.deepEqual(types(c.takeEvents()), ['handshakeComplete']);
    assert.equal(out(c).toString('hex'), simple1Rtt.clientFinishedRecord.toString('hex'), 'client Finished record');
    assert.equal(c.info.signatureScheme, 0x0804);
    c.write(simple1Rtt.clientApplicationData);
    assert.equal(out(c).toString('hex'), simple1Rtt.clientApplicationDataRecord.toString('hex'), 'application data record');
    c.close();
    assert.equal(out(c).toString('hex'), simple1Rtt.clientAlertRecord.toString('hex'), 'close_notify record');
  });

  it('a rejected chain ends the handshake with the driver\'s alert, under the handshake key', () => {
    const c = rfcClient();
    out(c);
    c.receive(simple1Rtt.serverHelloRecord);
    c.receive(simple1Rtt.serverFlightRecord);
    const ev = c.takeEvents();
    const req = ev[0].type === 'verifyPeer' ? ev[0].request : assert.fail('verifyPeer');
    c.completePeerVerification(req.id, { ok: false, alert: 48, reason: 'unknown issuer' });
    const after = c.takeEvents();
    assert.equal(after.length, 1);
    assert.equal(after[0].type === 'error' && after[0].alertSent, 48);
    const alert = out(c);
    assert.equal(alert[0], 23, 'the alert is protected (outer type application_data)');
    assert.equal(c.isClosed, true);
  });

  it('a tampered server flight fails with bad_record_mac, a tampered signature with decrypt_error', () => {
    const c = rfcClient();
    out(c);
    c.receive(simple1Rtt.serverHelloRecord);
    const flight = Buffer.from(simple1Rtt.serverFlightRecord);
    flight[flight.length - 1] ^= 1;
    c.receive(flight);
    const ev = c.takeEvents();
    assert.equal(ev[0].type === 'error' && ev[0].alertSent, 20);
  });
});
