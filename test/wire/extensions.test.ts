// Every typed extension codec: encode -> parse gives the value back, and each refuses the
// malformed bodies its RFC rules out (truncated, trailing bytes, bad lengths) with the
// alert RFC 8446 names; extension blocks refuse duplicates and, in TLS 1.3 messages,
// extensions not allowed there.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import {
  delegatedCredentialExt,
  delegatedCredentialSignedContent,
  type DelegatedCredential,
} from '../../src/tls/wire/delegatedCredential.js';
import * as codecs from '../../src/tls/wire/extensionCodecs.js';
import { checkAllowed13, checkSolicited, findExtension, readExtensions, writeExtensions } from '../../src/tls/wire/extensions.js';
import { preSharedKeyOfferExt, preSharedKeySelectedExt, pskBindersLength } from '../../src/tls/wire/preSharedKey.js';
import { Reader } from '../../src/tls/wire/reader.js';
import { Writer } from '../../src/tls/wire/writer.js';
import { decodeErr, everyPrefixIsDecodeError, expectAlert, illegal, trailingByteIsDecodeError } from './expectAlert.js';

interface Case {
  name: string;
  codec: { type: number; encode(v: never): { type: number; data: Uint8Array }; parse(d: Uint8Array): unknown };
  value: unknown;
  /** What parse returns, when it is not `value` itself. */
  parsed?: unknown;
  /** The body has no length prefix of its own, so a prefix may still parse. */
  prefixesMayParse?: boolean;
}

const b = (...x: number[]) => Uint8Array.from(x);

const dc: DelegatedCredential = {
  cred: { validTime: 86400, certVerifyAlgorithm: 0x0403, spki: new Uint8Array(91).fill(4) },
  algorithm: 0x0804,
  signature: new Uint8Array(256).fill(9),
};

const cases: Case[] = [
  { name: 'server_name', codec: codecs.serverNameExt, value: 'example.com' },
  { name: 'server_name ack', codec: codecs.serverNameAckExt, value: undefined, parsed: true },
  { name: 'supported_groups', codec: codecs.supportedGroupsExt, value: [0x1d, 0x17, 0x18, 0x19, 0x100] },
  { name: 'signature_algorithms', codec: codecs.signatureAlgorithmsExt, value: [0x0403, 0x0804, 0x0401] },
  { name: 'signature_algorithms_cert', codec: codecs.signatureAlgorithmsCertExt, value: [0x0403] },
  { name: 'delegated_credential schemes', codec: codecs.delegatedCredentialSchemesExt, value: [0x0403, 0x0807] },
  { name: 'delegated_credential', codec: delegatedCredentialExt, value: dc },
  { name: 'compress_certificate', codec: codecs.compressCertificateExt, value: [1, 2, 3] },
  { name: 'supported_versions (ClientHello)', codec: codecs.supportedVersionsClientExt, value: [0x0304, 0x0303] },
  { name: 'supported_versions (ServerHello)', codec: codecs.supportedVersionsServerExt, value: 0x0304, prefixesMayParse: false },
  { name: 'ALPN list', codec: codecs.alpnExt, value: ['h2', 'http/1.1'] },
  { name: 'ALPN selected', codec: codecs.alpnSelectedExt, value: 'h2' },
  { name: 'key_share (ClientHello)', codec: codecs.keyShareClientExt, value: [{ group: 0x1d, keyExchange: new Uint8Array(32).fill(1) }, { group: 0x17, keyExchange: new Uint8Array(65).fill(4) }] },
  { name: 'key_share (ServerHello)', codec: codecs.keyShareServerExt, value: { group: 0x1d, keyExchange: new Uint8Array(32).fill(2) } },
  { name: 'key_share (HelloRetryRequest)', codec: codecs.keyShareHrrExt, value: 0x17 },
  { name: 'psk_key_exchange_modes', codec: codecs.pskKeyExchangeModesExt, value: b(1, 0) },
  { name: 'pre_shared_key (ServerHello)', codec: preSharedKeySelectedExt, value: 1 },
  { name: 'early_data (empty)', codec: codecs.earlyDataExt, value: undefined, parsed: true },
  { name: 'early_data (NewSessionTicket)', codec: codecs.earlyDataMaxSizeExt, value: 16384 },
  { name: 'cookie', codec: codecs.cookieExt, value: new Uint8Array(100).fill(7) },
  { name: 'record_size_limit', codec: codecs.recordSizeLimitExt, value: 16385 },
  { name: 'ec_point_formats', codec: codecs.ecPointFormatsExt, value: b(0) },
  { name: 'extended_master_secret', codec: codecs.extendedMasterSecretExt, value: undefined, parsed: true },
  { name: 'post_handshake_auth', codec: codecs.postHandshakeAuthExt, value: undefined, parsed: true },
  { name: 'renegotiation_info', codec: codecs.renegotiationInfoExt, value: new Uint8Array(12).fill(3) },
  { name: 'session_ticket', codec: codecs.sessionTicketExt, value: new Uint8Array(40).fill(5), prefixesMayParse: true },
  { name: 'certificate_authorities', codec: codecs.certificateAuthoritiesExt, value: [new Uint8Array(20).fill(0x30), new Uint8Array(30).fill(0x31)] },
  { name: 'padding', codec: codecs.paddingExt, value: 17, prefixesMayParse: true },
  {
    name: 'status_request (OCSP)',
    codec: codecs.statusRequestExt,
    value: { statusType: 1, responderIds: [new Uint8Array(5).fill(1)], requestExtensions: new Uint8Array(0) },
  },
  { name: 'status_request (CertificateEntry)', codec: codecs.certificateStatusExt, value: { statusType: 1, response: new Uint8Array(300).fill(8) } },
];

