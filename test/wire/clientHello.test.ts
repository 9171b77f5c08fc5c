// ClientHello: encode -> parse, real ClientHellos of openssl and gnutls re-encoded byte for
// byte (openssl's external-PSK offer with its binder checked at the parsed binder offset),
// every size the protocol allows accepted (issue 16), and each malformation refused with
// the alert RFC 8446 names.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { tls13BinderKey, tls13EarlySecret, tls13FinishedVerifyData } from '../../src/tls/crypto/keySchedule13.js';
import { encodeClientHello, parseClientHello, type ClientHelloFields } from '../../src/tls/wire/clientHello.js';
import { ExtensionType, HandshakeType, TLS12, TLS13 } from '../../src/tls/wire/constants.js';
import * as codecs from '../../src/tls/wire/extensionCodecs.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { parseHandshakeMessage } from '../../src/tls/wire/framing.js';
import { MAX_CLIENT_HELLO_BODY } from '../../src/tls/wire/limits.js';
import { preSharedKeyOfferExt, pskBindersOffset, writePskBinders } from '../../src/tls/wire/preSharedKey.js';
import { Writer } from '../../src/tls/wire/writer.js';
import { gnutlsCli, opensslClient } from '../support/peers.js';
import { decodeErr, illegal } from './expectAlert.js';

const random = new Uint8Array(32).fill(0x11);
const sessionId = new Uint8Array(32).fill(0x22);

function fields(extensions: Extension[] | undefined, more: Partial<ClientHelloFields> = {}): ClientHelloFields {
  return { random, sessionId, cipherSuites: [0x1301, 0x1302], extensions, ...more };
}

const body = (f: ClientHelloFields) => parseHandshakeMessage(encodeClientHello(f)).body;

