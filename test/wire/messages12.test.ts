// TLS 1.2 messages: Certificate, ServerKeyExchange (ECDHE, DHE, PSK, ECDHE_PSK),
// CertificateRequest, ServerHelloDone, ClientKeyExchange of each key exchange,
// CertificateVerify, Finished, NewSessionTicket (RFC 5077), HelloRequest. Encode -> parse
// -> encode, truncations, trailing bytes and the values the RFCs forbid.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCertificateVerify, parseCertificateVerify } from '../../src/tls/wire/certificateVerify.js';
import { HandshakeType } from '../../src/tls/wire/constants.js';
import { encodeFinished, parseFinished, VERIFY_DATA_LENGTH_12 } from '../../src/tls/wire/finished.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';
import {
  ClientCertificateType,
  encodeCertificate12,
  encodeCertificateRequest12,
  encodeClientKeyExchange,
  encodeDhParams,
  encodeEcdhParams,
  encodeHelloRequest,
  encodeNewSessionTicket12,
  encodeServerHelloDone,
  encodeServerKeyExchangePsk,
  encodeServerKeyExchangeSigned,
  parseCertificate12,
  parseCertificateRequest12,
  parseClientKeyExchange,
  parseHelloRequest,
  parseNewSessionTicket12,
  parseServerHelloDone,
  parseServerKeyExchange,
  serverKeyExchangeSignedContent,
  type ClientKeyExchange12,
} from '../../src/tls/wire/messages12.js';
import { decodeErr, everyPrefixIsDecodeError, illegal, trailingByteIsDecodeError } from './expectAlert.js';

const body = (msg: Uint8Array, type: HandshakeType) => {
  const m = parseHandshakeMessage(msg);
  assert.equal(m.type, type);
  return m.body;
};

function malformed(b: Uint8Array, parse: (b: Uint8Array) => unknown): void {
  everyPrefixIsDecodeError(b, parse);
  trailingByteIsDecodeError(b, parse);
}

const point = new Uint8Array(65).fill(4);

describe('TLS 1.2 server messages', () => {
  it('Certificate: the chain, and an empty one', () => {
    const chain = [new Uint8Array(100).fill(1), new Uint8Array(50).fill(2)];
    const msg = encodeCertificate12(chain);
    const b = body(msg, HandshakeType.certificate);
    const parsed = parseCertificate12(b);
    assert.deepEqual(parsed.map((c) => c.length), [100, 50]);
    assert.deepEqual(Buffer.from(encodeCertificate12(parsed)), Buffer.from(msg));
    assert.equal(parseCertificate12(body(encodeCertificate12([]), HandshakeType.certificate)).length, 0);
    malformed(b, parseCertificate12);
    decodeErr(() => parseCertificate12(Uint8Array.of(0, 0, 3, 0, 0, 0)), /shorter than 1/);
  });

  it('ServerKeyExchange ECDHE: params as signed, the signature, the content it covers', () => {
    const params = encodeEcdhParams(0x17, point);
    const msg = encodeServerKeyExchangeSigned(params, 0x0403, new Uint8Array(70).fill(9));
    const b = body(msg, HandshakeType.server_key_exchange);
    const ske = parseServerKeyExchange(b, 'ECDHE');
    assert.ok(ske.kind === 'ECDHE');
    assert.equal(ske.group, 0x17);
    assert.deepEqual(Buffer.from(ske.publicKey), Buffer.from(point));
    assert.deepEqual(Buffer.from(ske.params), Buffer.from(params));
    assert.equal(ske.signed.scheme, 0x0403);
    assert.deepEqual(Buffer.from(encodeServerKeyExchangeSigned(ske.params, ske.signed.scheme, ske.signed.signature)), Buffer.from(msg));
    const cr = new Uint8Array(32).fill(1);
    const sr = new Uint8Array(32).fill(2);
    assert.deepEqual(serverKeyExchangeSignedContent(cr, sr, ske.params), Buffer.concat([cr, sr, params]));
    malformed(b, (x) => parseServerKeyExchange(x, 'ECDHE'));
    illegal(() => parseServerKeyExchange(Uint8Array.of(1, 0, 0x17, 1, 4, 4, 3, 0, 0), 'ECDHE'), /not named_curve/);
  });

  it('ServerKeyExchange DHE', () => {
    const dh = { p: new Uint8Array(256).fill(0xff), g: Uint8Array.of(2), ys: new Uint8Array(256).fill(7) };
    const params = encodeDhParams(dh);
    const b = body(encodeServerKeyExchangeSigned(params, 0x0804, new Uint8Array(256)), HandshakeType.server_key_exchange);
    const ske = parseServerKeyExchange(b, 'DHE');
    assert.ok(ske.kind === 'DHE');
    assert.deepEqual([...ske.dh.g], [2]);
    assert.deepEqual(Buffer.from(ske.params), Buffer.from(params));
    malformed(b, (x) => parseServerKeyExchange(x, 'DHE'));
  });

  it('ServerKeyExchange PSK (hint) and ECDHE_PSK (hint + params, unsigned)', () => {
    const psk = parseServerKeyExchange(body(encodeServerKeyExchangePsk(Buffer.from('hint')), HandshakeType.server_key_exchange), 'PSK');
    assert.ok(psk.kind === 'PSK');
    assert.equal(Buffer.from(psk.identityHint).toString(), 'hint');
    const b = body(encodeServerKeyExchangePsk(new Uint8Array(0), encodeEcdhParams(0x1d, new Uint8Array(32).fill(8))), HandshakeType.server_key_exchange);
    const ep = parseServerKeyExchange(b, 'ECDHE_PSK');
    assert.ok(ep.kind === 'ECDHE_PSK');
    assert.equal(ep.identityHint.length, 0);
    assert.equal(ep.group, 0x1d);
    assert.equal(ep.publicKey.length, 32);
    malformed(b, (x) => parseServerKeyExchange(x, 'ECDHE_PSK'));
  });

  it('CertificateRequest: certificate types, signature algorithms, CA names', () => {
    const req = { certificateTypes: Uint8Array.of(ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign), signatureAlgorithms: [0x0403, 0x0804, 0x0401], certificateAuthorities: [Uint8Array.of(0x30, 1, 2)] };
    const msg = encodeCertificateRequest12(req);
    const b = body(msg, HandshakeType.certificate_request);
    const parsed = parseCertificateRequest12(b);
    assert.deepEqual([...parsed.certificateTypes], [64, 1]);
    assert.deepEqual(parsed.signatureAlgorithms, req.signatureAlgorithms);
    assert.equal(parsed.certificateAuthorities.length, 1);
    assert.deepEqual(Buffer.from(encodeCertificateRequest12(parsed)), Buffer.from(msg));
    malformed(b, parseCertificateRequest12);
    const noCas = parseCertificateRequest12(body(encodeCertificateRequest12({ ...req, certificateAuthorities: [] }), HandshakeType.certificate_request));
    assert.equal(noCas.certificateAuthorities.length, 0);
    decodeErr(() => parseCertificateRequest12(body(encodeCertificateRequest12({ ...req, signatureAlgorithms: [] }), HandshakeType.certificate_request)), /shorter than 1/);
    decodeErr(() => parseCertificateRequest12(body(encodeCertificateRequest12({ ...req, certificateTypes: new Uint8Array(0) }), HandshakeType.certificate_request)));
  });

  it('ServerHelloDone and HelloRequest are empty', () => {
    parseServerHelloDone(body(encodeServerHelloDone(), HandshakeType.server_hello_done));
    parseHelloRequest(body(encodeHelloRequest(), HandshakeType.hello_request));
    decodeErr(() => parseServerHelloDone(Uint8Array.of(0)), /must be empty/);
    decodeErr(() => parseHelloRequest(Uint8Array.of(0)), /must be empty/);
  });

  it('NewSessionTicket (RFC 5077): lifetime hint and ticket', () => {
    const msg = encodeNewSessionTicket12({ lifetimeHint: 300, ticket: new Uint8Array(120).fill(1) });
    const b = body(msg, HandshakeType.new_session_ticket);
    const t = parseNewSessionTicket12(b);
    assert.equal(t.lifetimeHint, 300);
    assert.deepEqual(Buffer.from(encodeNewSessionTicket12(t)), Buffer.from(msg));
    malformed(b, parseNewSessionTicket12);
  });
});