/** Compares parsed values with the encoded ones, looking through typed arrays. */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? [...x] : x)) ?? 'null');
}

describe('extension codecs: round trip and malformed bodies', () => {
  for (const c of cases) {
    it(c.name, () => {
      const ext = c.codec.encode(c.value as never);
      assert.equal(ext.type, c.codec.type);
      const parsed = c.codec.parse(ext.data);
      assert.deepEqual(plain(parsed), plain(c.parsed ?? c.value));
      // parse -> encode gives the same bytes.
      if (c.parsed === undefined) assert.deepEqual(Buffer.from(c.codec.encode(parsed as never).data), Buffer.from(ext.data));
      if (!c.prefixesMayParse && ext.data.length > 0) everyPrefixIsDecodeError(ext.data, (d) => c.codec.parse(d));
      if (c.codec !== codecs.sessionTicketExt && c.codec !== codecs.paddingExt) trailingByteIsDecodeError(ext.data, (d) => c.codec.parse(d));
    });
  }

  it('forbidden values: illegal_parameter', () => {
    illegal(() => codecs.recordSizeLimitExt.parse(b(0, 63)), /below 64/);
    illegal(() => codecs.serverNameExt.parse(codecs.serverNameExt.encode('bad\x00name').data), /not an ASCII host name/);
    illegal(() => codecs.serverNameExt.parse(codecs.serverNameExt.encode('example.com.').data), /ends with a dot/);
    const twoHosts = new Writer().block(2, (w) => w.u8(0).vec16(Buffer.from('a')).u8(0).vec16(Buffer.from('b'))).finish();
    illegal(() => codecs.serverNameExt.parse(twoHosts), /two host_name/);
    const share = { group: 0x1d, keyExchange: b(1) };
    illegal(() => codecs.keyShareClientExt.parse(codecs.keyShareClientExt.encode([share, share]).data), /two key shares/);
    illegal(() => codecs.alpnSelectedExt.parse(codecs.alpnExt.encode(['h2', 'http/1.1']).data), /not one/);
    illegal(() => codecs.certificateStatusExt.parse(new Writer().u8(2).vec24(b(1)).finish()), /unknown type/);
  });

  it('shapes the RFCs rule out: decode_error', () => {
    decodeErr(() => codecs.supportedGroupsExt.parse(b(0, 0)), /shorter than 1/);
    decodeErr(() => codecs.signatureAlgorithmsExt.parse(b(0, 3, 4, 3, 5)), /odd-length/);
    decodeErr(() => codecs.supportedVersionsClientExt.parse(b(3, 3, 4, 3)), /odd-length/);
    decodeErr(() => codecs.supportedVersionsClientExt.parse(b(0)), /shorter than 1/);
    decodeErr(() => codecs.serverNameExt.parse(b(0, 0)), /empty server_name/);
    decodeErr(() => codecs.alpnExt.parse(b(0, 0)), /empty ALPN/);
    decodeErr(() => codecs.alpnExt.parse(b(0, 1, 0)), /shorter than 1/);
    decodeErr(() => codecs.keyShareServerExt.parse(b(0, 0x1d, 0, 0)), /shorter than 1/);
    decodeErr(() => codecs.cookieExt.parse(b(0, 0)));
    decodeErr(() => codecs.pskKeyExchangeModesExt.parse(b(0)));
    decodeErr(() => codecs.ecPointFormatsExt.parse(b(0)));
    decodeErr(() => codecs.extendedMasterSecretExt.parse(b(0)), /trailing/);
    decodeErr(() => codecs.certificateAuthoritiesExt.parse(b(0, 0)), /empty certificate_authorities/);
    decodeErr(() => codecs.compressCertificateExt.parse(b(0)), /shorter than 1/);
  });

  it('status_request of an unknown type keeps its body unread', () => {
    assert.deepEqual(plain(codecs.statusRequestExt.parse(b(9, 1, 2, 3))), plain({ statusType: 9, responderIds: [], requestExtensions: new Uint8Array(0) }));
  });

  it('a delegated credential signs the content RFC 9345 4.1 lays out', () => {
    const cert = new Uint8Array(10).fill(0xaa);
    const content = delegatedCredentialSignedContent(cert, dc.cred, dc.algorithm, 'server');
    const ctx = 'TLS, server delegated credentials';
    assert.deepEqual(Buffer.from(content.subarray(0, 64)), Buffer.alloc(64, 0x20));
    assert.equal(Buffer.from(content.subarray(64, 64 + ctx.length)).toString('latin1'), ctx);
    assert.equal(content[64 + ctx.length], 0);
    const credBytes = delegatedCredentialExt.encode(dc).data.subarray(0, 4 + 2 + 3 + 91);
    assert.deepEqual(Buffer.from(content.subarray(64 + ctx.length + 1)), Buffer.concat([cert, credBytes, b(0x08, 0x04)]));
    assert.notDeepEqual(Buffer.from(delegatedCredentialSignedContent(cert, dc.cred, dc.algorithm, 'client')), Buffer.from(content));
  });
});