describe('ClientHello encode and parse', () => {
  const share = { group: 0x1d, keyExchange: new Uint8Array(32).fill(3) };
  const exts = [
    codecs.serverNameExt.encode('example.com'),
    codecs.supportedGroupsExt.encode([0x1d, 0x17]),
    codecs.signatureAlgorithmsExt.encode([0x0403, 0x0804]),
    codecs.signatureAlgorithmsCertExt.encode([0x0403]),
    codecs.supportedVersionsClientExt.encode([TLS13, TLS12]),
    codecs.keyShareClientExt.encode([share]),
    codecs.alpnExt.encode(['h2']),
    codecs.recordSizeLimitExt.encode(16385),
    codecs.certificateAuthoritiesExt.encode([Uint8Array.of(0x30, 0)]),
    codecs.compressCertificateExt.encode([2]),
    codecs.delegatedCredentialSchemesExt.encode([0x0403]),
    codecs.statusRequestExt.encode({ statusType: 1, responderIds: [], requestExtensions: new Uint8Array(0) }),
    codecs.extendedMasterSecretExt.encode(),
    codecs.renegotiationInfoExt.encode(new Uint8Array(0)),
    codecs.ecPointFormatsExt.encode(Uint8Array.of(0)),
    codecs.sessionTicketExt.encode(new Uint8Array(0)),
    codecs.postHandshakeAuthExt.encode(),
    codecs.earlyDataExt.encode(),
    codecs.cookieExt.encode(Uint8Array.of(9)),
    { type: 0x0a0a, data: Uint8Array.of(1, 2, 3) },
    codecs.paddingExt.encode(10),
    codecs.pskKeyExchangeModesExt.encode(Uint8Array.of(1)),
  ];

  it('every typed field comes back; unknown extensions stay in the list', () => {
    const ch = parseClientHello(body(fields(exts)));
    assert.equal(ch.legacyVersion, TLS12);
    assert.deepEqual(ch.cipherSuites, [0x1301, 0x1302]);
    assert.deepEqual([...ch.compressionMethods], [0]);
    assert.equal(ch.serverName, 'example.com');
    assert.deepEqual(ch.supportedGroups, [0x1d, 0x17]);
    assert.deepEqual(ch.signatureAlgorithms, [0x0403, 0x0804]);
    assert.deepEqual(ch.signatureAlgorithmsCert, [0x0403]);
    assert.deepEqual(ch.supportedVersions, [TLS13, TLS12]);
    assert.deepEqual(ch.keyShares?.map((s) => [s.group, Buffer.from(s.keyExchange)]), [[0x1d, Buffer.from(share.keyExchange)]]);
    assert.deepEqual(ch.alpn, ['h2']);
    assert.equal(ch.recordSizeLimit, 16385);
    assert.equal(ch.certificateAuthorities?.length, 1);
    assert.deepEqual(ch.compressCertificate, [2]);
    assert.deepEqual(ch.delegatedCredentialSchemes, [0x0403]);
    assert.equal(ch.statusRequest?.statusType, 1);
    assert.ok(ch.extendedMasterSecret && ch.postHandshakeAuth && ch.earlyData);
    assert.equal(ch.renegotiationInfo?.length, 0);
    assert.deepEqual([...ch.ecPointFormats!], [0]);
    assert.equal(ch.sessionTicket?.length, 0);
    assert.deepEqual([...ch.cookie!], [9]);
    assert.deepEqual([...ch.pskKeyExchangeModes!], [1]);
    assert.equal(ch.hasPreSharedKey, false);
    assert.deepEqual(ch.extensions.map((e) => e.type), exts.map((e) => e.type));
  });

  it('a TLS 1.2 ClientHello may have no extension block', () => {
    const ch = parseClientHello(body(fields(undefined)));
    assert.deepEqual(ch.extensions, []);
    assert.equal(ch.supportedVersions, undefined);
  });

  it('the PSK offer: identities, binders and the binder offset; binders filled in place', () => {
    const offer = {
      identities: [{ identity: new Uint8Array(50).fill(7), obfuscatedTicketAge: 0x01020304 }],
      binders: [new Uint8Array(32)],
    };
    const msg = encodeClientHello(fields([...exts, codecs.pskKeyExchangeModesExt.encode(Uint8Array.of(1)), preSharedKeyOfferExt.encode(offer)].filter((e, i, a) => a.findIndex((x) => x.type === e.type) === i)));
    const offset = pskBindersOffset(msg, [32]);
    assert.equal(offset, msg.length - 35);
    const binder = createHash('sha256').update(msg.subarray(0, offset)).digest();
    writePskBinders(msg, [binder]);
    const ch = parseClientHello(parseHandshakeMessage(msg).body);
    assert.equal(ch.hasPreSharedKey, true);
    assert.equal(ch.pskOffer?.bindersOffset, offset);
    assert.equal(ch.pskOffer?.identities[0].obfuscatedTicketAge, 0x01020304);
    assert.deepEqual(Buffer.from(ch.pskOffer!.binders[0]), binder);
    // Filling the binders does not touch the prefix they cover.
    assert.deepEqual(createHash('sha256').update(msg.subarray(0, offset)).digest(), binder);
    assert.throws(() => writePskBinders(msg, [new Uint8Array(48)]), RangeError);
  });

  it('pre_shared_key not last: illegal_parameter on parse, RangeError on encode', () => {
    const psk = preSharedKeyOfferExt.encode({ identities: [{ identity: Uint8Array.of(1), obfuscatedTicketAge: 0 }], binders: [new Uint8Array(32)] });
    const w = new Writer();
    w.u16(TLS12).bytes(random).vec8(sessionId).block(2, (x) => x.u16(0x1301)).vec8(Uint8Array.of(0));
    w.block(2, (x) => [psk, codecs.earlyDataExt.encode()].forEach((e) => x.u16(e.type).vec16(e.data)));
    illegal(() => parseClientHello(w.finish()), /not the last/);
    assert.throws(() => encodeClientHello(fields([psk, codecs.earlyDataExt.encode()])), RangeError);
  });
});