describe('TLS 1.2 client messages', () => {
  const cases: ClientKeyExchange12[] = [
    { kind: 'ECDHE', publicKey: point },
    { kind: 'DHE', publicKey: new Uint8Array(256).fill(3) },
    { kind: 'RSA', encryptedPremaster: new Uint8Array(256).fill(5) },
    { kind: 'PSK', identity: Buffer.from('client-1') },
    { kind: 'ECDHE_PSK', identity: Buffer.from('client-1'), publicKey: new Uint8Array(32).fill(6) },
  ];
  for (const cke of cases) {
    it(`ClientKeyExchange ${cke.kind}`, () => {
      const msg = encodeClientKeyExchange(cke);
      const b = body(msg, HandshakeType.client_key_exchange);
      const parsed = parseClientKeyExchange(b, cke.kind);
      assert.deepEqual(Buffer.from(encodeClientKeyExchange(parsed)), Buffer.from(msg));
      malformed(b, (x) => parseClientKeyExchange(x, cke.kind));
    });
  }

  it('empty public values and identities are decode_error', () => {
    decodeErr(() => parseClientKeyExchange(Uint8Array.of(0), 'ECDHE'), /shorter than 1/);
    decodeErr(() => parseClientKeyExchange(Uint8Array.of(0, 0), 'PSK'), /shorter than 1/);
    decodeErr(() => parseClientKeyExchange(Uint8Array.of(0, 0), 'RSA'), /shorter than 1/);
  });

  it('CertificateVerify (with its scheme) and Finished (12 bytes)', () => {
    const msg = encodeCertificateVerify(0x0401, new Uint8Array(256).fill(1));
    const b = body(msg, HandshakeType.certificate_verify);
    const cv = parseCertificateVerify(b);
    assert.equal(cv.scheme, 0x0401);
    malformed(b, parseCertificateVerify);
    const fin = body(encodeFinished(new Uint8Array(VERIFY_DATA_LENGTH_12)), HandshakeType.finished);
    assert.equal(parseFinished(fin, VERIFY_DATA_LENGTH_12).length, 12);
    decodeErr(() => parseFinished(fin.subarray(1), VERIFY_DATA_LENGTH_12));
  });
});
