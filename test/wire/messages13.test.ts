// TLS 1.3 messages a client reads and a server reads back: ServerHello/HRR,
// EncryptedExtensions, Certificate with entry extensions, CertificateRequest,
// CertificateVerify, Finished, NewSessionTicket, KeyUpdate, EndOfEarlyData,
// CompressedCertificate, message_hash. Encode -> parse, then truncation, trailing bytes,
// duplicates and misplaced extensions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import {
  encodeCertificate13,
  encodeCertificateRequest13,
  encodeCompressedCertificate,
  parseCertificate13,
  parseCertificateRequest13,
  parseCompressedCertificate,
} from '../../src/tls/wire/certificate13.js';
import { certificateVerifyContent, encodeCertificateVerify, parseCertificateVerify } from '../../src/tls/wire/certificateVerify.js';
import { ExtensionType, HandshakeType, HRR_RANDOM, TLS13 } from '../../src/tls/wire/constants.js';
import { delegatedCredentialExt } from '../../src/tls/wire/delegatedCredential.js';
import * as codecs from '../../src/tls/wire/extensionCodecs.js';
import { encodeFinished, parseFinished } from '../../src/tls/wire/finished.js';
import { parseHandshakeMessage, splitHandshakeMessages } from '../../src/tls/wire/framing.js';
import {
  encodeEncryptedExtensions,
  encodeEndOfEarlyData,
  encodeKeyUpdate,
  encodeMessageHash,
  encodeNewSessionTicket13,
  parseEncryptedExtensions,
  parseEndOfEarlyData,
  parseKeyUpdate,
  parseMessageHash,
  parseNewSessionTicket13,
} from '../../src/tls/wire/messages13.js';
import { MAX_HANDSHAKE_BODY, MAX_SERVER_HELLO_BODY, protocolMaxBody } from '../../src/tls/wire/limits.js';
import { preSharedKeySelectedExt } from '../../src/tls/wire/preSharedKey.js';
import { encodeServerHello, parseServerHello } from '../../src/tls/wire/serverHello.js';
import { decodeErr, everyPrefixIsDecodeError, expectAlert, illegal, trailingByteIsDecodeError } from './expectAlert.js';

const body = (msg: Uint8Array, type: HandshakeType) => {
  const m = parseHandshakeMessage(msg);
  assert.equal(m.type, type);
  return m.body;
};

/** Round trip: encode -> parse -> encode gives the same bytes; truncations and a trailing byte fail. */
function strict<T>(msg: Uint8Array, type: HandshakeType, parse: (b: Uint8Array) => T, reencode: (v: T) => Uint8Array): T {
  const b = body(msg, type);
  const v = parse(b);
  assert.deepEqual(Buffer.from(reencode(v)), Buffer.from(msg));
  everyPrefixIsDecodeError(b, parse);
  trailingByteIsDecodeError(b, parse);
  return v;
}