describe('ClientHello: every size the protocol allows (issue 16)', () => {
  it('32,715 signature_algorithms entries (about 65 KB)', () => {
    const schemes = Array.from({ length: 32715 }, (_, i) => 0x0100 + (i % 0xfe00));
    const ch = parseClientHello(body(fields([codecs.signatureAlgorithmsExt.encode(schemes)])));
    assert.equal(ch.signatureAlgorithms?.length, 32715);
  });

  it('thousands of unknown extensions, empty and with payloads', () => {
    const unknown = Array.from({ length: 6000 }, (_, i) => ({ type: 0x4000 + i, data: new Uint8Array(i % 3 === 0 ? 0 : 6).fill(i & 0xff) }));
    const ch = parseClientHello(body(fields(unknown)));
    assert.equal(ch.extensions.length, 6000);
    const most = Array.from({ length: 16383 }, (_, i) => ({ type: 0x8000 + i, data: new Uint8Array(0) }));
    assert.equal(parseClientHello(body(fields(most))).extensions.length, 16383, 'the most a 2^16-1 block holds');
  });

  it('~11,000 cipher suites, and the most a ClientHello can list (32,767)', () => {
    const suites = Array.from({ length: 11000 }, (_, i) => 0x2000 + i);
    assert.equal(parseClientHello(body(fields(undefined, { cipherSuites: [...suites, 0x1301] }))).cipherSuites.length, 11001);
    const most = Array.from({ length: 32767 }, (_, i) => i);
    assert.equal(parseClientHello(body(fields(undefined, { cipherSuites: most }))).cipherSuites.length, 32767);
  });

  it('one 65,531-byte extension', () => {
    const ch = parseClientHello(body(fields([{ type: 0xfe00, data: new Uint8Array(65531).fill(1) }])));
    assert.equal(ch.extensions[0].data.length, 65531);
  });

  it('the largest ClientHello of all is exactly MAX_CLIENT_HELLO_BODY bytes and parses', () => {
    const f = fields([{ type: 0xfe00, data: new Uint8Array(65531) }], {
      cipherSuites: Array.from({ length: 32767 }, (_, i) => i),
      compressionMethods: Uint8Array.from({ length: 255 }, (_, i) => i),
    });
    const b = body(f);
    assert.equal(b.length, MAX_CLIENT_HELLO_BODY);
    assert.equal(parseClientHello(b).compressionMethods.length, 255);
  });
});

describe('ClientHello: malformed', () => {
  const good = body(fields([codecs.serverNameExt.encode('a.example'), codecs.supportedVersionsClientExt.encode([TLS13])]));
  const extStart = 2 + 32 + 33 + 2 + 4 + 2;

  it('every truncation is decode_error (except the legal cut before the extension block)', () => {
    for (let n = 0; n < good.length; n++) {
      if (n === extStart) {
        assert.equal(parseClientHello(good.subarray(0, n)).extensions.length, 0);
        continue;
      }
      decodeErr(() => parseClientHello(good.subarray(0, n)));
    }
  });

  it('trailing bytes, bad lengths and bad vectors are decode_error', () => {
    decodeErr(() => parseClientHello(Buffer.concat([good, Buffer.of(0)])), /trailing/);
    const w = (mut: (w: Writer) => void) => {
      const x = new Writer();
      mut(x);
      return x.finish();
    };
    decodeErr(() => parseClientHello(w((x) => x.u16(TLS12).bytes(random).vec8(new Uint8Array(33)).block(2, (y) => y.u16(0x1301)).vec8(Uint8Array.of(0)))), /longer than 32/);
    decodeErr(() => parseClientHello(w((x) => x.u16(TLS12).bytes(random).vec8(sessionId).u16(0).vec8(Uint8Array.of(0)))), /shorter than 1/);
    decodeErr(() => parseClientHello(w((x) => x.u16(TLS12).bytes(random).vec8(sessionId).u16(3).u16(0x1301).u8(0).vec8(Uint8Array.of(0)))));
    decodeErr(() => parseClientHello(w((x) => x.u16(TLS12).bytes(random).vec8(sessionId).block(2, (y) => y.u16(0x1301)).u8(0))), /shorter than 1/);
    // Extension block length one more than its contents.
    const bad = Buffer.from(good);
    bad.writeUInt16BE(bad.readUInt16BE(extStart) + 1, extStart);
    decodeErr(() => parseClientHello(bad));
  });

  it('a duplicate extension is illegal_parameter', () => {
    const dup = body(fields([codecs.extendedMasterSecretExt.encode(), codecs.extendedMasterSecretExt.encode()]));
    illegal(() => parseClientHello(dup), /repeats extension 23/);
  });

  it('a malformed known extension inside is refused with its own alert', () => {
    decodeErr(() => parseClientHello(body(fields([{ type: ExtensionType.supported_groups, data: Uint8Array.of(0, 1, 0) }]))));
    illegal(() => parseClientHello(body(fields([codecs.recordSizeLimitExt.encode(10)]))), /below 64/);
  });
});

