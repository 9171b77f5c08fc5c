/**
 * Builds ClientHellos and records for engine tests, field by field, so a test can
 * break exactly one thing.
 */
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { Writer } from '../../src/tls/wire/writer.js';

export interface HelloParts {
  legacyVersion?: number;
  random?: Uint8Array;
  sessionId?: Uint8Array;
  cipherSuites?: number[];
  compression?: number[];
  /** Extensions in order; `undefined` drops the whole block. */
  extensions?: { type: number; data: Uint8Array }[] | undefined;
}

export const ext = {
  serverName(name: string) {
    const n = Buffer.from(name, 'latin1');
    return { type: 0, data: new Writer().block(2, (w) => w.u8(0).vec16(n)).finish() };
  },
  supportedGroups(groups: number[]) {
    return { type: 10, data: new Writer().block(2, (w) => groups.forEach((g) => w.u16(g))).finish() };
  },
  signatureAlgorithms(schemes: number[]) {
    return { type: 13, data: new Writer().block(2, (w) => schemes.forEach((s) => w.u16(s))).finish() };
  },
  supportedVersions(versions: number[]) {
    return { type: 43, data: new Writer().block(1, (w) => versions.forEach((v) => w.u16(v))).finish() };
  },
  keyShare(shares: { group: number; key: Uint8Array }[]) {
    return { type: 51, data: new Writer().block(2, (w) => shares.forEach((s) => w.u16(s.group).vec16(s.key))).finish() };
  },
  alpn(protocols: string[]) {
    return { type: 16, data: new Writer().block(2, (w) => protocols.forEach((p) => w.vec8(Buffer.from(p)))).finish() };
  },
  recordSizeLimit(n: number) {
    return { type: 28, data: Uint8Array.of(n >> 8, n & 0xff) };
  },
  raw(type: number, data: Uint8Array | number[]) {
    return { type, data: Uint8Array.from(data) };
  },
};

/** A client's x25519 share (its private half is kept for tests that finish the handshake). */
export function x25519Share() {
  return generateKeyExchange(NamedGroup.x25519);
}

/** The extensions of an ordinary TLS 1.3 ClientHello. */
export function defaultExtensions(share = x25519Share().publicKey) {
  return [
    ext.serverName('localhost'),
    ext.supportedGroups([29, 23, 24]),
    ext.signatureAlgorithms([0x0403, 0x0804, 0x0807, 0x0503]),
    ext.supportedVersions([0x0304, 0x0303]),
    ext.keyShare([{ group: 29, key: share }]),
  ];
}

/** ClientHello body (no handshake header). */
export function clientHelloBody(p: HelloParts = {}): Uint8Array {
  const w = new Writer();
  w.u16(p.legacyVersion ?? 0x0303);
  w.bytes(p.random ?? new Uint8Array(32).fill(7));
  w.vec8(p.sessionId ?? new Uint8Array(32).fill(9));
  w.block(2, (x) => (p.cipherSuites ?? [0x1301, 0x1302, 0x1303]).forEach((s) => x.u16(s)));
  w.vec8(Uint8Array.from(p.compression ?? [0]));
  const exts = 'extensions' in p ? p.extensions : defaultExtensions();
  if (exts) w.block(2, (x) => exts.forEach((e) => x.u16(e.type).vec16(e.data)));
  return w.finish();
}

export function handshakeMsg(type: number, body: Uint8Array): Uint8Array {
  return new Writer().u8(type).vec24(body).finish();
}

/**
 * The first whole handshake message in `buf` (header included, copied) and the bytes after
 * it; null while the message is still incomplete.
 */
export function nextHandshakeMessage<T extends ArrayBufferLike>(buf: Buffer<T>): { message: Buffer; rest: Buffer<T> } | null {
  if (buf.length < 4) return null;
  const len = buf.readUIntBE(1, 3);
  if (buf.length < 4 + len) return null;
  return { message: Buffer.from(buf.subarray(0, 4 + len)), rest: buf.subarray(4 + len) };
}

/** The first whole TLS record of `buf` (header and body views) and what follows it, or null. */
export function nextRecord<T extends ArrayBufferLike>(buf: Buffer<T>): { type: number; header: Buffer<T>; body: Buffer<T>; rest: Buffer<T> } | null {
  if (buf.length < 5) return null;
  const end = 5 + buf.readUInt16BE(3);
  if (buf.length < end) return null;
  return { type: buf[0], header: buf.subarray(0, 5), body: buf.subarray(5, end), rest: buf.subarray(end) };
}

export function record(type: number, fragment: Uint8Array, version = 0x0303): Uint8Array {
  return new Writer().u8(type).u16(version).vec16(fragment).finish();
}

export function clientHelloRecord(p: HelloParts = {}): Uint8Array {
  return record(22, handshakeMsg(1, clientHelloBody(p)), 0x0301);
}
