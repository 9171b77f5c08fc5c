import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { KeyOperationError } from '../../src/keys/keyOperations.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  FrameType,
  Tag,
  TlvWriter,
  decodeDecryptPremasterRequest,
  decodeDeleteKeyRequest,
  decodeDeletePskRequest,
  decodeError,
  decodeGenerateKeyRequest,
  decodeGetKeyRequest,
  decodeKeyInfos,
  decodeListKeysResult,
  decodeOutput,
  decodePskMasterSecretRequest,
  decodePutKeyRequest,
  decodePutPskRequest,
  decodeSignRequest,
  encodeError,
  encodeFrame,
  encodeListKeysResult,
  encodePskMasterSecretRequest,
  encodeSignRequest,
  errorCodeFromWire,
  errorCodeToWire,
} from '../../src/keyd/protocol.js';
import { prf12 as tls12Prf, pskMasterSecret, pskPremaster as pskPremasterSecret } from '../../src/tls/crypto/prf12.js';

const KEY_ID = 'ab'.repeat(32);

test('SIGN request round trip, by key id and by server name, with the whole context', () => {
  const message = randomBytes(130);
  const ctx = { tlsVersion: 'TLSv1.3' as const, serverName: 'www.example.com', peerAddress: '192.0.2.1:443', purpose: 'tls13-server-certificate-verify' as const, connectionId: 'c-17' };
  const a = decodeSignRequest(encodeSignRequest({ key: { keyId: KEY_ID }, scheme: 0x0403, message, ctx }));
  assert.deepEqual(a.key, { keyId: KEY_ID });
  assert.equal(a.scheme, 0x0403);
  assert.deepEqual(Buffer.from(a.message), message);
  assert.deepEqual(a.ctx, ctx);
  const b = decodeSignRequest(encodeSignRequest({ key: { serverName: 'Example.COM.' }, scheme: 0x0804, message, ctx: { tlsVersion: 'TLSv1.2' } }));
  assert.deepEqual(b.key, { serverName: 'example.com' });
  assert.deepEqual(b.ctx, { tlsVersion: 'TLSv1.2' });
});

test('a body still in its writer frames to the same bytes as the finished body; UTF-8 names survive', () => {
  const ctx = { tlsVersion: 'TLSv1.3' as const, serverName: 'bücher.example', peerAddress: '[2001:db8::1]:443', connectionId: 'c-é' };
  const m = { key: { keyId: KEY_ID }, scheme: 0x0403, message: randomBytes(100), ctx, handshakeMessages: [randomBytes(40), randomBytes(3)] };
  const w = new TlvWriter().bytes(Tag.MESSAGE, randomBytes(20)).str(Tag.SERVER_NAME, 'ünï').u16(Tag.SCHEME, 0x0804).u8(Tag.PRF_HASH, 2);
  assert.equal(w.length, w.finish().length);
  assert.deepEqual(encodeFrame(FrameType.SIGN, 77, w), encodeFrame(FrameType.SIGN, 77, w.finish()));
  const body = encodeSignRequest(m);
  const [frame] = new FrameDecoder().push(encodeFrame(FrameType.SIGN, 5, body));
  assert.deepEqual(Buffer.from(frame.body), Buffer.from(body));
  const back = decodeSignRequest(frame.body);
  assert.deepEqual(back.ctx, ctx);
  assert.deepEqual(back.handshakeMessages?.map((x) => Buffer.from(x)), m.handshakeMessages);
});

test('frames: header layout, split at every byte, several per chunk', () => {
  const body = Uint8Array.from([1, 2, 3]);
  const f = encodeFrame(FrameType.SIGN, 0x01020304, body);
  assert.deepEqual([...f], [0, 0, 0, 9, 1, 0x11, 1, 2, 3, 4, 1, 2, 3]);
  const stream = Buffer.concat([f, encodeFrame(FrameType.PING, 7), encodeFrame(FrameType.CANCEL, 9)]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder();
    const frames = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
    assert.deepEqual(
      frames.map((x) => [x.version, x.type, x.id, [...x.body]]),
      [
        [1, 0x11, 0x01020304, [1, 2, 3]],
        [1, FrameType.PING, 7, []],
        [1, FrameType.CANCEL, 9, []],
      ],
    );
    assert.equal(d.buffered, 0);
  }
  // One byte at a time.
  const d = new FrameDecoder();
  const got = [];
  for (const b of stream) got.push(...d.push(Buffer.of(b)));
  assert.equal(got.length, 3);
});