describe('pre_shared_key offer', () => {
  const offer = {
    identities: [
      { identity: new Uint8Array(16).fill(1), obfuscatedTicketAge: 0xdeadbeef },
      { identity: Uint8Array.from(Buffer.from('Client_identity')), obfuscatedTicketAge: 0 },
    ],
    binders: [new Uint8Array(32).fill(0xb1), new Uint8Array(48).fill(0xb2)],
  };

  it('round-trips identities, obfuscated ages and binders, and measures the binders list', () => {
    const data = preSharedKeyOfferExt.encode(offer).data;
    const parsed = preSharedKeyOfferExt.parse(data);
    assert.deepEqual(plain(parsed.identities), plain(offer.identities));
    assert.deepEqual(plain(parsed.binders), plain(offer.binders));
    assert.equal(parsed.bindersLength, pskBindersLength([32, 48]));
    assert.equal(parsed.bindersLength, 2 + 33 + 49);
    everyPrefixIsDecodeError(data, (d) => preSharedKeyOfferExt.parse(d));
    trailingByteIsDecodeError(data, (d) => preSharedKeyOfferExt.parse(d));
  });

  it('refuses no identity, short binders and a count mismatch', () => {
    const w = (ids: [number[], number][], binders: number[][]) =>
      new Writer()
        .block(2, (x) => ids.forEach(([id, age]) => x.vec16(Uint8Array.from(id)).u32(age)))
        .block(2, (x) => binders.forEach((bd) => x.vec8(Uint8Array.from(bd))))
        .finish();
    const binder = Array(32).fill(1) as number[];
    decodeErr(() => preSharedKeyOfferExt.parse(w([], [binder])), /no identity/);
    decodeErr(() => preSharedKeyOfferExt.parse(w([[[], 0]], [binder])), /shorter than 1/);
    decodeErr(() => preSharedKeyOfferExt.parse(w([[[1], 0]], [binder.slice(1)])), /at least 32/);
    illegal(() => preSharedKeyOfferExt.parse(w([[[1], 0], [[2], 0]], [binder])), /2 identities but 1 binders/);
    assert.throws(() => preSharedKeyOfferExt.encode({ identities: offer.identities, binders: [offer.binders[0]] }), RangeError);
  });
});

describe('extension blocks', () => {
  const block = (exts: { type: number; data: Uint8Array }[]) => {
    const w = new Writer();
    writeExtensions(w, exts);
    return w.finish();
  };

  it('keeps unknown extensions opaque and in order', () => {
    const exts = [{ type: 0x1234, data: b(1, 2) }, { type: 0x0a0a, data: b() }, { type: ExtensionType.early_data, data: b() }];
    const r = new Reader(block(exts));
    const read = readExtensions(r, 'Test');
    r.end();
    assert.deepEqual(plain(read), plain(exts));
    assert.deepEqual([...findExtension(read, 0x1234)!], [1, 2]);
    assert.equal(findExtension(read, 7), undefined);
  });

  it('a type twice is illegal_parameter; a cut entry is decode_error', () => {
    illegal(() => readExtensions(new Reader(block([{ type: 5, data: b() }, { type: 5, data: b(1) }])), 'Test'), /repeats extension 5/);
    decodeErr(() => readExtensions(new Reader(b(0, 3, 0, 1, 0)), 'Test'));
    decodeErr(() => readExtensions(new Reader(b(0, 4, 0, 1, 0, 1)), 'Test'));
  });

  it('TLS 1.3: a known extension outside its messages is illegal_parameter; unknown ones pass', () => {
    checkAllowed13([{ type: ExtensionType.key_share, data: b() }, { type: 0x7777, data: b() }], 'SH');
    illegal(() => checkAllowed13([{ type: ExtensionType.server_name, data: b() }], 'SH'), /not allowed in a TLS 1\.3 SH/);
    illegal(() => checkAllowed13([{ type: ExtensionType.extended_master_secret, data: b() }], 'EE'));
    illegal(() => checkAllowed13([{ type: ExtensionType.cookie, data: b() }], 'SH'));
    illegal(() => checkAllowed13([{ type: ExtensionType.signature_algorithms, data: b() }], 'CT'));
  });

  it('an unsolicited response extension is unsupported_extension, except where allowed', () => {
    const got = [{ type: ExtensionType.cookie, data: b() }, { type: ExtensionType.key_share, data: b() }];
    checkSolicited(got, [ExtensionType.key_share], 'HelloRetryRequest', [ExtensionType.cookie]);
    expectAlert(() => checkSolicited(got, [ExtensionType.key_share], 'ServerHello'), AlertDescription.unsupported_extension, /extension 44/);
  });
});