describe('ServerHello and HelloRetryRequest', () => {
  const random = new Uint8Array(32).fill(0x33);
  const sessionId = new Uint8Array(32).fill(0x44);

  it('a TLS 1.3 ServerHello with a PSK and a share', () => {
    const msg = encodeServerHello({
      random,
      sessionId,
      cipherSuite: 0x1301,
      extensions: [codecs.supportedVersionsServerExt.encode(TLS13), codecs.keyShareServerExt.encode({ group: 0x17, keyExchange: new Uint8Array(65).fill(4) }), preSharedKeySelectedExt.encode(0)],
    });
    const b = body(msg, HandshakeType.server_hello);
    const sh = parseServerHello(b);
    assert.equal(sh.isHelloRetryRequest, false);
    assert.equal(sh.selectedVersion, TLS13);
    assert.equal(sh.keyShare?.group, 0x17);
    assert.equal(sh.selectedIdentity, 0);
    assert.equal(sh.compressionMethod, 0);
    assert.deepEqual(Buffer.from(encodeServerHello(sh)), Buffer.from(msg));
    trailingByteIsDecodeError(b, parseServerHello);
    for (let n = 0; n < b.length; n++) if (n !== 2 + 32 + 33 + 3) decodeErr(() => parseServerHello(b.subarray(0, n)));
  });

  it('a HelloRetryRequest: the group to use and a cookie', () => {
    const msg = encodeServerHello({
      random: HRR_RANDOM,
      sessionId,
      cipherSuite: 0x1302,
      extensions: [codecs.supportedVersionsServerExt.encode(TLS13), codecs.keyShareHrrExt.encode(0x18), codecs.cookieExt.encode(Uint8Array.of(1, 2))],
    });
    const hrr = parseServerHello(body(msg, HandshakeType.server_hello));
    assert.equal(hrr.isHelloRetryRequest, true);
    assert.equal(hrr.selectedGroup, 0x18);
    assert.deepEqual([...hrr.cookie!], [1, 2]);
  });

  it('a TLS 1.2 ServerHello with its extensions, or none', () => {
    const msg = encodeServerHello({
      random,
      sessionId,
      cipherSuite: 0xc02b,
      extensions: [
        codecs.renegotiationInfoExt.encode(new Uint8Array(0)),
        codecs.extendedMasterSecretExt.encode(),
        codecs.ecPointFormatsExt.encode(Uint8Array.of(0)),
        codecs.alpnSelectedExt.encode('http/1.1'),
        codecs.serverNameAckExt.encode(),
        codecs.sessionTicketExt.encode(new Uint8Array(0)),
        codecs.statusRequestAckExt.encode(),
        codecs.recordSizeLimitExt.encode(1024),
      ],
    });
    const sh = parseServerHello(body(msg, HandshakeType.server_hello));
    assert.equal(sh.selectedVersion, undefined);
    assert.ok(sh.extendedMasterSecret && sh.serverNameAck && sh.sessionTicket && sh.statusRequest);
    assert.equal(sh.renegotiationInfo?.length, 0);
    assert.equal(sh.alpn, 'http/1.1');
    assert.equal(sh.recordSizeLimit, 1024);
    const bare = parseServerHello(body(encodeServerHello({ random, sessionId, cipherSuite: 0x9c, extensions: [] }), HandshakeType.server_hello));
    assert.equal(bare.extensions.length, 0);
  });

  it('the largest ServerHello is exactly MAX_SERVER_HELLO_BODY bytes and parses', () => {
    const b = body(encodeServerHello({ random, sessionId, cipherSuite: 0xc02b, extensions: [{ type: 0xfe00, data: new Uint8Array(65531) }] }), HandshakeType.server_hello);
    assert.equal(b.length, MAX_SERVER_HELLO_BODY);
    assert.equal(parseServerHello(b).extensions[0].data.length, 65531);
    assert.equal(protocolMaxBody(HandshakeType.server_hello), MAX_SERVER_HELLO_BODY);
    assert.equal(protocolMaxBody(HandshakeType.key_update), 1);
    assert.equal(protocolMaxBody(HandshakeType.server_hello_done), 0);
    assert.equal(protocolMaxBody(HandshakeType.finished), 48);
    assert.equal(protocolMaxBody(HandshakeType.certificate), MAX_HANDSHAKE_BODY);
  });

  it('refuses a long session id, duplicates, and TLS 1.2 extensions in a TLS 1.3 ServerHello', () => {
    decodeErr(() => parseServerHello(body(encodeServerHello({ random, sessionId: new Uint8Array(33), cipherSuite: 0x1301, extensions: [] }), HandshakeType.server_hello)), /longer than 32/);
    const v = codecs.supportedVersionsServerExt.encode(TLS13);
    illegal(() => parseServerHello(body(encodeServerHello({ random, sessionId, cipherSuite: 0x1301, extensions: [v, v] }), HandshakeType.server_hello)), /repeats/);
    illegal(() => parseServerHello(body(encodeServerHello({ random, sessionId, cipherSuite: 0x1301, extensions: [v, codecs.extendedMasterSecretExt.encode()] }), HandshakeType.server_hello)), /not allowed in a TLS 1\.3 SH/);
    illegal(() => parseServerHello(body(encodeServerHello({ random, sessionId, cipherSuite: 0x1301, extensions: [v, codecs.cookieExt.encode(Uint8Array.of(1))] }), HandshakeType.server_hello)), /not allowed/);
    decodeErr(() => parseServerHello(body(encodeServerHello({ random, sessionId, cipherSuite: 0xc02b, extensions: [codecs.sessionTicketExt.encode(Uint8Array.of(1))] }), HandshakeType.server_hello)), /must be empty/);
  });
});

