import { ExtensionType, HandshakeType, TLS12 } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** RFC 8446 4.4.3: the context strings of a TLS 1.3 CertificateVerify. */
export const CERTIFICATE_VERIFY_CONTEXT = {
  server: 'TLS 1.3, server CertificateVerify',
  client: 'TLS 1.3, client CertificateVerify',
} as const;

/** What a TLS 1.3 CertificateVerify signs (RFC 8446 4.4.3): 64 spaces, the context string, 0, the transcript hash. */
export function certificateVerifyContent(transcriptHash: Uint8Array, side: 'server' | 'client' = 'server'): Buffer {
  const ctx = CERTIFICATE_VERIFY_CONTEXT[side];
  const out = Buffer.alloc(64 + ctx.length + 1 + transcriptHash.length, 0x20);
  out.write(ctx, 64, 'latin1');
  out[64 + ctx.length] = 0;
  out.set(transcriptHash, 64 + ctx.length + 1);
  return out;
}

/** Frames a handshake message: msg_type(1) length(3) body. */
export function handshakeMessage(type: HandshakeType, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = type;
  out[1] = (body.length >>> 16) & 0xff;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, 4);
  return out;
}

export interface ExtensionOut {
  type: number;
  data: Uint8Array;
}

function writeExtensions(w: Writer, exts: readonly ExtensionOut[]): void {
  w.block(2, () => {
    for (const e of exts) w.u16(e.type).vec16(e.data);
  });
}

export interface ServerHelloFields {
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuite: number;
  extensions: readonly ExtensionOut[];
}

/** ServerHello / HelloRetryRequest body (RFC 8446 4.1.3); legacy_version is always 1.2. */
export function encodeServerHello(f: ServerHelloFields): Uint8Array {
  const w = new Writer(128);
  w.u16(TLS12).bytes(f.random).vec8(f.sessionId).u16(f.cipherSuite).u8(0);
  if (f.extensions.length > 0) writeExtensions(w, f.extensions);
  return handshakeMessage(HandshakeType.server_hello, w.finish());
}

export function encodeEncryptedExtensions(exts: readonly ExtensionOut[]): Uint8Array {
  const w = new Writer(64);
  writeExtensions(w, exts);
  return handshakeMessage(HandshakeType.encrypted_extensions, w.finish());
}

/** TLS 1.3 Certificate (RFC 8446 4.4.2) with empty per-entry extensions. */
/** A server's Certificate message depends only on its chain: encoded once per chain. */
const serverCertificate13 = new WeakMap<readonly Uint8Array[], Uint8Array>();

export function encodeCertificate13(context: Uint8Array, chain: readonly Uint8Array[]): Uint8Array {
  const cached = context.length === 0 ? serverCertificate13.get(chain) : undefined;
  if (cached) return cached;
  const w = new Writer(4096);
  w.vec8(context);
  w.block(3, () => {
    for (const der of chain) w.vec24(der).u16(0);
  });
  const msg = handshakeMessage(HandshakeType.certificate, w.finish());
  if (context.length === 0) serverCertificate13.set(chain, msg);
  return msg;
}

export function encodeCertificateVerify(scheme: number, signature: Uint8Array): Uint8Array {
  const w = new Writer(signature.length + 8);
  w.u16(scheme).vec16(signature);
  return handshakeMessage(HandshakeType.certificate_verify, w.finish());
}

export function encodeFinished(verifyData: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.finished, verifyData);
}

export function encodeKeyUpdate(requestUpdate: boolean): Uint8Array {
  return handshakeMessage(HandshakeType.key_update, Uint8Array.of(requestUpdate ? 1 : 0));
}

/** KeyUpdate body: update_not_requested(0) or update_requested(1); anything else is illegal_parameter. */
export function parseKeyUpdate(body: Uint8Array): boolean {
  const r = new Reader(body, 'KeyUpdate');
  const v = r.u8();
  r.end();
  if (v > 1) throw illegalParameter('KeyUpdate request_update is not 0 or 1');
  return v === 1;
}

/** Finished body: exactly the hash length. */
export function parseFinished(body: Uint8Array, expectedLength: number): Uint8Array {
  if (body.length !== expectedLength) throw decodeError('Finished has the wrong length');
  return body;
}

// ---- extension bodies the server sends ----

export function extSupportedVersionsServer(version: number): ExtensionOut {
  return { type: ExtensionType.supported_versions, data: Uint8Array.of(version >> 8, version & 0xff) };
}

export function extKeyShareServer(group: number, key: Uint8Array): ExtensionOut {
  return { type: ExtensionType.key_share, data: new Writer(key.length + 4).u16(group).vec16(key).finish() };
}

/** key_share in a HelloRetryRequest: just the selected group. */
export function extKeyShareHrr(group: number): ExtensionOut {
  return { type: ExtensionType.key_share, data: Uint8Array.of(group >> 8, group & 0xff) };
}

export function extCookie(cookie: Uint8Array): ExtensionOut {
  return { type: ExtensionType.cookie, data: new Writer(cookie.length + 2).vec16(cookie).finish() };
}

export function extAlpn(protocol: string): ExtensionOut {
  const name = Buffer.from(protocol, 'latin1');
  return { type: ExtensionType.application_layer_protocol_negotiation, data: new Writer(name.length + 3).block(2, (w) => w.vec8(name)).finish() };
}

export function extSupportedGroups(groups: readonly number[]): ExtensionOut {
  return { type: ExtensionType.supported_groups, data: new Writer(groups.length * 2 + 2).block(2, (w) => groups.forEach((g) => w.u16(g))).finish() };
}

export function extRecordSizeLimit(limit: number): ExtensionOut {
  return { type: ExtensionType.record_size_limit, data: Uint8Array.of(limit >> 8, limit & 0xff) };
}

/** Empty server_name: the server used the client's SNI (RFC 6066 3). */
export function extServerNameAck(): ExtensionOut {
  return { type: ExtensionType.server_name, data: new Uint8Array(0) };
}