test('frames: a length above the maximum or below the header is refused', () => {
  const d = new FrameDecoder(4096);
  const big = Buffer.alloc(4);
  big.writeUInt32BE(4097);
  assert.throws(() => d.push(big), (e: unknown) => e instanceof KeyOperationError && e.code === 'bad-request' && /exceeds/.test(e.message));
  assert.throws(() => new FrameDecoder().push(Buffer.of(0, 0, 0, 5, 1, 1, 0, 0, 0)), (e: unknown) => e instanceof KeyOperationError && /shorter/.test(e.message));
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0xffffffff);
  assert.throws(() => new FrameDecoder().push(huge), /exceeds the 1048576-byte maximum/);
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 1 << 20);
});

test('TLV: truncated fields, duplicates and missing fields are bad-request; unknown tags are ignored', () => {
  const isBad = (e: unknown): boolean => e instanceof KeyOperationError && e.code === 'bad-request';
  const good = encodeSignRequest({ key: { keyId: KEY_ID }, scheme: 0x0403, message: Buffer.alloc(10), ctx: { tlsVersion: 'TLSv1.3' } });
  assert.throws(() => decodeSignRequest(good.subarray(0, good.length - 1)), isBad);
  const dup = Buffer.concat([good, new TlvWriter().u16(Tag.SCHEME, 0x0804).finish()]);
  assert.throws(() => decodeSignRequest(dup), (e: unknown) => isBad(e) && /SCHEME appears 2 times/.test((e as Error).message));
  const withUnknown = Buffer.concat([good, new TlvWriter().bytes(0x7f as Tag, Buffer.from('future')).finish()]);
  assert.equal(decodeSignRequest(withUnknown).scheme, 0x0403);
  assert.throws(() => decodeSignRequest(new TlvWriter().u16(Tag.SCHEME, 1).finish()), isBad);
  const shortId = new TlvWriter().bytes(Tag.KEY_ID, Buffer.alloc(31)).finish();
  assert.throws(() => decodeGetKeyRequest(shortId), /32 bytes/);
  const ctrl = new TlvWriter().str(Tag.SERVER_NAME, 'a\nb').finish();
  assert.throws(() => decodeGetKeyRequest(ctrl), /control characters/);
  const badUtf8 = new TlvWriter().bytes(Tag.SERVER_NAME, Buffer.of(0xff, 0xfe)).finish();
  assert.throws(() => decodeGetKeyRequest(badUtf8), /UTF-8/);
});

test('every decoder survives random input and throws only KeyOperationError', () => {
  const decoders = [
    decodeSignRequest,
    decodeGetKeyRequest,
    decodeDecryptPremasterRequest,
    decodePskMasterSecretRequest,
    decodePutKeyRequest,
    decodeDeleteKeyRequest,
    decodeGenerateKeyRequest,
    decodePutPskRequest,
    decodeDeletePskRequest,
    decodeOutput,
    decodeKeyInfos,
    decodeListKeysResult,
    decodeError,
  ];
  const seeds = [
    encodeSignRequest({ key: { keyId: KEY_ID }, scheme: 0x0403, message: Buffer.alloc(20), ctx: { tlsVersion: 'TLSv1.3', serverName: 'a.example' } }),
    encodeListKeysResult({ keys: [{ keyId: KEY_ID, spki: Buffer.alloc(5), schemes: [0x0403], serverNames: ['a'], keyType: 'ec-p256', source: 'store' }], psks: [{ identity: Buffer.from('x') }] }),
  ];
  for (let i = 0; i < 3000; i++) {
    let input: Buffer;
    if (i % 2 === 0) input = randomBytes(i % 64);
    else {
      input = Buffer.from(seeds[i % seeds.length]);
      for (let k = 0; k < 3; k++) input[(i * 7 + k * 13) % input.length] ^= 1 << (i % 8);
      input = input.subarray(0, input.length - (i % 5));
    }
    for (const dec of decoders) {
      try {
        dec(input);
      } catch (e) {
        assert.ok(e instanceof KeyOperationError, `${dec.name} threw ${String(e)}`);
      }
    }
  }
});