/** Starts a TCP server that takes the first whole ClientHello a client sends, then closes. */
async function captureClientHello(run: (port: number) => Promise<unknown>): Promise<Uint8Array> {
  let resolveHello!: (b: Uint8Array) => void;
  const hello = new Promise<Uint8Array>((r) => (resolveHello = r));
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    let buf = Buffer.alloc(0);
    let hs = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        const len = buf.readUInt16BE(3);
        if (buf[0] === 22) hs = Buffer.concat([hs, buf.subarray(5, 5 + len)]);
        buf = buf.subarray(5 + len);
      }
      if (hs.length >= 4 && hs.length >= 4 + hs.readUIntBE(1, 3)) {
        resolveHello(hs.subarray(0, 4 + hs.readUIntBE(1, 3)));
        s.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const [raw] = await Promise.all([hello, run(port)]);
    return raw;
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}

function reencodes(raw: Uint8Array) {
  const msg = parseHandshakeMessage(raw);
  assert.equal(msg.type, HandshakeType.client_hello);
  const ch = parseClientHello(msg.body);
  assert.deepEqual(Buffer.from(encodeClientHello({ ...ch, extensions: ch.extensions })), Buffer.from(raw), 'parse -> encode gives the bytes sent');
  return ch;
}

describe('real ClientHellos', () => {
  it("openssl s_client's TLS 1.3 external-PSK offer: the binder verifies over the prefix at bindersOffset", async () => {
    const psk = Buffer.alloc(32, 0x5a);
    const raw = await captureClientHello((port) =>
      opensslClient(port, { args: ['-tls1_3', '-psk', psk.toString('hex'), '-psk_identity', 'wire-test', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'], timeoutMs: 10_000 }),
    );
    const ch = reencodes(raw);
    const offer = ch.pskOffer!;
    assert.equal(Buffer.from(offer.identities[0].identity).toString(), 'wire-test');
    assert.equal(offer.identities[0].obfuscatedTicketAge, 0, 'external PSKs carry age 0');
    assert.equal(offer.bindersOffset, pskBindersOffset(raw, [32]));
    const binderKey = tls13BinderKey('sha256', tls13EarlySecret('sha256', psk), true);
    const expected = tls13FinishedVerifyData('sha256', binderKey, createHash('sha256').update(raw.subarray(0, offer.bindersOffset)).digest());
    assert.deepEqual(Buffer.from(offer.binders[0]), expected);
  });

  it("openssl s_client's TLS 1.2-only ClientHello", async () => {
    const raw = await captureClientHello((port) => opensslClient(port, { args: ['-tls1_2'], servername: 'wire.example', timeoutMs: 10_000 }));
    const ch = reencodes(raw);
    assert.equal(ch.serverName, 'wire.example');
    assert.equal(ch.supportedVersions, undefined);
    assert.equal(ch.extendedMasterSecret, true);
  });

  it("gnutls-cli's ClientHello", async () => {
    const raw = await captureClientHello((port) => gnutlsCli(port, { servername: 'wire.example', timeoutMs: 10_000 }));
    const ch = reencodes(raw);
    assert.equal(ch.serverName, 'wire.example');
    assert.ok(ch.supportedVersions?.includes(TLS13));
    assert.ok((ch.keyShares?.length ?? 0) > 0);
  });
});