describe('the server flight', () => {
  it('EncryptedExtensions: ALPN, groups, record_size_limit, early_data, SNI ack', () => {
    const ee = strict(
      encodeEncryptedExtensions([
        codecs.serverNameAckExt.encode(),
        codecs.alpnSelectedExt.encode('h2'),
        codecs.supportedGroupsExt.encode([0x1d]),
        codecs.recordSizeLimitExt.encode(16385),
        codecs.earlyDataExt.encode(),
        { type: 0x3a3a, data: Uint8Array.of(5) },
      ]),
      HandshakeType.encrypted_extensions,
      parseEncryptedExtensions,
      (v) => encodeEncryptedExtensions(v.extensions),
    );
    assert.equal(ee.alpn, 'h2');
    assert.ok(ee.serverNameAck && ee.earlyData);
    assert.deepEqual(ee.supportedGroups, [0x1d]);
    assert.equal(ee.recordSizeLimit, 16385);
    const empty = parseEncryptedExtensions(body(encodeEncryptedExtensions([]), HandshakeType.encrypted_extensions));
    assert.equal(empty.alpn, undefined);
    assert.equal(empty.earlyData, false);
    illegal(() => parseEncryptedExtensions(body(encodeEncryptedExtensions([codecs.keyShareHrrExt.encode(0x1d)]), HandshakeType.encrypted_extensions)), /not allowed in a TLS 1\.3 EE/);
  });

  it('Certificate: context, chain and per-entry extensions (OCSP, delegated credential)', () => {
    const leaf = new Uint8Array(300).fill(1);
    const ca = new Uint8Array(200).fill(2);
    const dc = { cred: { validTime: 3600, certVerifyAlgorithm: 0x0403, spki: new Uint8Array(91).fill(3) }, algorithm: 0x0804, signature: new Uint8Array(64).fill(4) };
    const entryExts = [[codecs.certificateStatusExt.encode({ statusType: 1, response: new Uint8Array(40).fill(5) }), delegatedCredentialExt.encode(dc)], []];
    const cert = strict(encodeCertificate13(Uint8Array.of(7, 7), [leaf, ca], entryExts), HandshakeType.certificate, parseCertificate13, (v) =>
      encodeCertificate13(
        v.context,
        v.entries.map((e) => e.data),
        v.entries.map((e) => e.extensions),
      ),
    );
    assert.deepEqual([...cert.context], [7, 7]);
    assert.equal(cert.entries.length, 2);
    assert.equal(cert.entries[0].ocspResponse?.length, 40);
    assert.equal(cert.entries[0].delegatedCredential?.cred.validTime, 3600);
    assert.equal(cert.entries[1].delegatedCredential, undefined);
    // A client without a certificate sends an empty list.
    assert.equal(parseCertificate13(body(encodeCertificate13(Uint8Array.of(1), []), HandshakeType.certificate)).entries.length, 0);
    // A server's Certificate is encoded once per chain.
    const chain = [leaf];
    assert.equal(encodeCertificate13(new Uint8Array(0), chain), encodeCertificate13(new Uint8Array(0), chain));
    illegal(() => parseCertificate13(body(encodeCertificate13(new Uint8Array(0), [leaf], [[codecs.alpnExt.encode(['h2'])]]), HandshakeType.certificate)), /not allowed in a TLS 1\.3 CT/);
    const dup = codecs.certificateStatusExt.encode({ statusType: 1, response: Uint8Array.of(1) });
    illegal(() => parseCertificate13(body(encodeCertificate13(new Uint8Array(0), [leaf], [[dup, dup]]), HandshakeType.certificate)), /repeats/);
    decodeErr(() => parseCertificate13(body(encodeCertificate13(new Uint8Array(0), [new Uint8Array(0)]), HandshakeType.certificate)), /shorter than 1/);
  });

  it('CertificateRequest: context, signature_algorithms (+_cert), certificate_authorities', () => {
    const cr = strict(
      encodeCertificateRequest13({
        context: new Uint8Array(0),
        extensions: [
          codecs.signatureAlgorithmsExt.encode([0x0403, 0x0804]),
          codecs.signatureAlgorithmsCertExt.encode([0x0403]),
          codecs.certificateAuthoritiesExt.encode([Uint8Array.of(0x30, 3, 1, 2, 3)]),
          codecs.compressCertificateExt.encode([1]),
          codecs.delegatedCredentialSchemesExt.encode([0x0807]),
        ],
      }),
      HandshakeType.certificate_request,
      parseCertificateRequest13,
      encodeCertificateRequest13,
    );
    assert.deepEqual(cr.signatureAlgorithms, [0x0403, 0x0804]);
    assert.deepEqual(cr.signatureAlgorithmsCert, [0x0403]);
    assert.equal(cr.certificateAuthorities?.length, 1);
    assert.deepEqual(cr.compressCertificate, [1]);
    assert.deepEqual(cr.delegatedCredentialSchemes, [0x0807]);
    expectAlert(
      () => parseCertificateRequest13(body(encodeCertificateRequest13({ context: new Uint8Array(0), extensions: [] }), HandshakeType.certificate_request)),
      AlertDescription.missing_extension,
      /without signature_algorithms/,
    );
    illegal(() =>
      parseCertificateRequest13(
        body(encodeCertificateRequest13({ context: new Uint8Array(0), extensions: [codecs.signatureAlgorithmsExt.encode([0x0403]), codecs.serverNameAckExt.encode()] }), HandshakeType.certificate_request),
      ),
    );
  });

  it('CertificateVerify and its signed content; Finished', () => {
    const cv = strict(encodeCertificateVerify(0x0403, new Uint8Array(71).fill(9)), HandshakeType.certificate_verify, parseCertificateVerify, (v) => encodeCertificateVerify(v.scheme, v.signature));
    assert.equal(cv.scheme, 0x0403);
    const content = certificateVerifyContent(new Uint8Array(32).fill(1), 'client');
    assert.equal(content.subarray(64, 64 + 33).toString('latin1'), 'TLS 1.3, client CertificateVerify');
    assert.equal(content.length, 64 + 33 + 1 + 32);
    const fin = encodeFinished(new Uint8Array(48).fill(2));
    assert.equal(parseFinished(body(fin, HandshakeType.finished), 48).length, 48);
    decodeErr(() => parseFinished(body(fin, HandshakeType.finished), 32), /wrong length/);
  });

  it('a flight split into messages; a cut message is decode_error', () => {
    const flight = Buffer.concat([encodeEncryptedExtensions([]), encodeFinished(new Uint8Array(32))]);
    assert.deepEqual(splitHandshakeMessages(flight).map((m) => m.type), [HandshakeType.encrypted_extensions, HandshakeType.finished]);
    decodeErr(() => splitHandshakeMessages(flight.subarray(0, flight.length - 1)), /truncated/);
    decodeErr(() => splitHandshakeMessages(flight.subarray(0, 7)), /truncated/);
    decodeErr(() => parseHandshakeMessage(flight.subarray(0, 3)), /shorter than its header/);
    decodeErr(() => parseHandshakeMessage(flight), /header but/);
  });
});

