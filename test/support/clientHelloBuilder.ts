/**
 * Builds ClientHellos and records for engine tests, field by field, so a test can
 * break exactly one thing. Extension bodies come from the wire codecs; the body is
 * written here rather than by encodeClientHello because a test may need what that
 * encoder refuses (pre_shared_key in the middle, say).
 */
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import {
  alpnExt,
  keyShareClientExt,
  recordSizeLimitExt,
  serverNameExt,
  signatureAlgorithmsExt,
  supportedGroupsExt,
  supportedVersionsClientExt,
} from '../../src/tls/wire/extensionCodecs.js';
import { writeExtensions, type Extension } from '../../src/tls/wire/extensions.js';
import { handshakeMessage } from '../../src/tls/wire/framing.js';
import { Writer } from '../../src/tls/wire/writer.js';

export interface HelloParts {
  legacyVersion?: number;
  random?: Uint8Array;
  sessionId?: Uint8Array;
  cipherSuites?: number[];
  compression?: number[];
  /** Extensions in order; `undefined` drops the whole block. */
  extensions?: Extension[] | undefined;
}

export const ext = {
  serverName: (name: string) => serverNameExt.encode(name),
  supportedGroups: (groups: number[]) => supportedGroupsExt.encode(groups),
  signatureAlgorithms: (schemes: number[]) => signatureAlgorithmsExt.encode(schemes),
  supportedVersions: (versions: number[]) => supportedVersionsClientExt.encode(versions),
  keyShare: (shares: { group: number; key: Uint8Array }[]) => keyShareClientExt.encode(shares.map((s) => ({ group: s.group, keyExchange: s.key }))),
  alpn: (protocols: string[]) => alpnExt.encode(protocols),
  recordSizeLimit: (n: number) => recordSizeLimitExt.encode(n),
  raw(type: number, data: Uint8Array | number[]): Extension {
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
  if (exts) writeExtensions(w, exts);
  return w.finish();
}

/** A framed handshake message (the wire's handshakeMessage, under the name the tests use). */
export const handshakeMsg = handshakeMessage;

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
