// RFC 8448's captured messages through the wire codecs: each parses to the values the RFC
// describes, and encoding the parsed value gives back the same bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCertificate13, parseCertificate13 } from '../../src/tls/wire/certificate13.js';
import { encodeCertificateVerify, parseCertificateVerify } from '../../src/tls/wire/certificateVerify.js';
import { encodeClientHello, parseClientHello } from '../../src/tls/wire/clientHello.js';
import { ExtensionType, HandshakeType, TLS13 } from '../../src/tls/wire/constants.js';
import { keyShareClientExt, recordSizeLimitExt, serverNameExt, signatureAlgorithmsExt, supportedGroupsExt } from '../../src/tls/wire/extensionCodecs.js';
import { encodeFinished, parseFinished } from '../../src/tls/wire/finished.js';
import { parseHandshakeMessage, splitHandshakeMessages } from '../../src/tls/wire/framing.js';
import { encodeEncryptedExtensions, parseEncryptedExtensions } from '../../src/tls/wire/messages13.js';
import { encodeServerHello, parseServerHello } from '../../src/tls/wire/serverHello.js';
import { helloRetry, simple1Rtt } from '../support/rfc8448Vectors.js';

/** The handshake message inside a plaintext handshake record. */
const inRecord = (record: Uint8Array) => parseHandshakeMessage(record.subarray(5));

function roundTripClientHello(record: Uint8Array) {
  const msg = inRecord(record);
  assert.equal(msg.type, HandshakeType.client_hello);
  const ch = parseClientHello(msg.body);
  const again = encodeClientHello({ ...ch, extensions: ch.extensions });
  assert.deepEqual(Buffer.from(again), Buffer.from(msg.raw));
  return ch;
}

function roundTripServerHello(record: Uint8Array) {
  const msg = inRecord(record);
  const sh = parseServerHello(msg.body);
  assert.deepEqual(Buffer.from(encodeServerHello(sh)), Buffer.from(msg.raw));
  return sh;
}

describe('RFC 8448 section 3 (1-RTT)', () => {
  it('ClientHello: typed extensions and byte-exact re-encoding', () => {
    const ch = roundTripClientHello(simple1Rtt.clientHelloRecord);
    assert.deepEqual(ch.cipherSuites, [0x1301, 0x1303, 0x1302]);
    assert.equal(ch.serverName, 'server');
    assert.deepEqual(ch.supportedVersions, [TLS13]);
    assert.deepEqual(ch.keyShares?.map((s) => s.group), [0x001d]);
    assert.equal(ch.keyShares?.[0].keyExchange.length, 32);
    assert.equal(ch.recordSizeLimit, 0x4001);
    assert.deepEqual([...ch.pskKeyExchangeModes!], [1]);
    assert.deepEqual(ch.renegotiationInfo?.length, 0);
    assert.equal(ch.sessionTicket?.length, 0, 'an empty SessionTicket asks for one');
    assert.equal(ch.pskOffer, undefined);
    // Each typed extension re-encodes to the bytes it came from.
    const codecs = [serverNameExt, supportedGroupsExt, signatureAlgorithmsExt, keyShareClientExt, recordSizeLimitExt];
    for (const c of codecs) {
      const e = ch.extensions.find((x) => x.type === c.type)!;
      assert.deepEqual(Buffer.from((c.encode as (v: unknown) => { data: Uint8Array })(c.parse(e.data)).data), Buffer.from(e.data), ExtensionType[c.type]);
    }
  });

  it('ServerHello', () => {
    const sh = roundTripServerHello(simple1Rtt.serverHelloRecord);
    assert.equal(sh.isHelloRetryRequest, false);
    assert.equal(sh.selectedVersion, TLS13);
    assert.equal(sh.cipherSuite, 0x1301);
    assert.deepEqual(Buffer.from(sh.random), simple1Rtt.serverRandom);
    assert.deepEqual(Buffer.from(sh.keyShare!.keyExchange), simple1Rtt.serverX25519Public);
  });

  it('EncryptedExtensions, Certificate, CertificateVerify, Finished', () => {
    const ee = parseHandshakeMessage(simple1Rtt.encryptedExtensions);
    const parsedEe = parseEncryptedExtensions(ee.body);
    assert.deepEqual(parsedEe.supportedGroups, simple1Rtt.encryptedExtensionsGroups);
    assert.equal(parsedEe.recordSizeLimit, 0x4001);
    assert.equal(parsedEe.serverNameAck, true);
    assert.deepEqual(Buffer.from(encodeEncryptedExtensions(parsedEe.extensions)), simple1Rtt.encryptedExtensions);

    const cert = parseCertificate13(parseHandshakeMessage(simple1Rtt.certificate).body);
    assert.equal(cert.context.length, 0);
    assert.equal(cert.entries.length, 1);
    assert.deepEqual(
      Buffer.from(encodeCertificate13(cert.context, [Uint8Array.from(cert.entries[0].data)], [cert.entries[0].extensions])),
      simple1Rtt.certificate,
    );

    const cv = parseCertificateVerify(parseHandshakeMessage(simple1Rtt.certificateVerify).body);
    assert.equal(cv.scheme, 0x0804);
    assert.equal(cv.signature.length, 128);
    assert.deepEqual(Buffer.from(encodeCertificateVerify(cv.scheme, cv.signature)), simple1Rtt.certificateVerify);

    for (const fin of [simple1Rtt.serverFinished, simple1Rtt.clientFinished]) {
      const vd = parseFinished(parseHandshakeMessage(fin).body, 32);
      assert.deepEqual(Buffer.from(encodeFinished(vd)), fin);
    }
  });

  it('the server flight splits into its four messages', () => {
    const flight = Buffer.concat([simple1Rtt.encryptedExtensions, simple1Rtt.certificate, simple1Rtt.certificateVerify, simple1Rtt.serverFinished]);
    assert.deepEqual(
      splitHandshakeMessages(flight).map((m) => m.type),
      [HandshakeType.encrypted_extensions, HandshakeType.certificate, HandshakeType.certificate_verify, HandshakeType.finished],
    );
  });
});

describe('RFC 8448 section 5 (HelloRetryRequest)', () => {
  it('HelloRetryRequest: the HRR random, the selected group and the cookie', () => {
    const hrr = roundTripServerHello(helloRetry.helloRetryRequestRecord);
    assert.equal(hrr.isHelloRetryRequest, true);
    assert.equal(hrr.selectedGroup, 0x0017);
    assert.equal(hrr.keyShare, undefined);
    assert.deepEqual(Buffer.from(hrr.cookie!), helloRetry.cookie);
    assert.equal(hrr.selectedVersion, TLS13);
  });

  it('both ClientHellos and the ServerHello re-encode byte for byte', () => {
    const ch1 = roundTripClientHello(helloRetry.clientHello1Record);
    const ch2 = roundTripClientHello(helloRetry.clientHello2Record);
    assert.equal(ch1.cookie, undefined);
    assert.deepEqual(Buffer.from(ch2.cookie!), helloRetry.cookie);
    assert.deepEqual(ch2.keyShares?.map((s) => s.group), [0x0017]);
    const sh = roundTripServerHello(helloRetry.serverHelloRecord);
    assert.equal(sh.keyShare?.group, 0x0017);
    assert.deepEqual(Buffer.from(sh.keyShare!.keyExchange), helloRetry.serverP256Public);
    const ee = parseEncryptedExtensions(parseHandshakeMessage(helloRetry.encryptedExtensions).body);
    assert.deepEqual(ee.supportedGroups, helloRetry.encryptedExtensionsGroups);
  });
});