describe('post-handshake and the transcript', () => {
  it('NewSessionTicket: lifetime, age_add, nonce, ticket, early_data max size', () => {
    const t = strict(
      encodeNewSessionTicket13({ lifetime: 7200, ageAdd: 0xfedcba98, nonce: Uint8Array.of(0, 1), ticket: new Uint8Array(100).fill(3), extensions: [], maxEarlyDataSize: 16384 }),
      HandshakeType.new_session_ticket,
      parseNewSessionTicket13,
      encodeNewSessionTicket13,
    );
    assert.equal(t.lifetime, 7200);
    assert.equal(t.ageAdd, 0xfedcba98);
    assert.equal(t.maxEarlyDataSize, 16384);
    assert.equal(t.extensions[0].type, ExtensionType.early_data);
    const noEarly = parseNewSessionTicket13(body(encodeNewSessionTicket13({ lifetime: 1, ageAdd: 2, nonce: new Uint8Array(0), ticket: Uint8Array.of(1), extensions: [] }), HandshakeType.new_session_ticket));
    assert.equal(noEarly.maxEarlyDataSize, undefined);
    decodeErr(() => parseNewSessionTicket13(body(encodeNewSessionTicket13({ lifetime: 1, ageAdd: 2, nonce: new Uint8Array(0), ticket: new Uint8Array(0), extensions: [] }), HandshakeType.new_session_ticket)), /shorter than 1/);
    illegal(() =>
      parseNewSessionTicket13(body(encodeNewSessionTicket13({ lifetime: 1, ageAdd: 2, nonce: new Uint8Array(0), ticket: Uint8Array.of(1), extensions: [codecs.cookieExt.encode(Uint8Array.of(1))] }), HandshakeType.new_session_ticket)),
    );
  });

  it('KeyUpdate, EndOfEarlyData, message_hash', () => {
    assert.equal(parseKeyUpdate(body(encodeKeyUpdate(true), HandshakeType.key_update)), true);
    assert.equal(parseKeyUpdate(body(encodeKeyUpdate(false), HandshakeType.key_update)), false);
    illegal(() => parseKeyUpdate(Uint8Array.of(2)), /not 0 or 1/);
    decodeErr(() => parseKeyUpdate(Uint8Array.of(1, 0)), /trailing/);
    decodeErr(() => parseKeyUpdate(new Uint8Array(0)));
    parseEndOfEarlyData(body(encodeEndOfEarlyData(), HandshakeType.end_of_early_data));
    decodeErr(() => parseEndOfEarlyData(Uint8Array.of(0)), /must be empty/);
    const mh = encodeMessageHash(new Uint8Array(32).fill(6));
    assert.deepEqual([...mh.subarray(0, 4)], [254, 0, 0, 32]);
    assert.equal(parseMessageHash(body(mh, HandshakeType.message_hash), 32).length, 32);
    decodeErr(() => parseMessageHash(body(mh, HandshakeType.message_hash), 48));
  });

  it('CompressedCertificate framing (RFC 8879)', () => {
    const c = strict(encodeCompressedCertificate({ algorithm: 2, uncompressedLength: 5000, compressed: new Uint8Array(700).fill(1) }), HandshakeType.compressed_certificate, parseCompressedCertificate, encodeCompressedCertificate);
    assert.equal(c.algorithm, 2);
    assert.equal(c.uncompressedLength, 5000);
    decodeErr(() => parseCompressedCertificate(Uint8Array.of(0, 1, 0, 0, 1, 0, 0, 0)), /shorter than 1/);
  });
});