test('error codes map both ways; unknown numbers are internal', () => {
  for (const c of ['aborted', 'timeout', 'unavailable', 'refused', 'unknown-key', 'unsupported', 'bad-request', 'rate-limited', 'internal', 'unknown-psk-identity'] as const) {
    assert.equal(errorCodeFromWire(errorCodeToWire(c)), c);
    assert.deepEqual(decodeError(encodeError({ code: c, message: 'm' })), { code: c, message: 'm' });
  }
  assert.equal(errorCodeFromWire(0), 'internal');
  assert.equal(errorCodeFromWire(200), 'internal');
  assert.deepEqual(decodeError(encodeError({ code: 'unsupported', message: 'v', supportedVersions: [1] })).supportedVersions, [1]);
});

test('PSK_MASTER_SECRET round trip and input bounds', () => {
  const req = { identity: Buffer.from('client1'), otherSecret: randomBytes(32), hash: 'sha384' as const, extended: true, seed: randomBytes(48) };
  const m = decodePskMasterSecretRequest(encodePskMasterSecretRequest({ req, ctx: { tlsVersion: 'TLSv1.2', peerAddress: '[::1]:5' } }));
  assert.deepEqual(Buffer.from(m.req.identity), req.identity);
  assert.deepEqual(Buffer.from(m.req.otherSecret!), req.otherSecret);
  assert.equal(m.req.hash, 'sha384');
  assert.equal(m.req.extended, true);
  const plain = decodePskMasterSecretRequest(encodePskMasterSecretRequest({ req: { ...req, otherSecret: null, extended: false, seed: randomBytes(64) }, ctx: { tlsVersion: 'TLSv1.2' } }));
  assert.equal(plain.req.otherSecret, null);
  assert.throws(() => decodePskMasterSecretRequest(encodePskMasterSecretRequest({ req: { ...req, seed: randomBytes(10) }, ctx: { tlsVersion: 'TLSv1.2' } })), /SEED/);
});

test('TLS 1.2 PRF matches OpenSSL (TLS1-PRF) for SHA-256 and SHA-384', () => {
  const out256 = tls12Prf('sha256', Buffer.from('9bbe436ba940f017b17652849a71db35', 'hex'), 'test label', Buffer.from('a0ba9f936cda311827a6f796ffd5198c', 'hex'), 100);
  assert.equal(
    out256.toString('hex'),
    'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66',
  );
  const out384 = tls12Prf('sha384', Buffer.from('b80b733d6ceefcdc71566ea48e5567df', 'hex'), 'test label', Buffer.from('cd665cf6a8447dd6ff8b27555edb7465', 'hex'), 48);
  assert.equal(out384.toString('hex'), '7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0');
});

test('PSK premaster layout (RFC 4279 / 5489) and master secret', () => {
  const psk = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
  assert.equal(pskPremasterSecret(psk, null).toString('hex'), '0010' + '00'.repeat(16) + '0010' + psk.toString('hex'));
  assert.equal(pskPremasterSecret(psk, Buffer.of(9, 9)).toString('hex'), '00020909' + '0010' + psk.toString('hex'));
  const seed = randomBytes(64);
  const ms = pskMasterSecret(psk, { identity: Buffer.from('i'), otherSecret: null, hash: 'sha256', extended: false, seed });
  assert.deepEqual(ms, tls12Prf('sha256', pskPremasterSecret(psk, null), 'master secret', seed, 48));
  const ems = pskMasterSecret(psk, { identity: Buffer.from('i'), otherSecret: null, hash: 'sha256', extended: true, seed: seed.subarray(0, 32) });
  assert.deepEqual(ems, tls12Prf('sha256', pskPremasterSecret(psk, null), 'extended master secret', seed.subarray(0, 32), 48));
});
