/**
 * TLS 1.2 handshake messages (RFC 5246 7.4, RFC 8422 5, RFC 4279 2, RFC 5489 2, RFC 5077
 * 3.3), as encode/parse pairs. ServerHello, CertificateVerify and Finished share their
 * codecs with TLS 1.3 (serverHello.ts, certificateVerify.ts, finished.ts).
 */
import { HandshakeType } from './constants.js';
import { readDigitallySigned, writeDigitallySigned, type DigitallySigned } from './certificateVerify.js';
import { illegalParameter } from './errors.js';
import { readDistinguishedNames } from './extensionCodecs.js';
import { handshakeMessage, parseEmptyBody } from './framing.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** ECCurveType named_curve (RFC 8422 5.4); the other curve types are deprecated. */
export const CURVE_TYPE_NAMED = 3;

// ---- Certificate (7.4.2) ----

/** The message depends only on the chain: encoded once per chain. */
const certificate12 = new WeakMap<readonly Uint8Array[], Uint8Array>();

/** Certificate: certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>, leaf first. */
export function encodeCertificate12(chain: readonly Uint8Array[]): Uint8Array {
  const cached = certificate12.get(chain);
  if (cached) return cached;
  const w = new Writer(4096);
  w.block(3, () => {
    for (const der of chain) w.vec24(der);
  });
  const msg = handshakeMessage(HandshakeType.certificate, w.finish());
  certificate12.set(chain, msg);
  return msg;
}

/** The DER certificates of a Certificate body, leaf first (empty: a client without one). */
export function parseCertificate12(body: Uint8Array): Uint8Array[] {
  const r = new Reader(body, 'Certificate');
  const list = r.sub24('certificate_list');
  r.end();
  const out: Uint8Array[] = [];
  while (!list.atEnd()) out.push(list.vec24(1));
  return out;
}

// ---- ServerKeyExchange (7.4.3; RFC 8422 5.4; RFC 4279 2; RFC 5489 2) ----

/** ServerECDHParams: curve_type named_curve, the group, the public point. */
export function encodeEcdhParams(group: number, publicKey: Uint8Array): Uint8Array {
  return new Writer(publicKey.length + 4).u8(CURVE_TYPE_NAMED).u16(group).vec8(publicKey).finish();
}

function readEcdhParams(r: Reader): { group: number; publicKey: Uint8Array } {
  const curveType = r.u8();
  if (curveType !== CURVE_TYPE_NAMED) throw illegalParameter(`ServerKeyExchange curve_type ${curveType} is not named_curve`);
  return { group: r.u16(), publicKey: r.vec8(1) };
}

/** ServerDHParams (RFC 5246 7.4.3): dh_p, dh_g, dh_Ys, each opaque<1..2^16-1>. */
export interface DhParams {
  readonly p: Uint8Array;
  readonly g: Uint8Array;
  readonly ys: Uint8Array;
}

export function encodeDhParams(d: DhParams): Uint8Array {
  return new Writer(d.p.length + d.g.length + d.ys.length + 6).vec16(d.p).vec16(d.g).vec16(d.ys).finish();
}

function readDhParams(r: Reader): DhParams {
  return { p: r.vec16(1), g: r.vec16(1), ys: r.vec16(1) };
}

/** ServerKeyExchange for the signed key exchanges: params || DigitallySigned. */
export function encodeServerKeyExchangeSigned(params: Uint8Array, scheme: number, signature: Uint8Array): Uint8Array {
  const w = new Writer(params.length + signature.length + 4);
  w.bytes(params);
  writeDigitallySigned(w, { scheme, signature });
  return handshakeMessage(HandshakeType.server_key_exchange, w.finish());
}

/** ServerKeyExchange for the PSK suites: psk_identity_hint<0..2^16-1>, then ServerECDHParams for ECDHE_PSK (no signature). */
export function encodeServerKeyExchangePsk(identityHint: Uint8Array, ecdhParams?: Uint8Array): Uint8Array {
  const w = new Writer(identityHint.length + (ecdhParams?.length ?? 0) + 2);
  w.vec16(identityHint);
  if (ecdhParams) w.bytes(ecdhParams);
  return handshakeMessage(HandshakeType.server_key_exchange, w.finish());
}

/** What a TLS 1.2 ServerKeyExchange signature covers: client_random, server_random, the params as sent. */
export function serverKeyExchangeSignedContent(clientRandom: Uint8Array, serverRandom: Uint8Array, params: Uint8Array): Buffer {
  return Buffer.concat([clientRandom, serverRandom, params]);
}

/** Key exchanges whose ServerKeyExchange parseServerKeyExchange reads (RSA key exchange sends none). */
export type ServerKeyExchangeKind = 'ECDHE' | 'DHE' | 'PSK' | 'ECDHE_PSK';

/** A parsed ServerKeyExchange; `params` are the signed bytes, as sent. */
export type ServerKeyExchange12 =
  | { kind: 'ECDHE'; group: number; publicKey: Uint8Array; params: Uint8Array; signed: DigitallySigned }
  | { kind: 'DHE'; dh: DhParams; params: Uint8Array; signed: DigitallySigned }
  | { kind: 'PSK'; identityHint: Uint8Array }
  | { kind: 'ECDHE_PSK'; identityHint: Uint8Array; group: number; publicKey: Uint8Array };

/** Decodes a ServerKeyExchange body for the negotiated key exchange (ECDHE_ECDSA and ECDHE_RSA are 'ECDHE'). */
export function parseServerKeyExchange(body: Uint8Array, kx: ServerKeyExchangeKind): ServerKeyExchange12 {
  const r = new Reader(body, 'ServerKeyExchange');
  let out: ServerKeyExchange12;
  switch (kx) {
    case 'ECDHE': {
      const { group, publicKey } = readEcdhParams(r);
      const params = body.subarray(0, r.offset);
      out = { kind: 'ECDHE', group, publicKey, params, signed: readDigitallySigned(r) };
      break;
    }
    case 'DHE': {
      const dh = readDhParams(r);
      const params = body.subarray(0, r.offset);
      out = { kind: 'DHE', dh, params, signed: readDigitallySigned(r) };
      break;
    }
    case 'PSK':
      out = { kind: 'PSK', identityHint: r.vec16() };
      break;
    case 'ECDHE_PSK': {
      const identityHint = r.vec16();
      out = { kind: 'ECDHE_PSK', identityHint, ...readEcdhParams(r) };
      break;
    }
  }
  r.end();
  return out;
}

// ---- CertificateRequest (7.4.4) ----

/** ClientCertificateType (RFC 5246 7.4.4, RFC 8422 5.5). */
export enum ClientCertificateType {
  rsa_sign = 1,
  ecdsa_sign = 64,
}

export interface CertificateRequest12 {
  /** certificate_types<1..2^8-1>. */
  readonly certificateTypes: Uint8Array;
  /** supported_signature_algorithms<2..2^16-2>. */
  readonly signatureAlgorithms: readonly number[];
  /** certificate_authorities<0..2^16-1>: DER distinguished names. */
  readonly certificateAuthorities: readonly Uint8Array[];
}

export function encodeCertificateRequest12(c: CertificateRequest12): Uint8Array {
  const w = new Writer(128);
  w.vec8(c.certificateTypes);
  w.block(2, () => c.signatureAlgorithms.forEach((s) => w.u16(s)));
  w.block(2, () => c.certificateAuthorities.forEach((n) => w.vec16(n)));
  return handshakeMessage(HandshakeType.certificate_request, w.finish());
}

export function parseCertificateRequest12(body: Uint8Array): CertificateRequest12 {
  const r = new Reader(body, 'CertificateRequest');
  const certificateTypes = r.vec8(1);
  const signatureAlgorithms = r.u16List(1);
  const certificateAuthorities = readDistinguishedNames(r, 0);
  r.end();
  return { certificateTypes, signatureAlgorithms, certificateAuthorities };
}

// ---- ServerHelloDone (7.4.5), HelloRequest (7.4.1.1) ----

export function encodeServerHelloDone(): Uint8Array {
  return handshakeMessage(HandshakeType.server_hello_done, new Uint8Array(0));
}

export function parseServerHelloDone(body: Uint8Array): void {
  parseEmptyBody(body, 'ServerHelloDone');
}

export function encodeHelloRequest(): Uint8Array {
  return handshakeMessage(HandshakeType.hello_request, new Uint8Array(0));
}

export function parseHelloRequest(body: Uint8Array): void {
  parseEmptyBody(body, 'HelloRequest');
}

// ---- ClientKeyExchange (7.4.7) ----

/** The ClientKeyExchange of each TLS 1.2 key exchange keyward implements. */
export type ClientKeyExchange12 =
  | { kind: 'ECDHE'; publicKey: Uint8Array }
  | { kind: 'DHE'; publicKey: Uint8Array }
  | { kind: 'RSA'; encryptedPremaster: Uint8Array }
  | { kind: 'PSK'; identity: Uint8Array }
  | { kind: 'ECDHE_PSK'; identity: Uint8Array; publicKey: Uint8Array };

export type ClientKeyExchangeKind = ClientKeyExchange12['kind'];

export function encodeClientKeyExchange(cke: ClientKeyExchange12): Uint8Array {
  const w = new Writer(300);
  switch (cke.kind) {
    case 'ECDHE':
      w.vec8(cke.publicKey);
      break;
    case 'DHE':
      w.vec16(cke.publicKey);
      break;
    case 'RSA':
      w.vec16(cke.encryptedPremaster);
      break;
    case 'PSK':
      w.vec16(cke.identity);
      break;
    case 'ECDHE_PSK':
      w.vec16(cke.identity).vec8(cke.publicKey);
      break;
  }
  return handshakeMessage(HandshakeType.client_key_exchange, w.finish());
}

/**
 * Decodes a ClientKeyExchange body for the negotiated key exchange. Malformed or trailing
 * bytes are decode_error; whether a point is valid is the group's question (illegal_parameter).
 */
export function parseClientKeyExchange(body: Uint8Array, kx: ClientKeyExchangeKind): ClientKeyExchange12 {
  const r = new Reader(body, 'ClientKeyExchange');
  let out: ClientKeyExchange12;
  switch (kx) {
    case 'ECDHE':
      // RFC 8422 5.7: ClientECDiffieHellmanPublic, ecdh_Yc<1..2^8-1> (explicit form).
      out = { kind: 'ECDHE', publicKey: r.vec8(1) };
      break;
    case 'DHE':
      // RFC 5246 7.4.7.2: ClientDiffieHellmanPublic, dh_Yc<1..2^16-1> (explicit form).
      out = { kind: 'DHE', publicKey: r.vec16(1) };
      break;
    case 'RSA':
      // RFC 5246 7.4.7.1: TLS 1.0 and later put a two-byte length before the ciphertext.
      out = { kind: 'RSA', encryptedPremaster: r.vec16(1) };
      break;
    case 'PSK':
      out = { kind: 'PSK', identity: r.vec16(1) };
      break;
    case 'ECDHE_PSK': {
      const identity = r.vec16(1);
      out = { kind: 'ECDHE_PSK', identity, publicKey: r.vec8(1) };
      break;
    }
  }
  r.end();
  return out;
}

// ---- NewSessionTicket (RFC 5077 3.3) ----

export interface NewSessionTicket12 {
  /** ticket_lifetime_hint in seconds; 0 means unspecified. */
  readonly lifetimeHint: number;
  /** ticket<0..2^16-1>. */
  readonly ticket: Uint8Array;
}

export function encodeNewSessionTicket12(t: NewSessionTicket12): Uint8Array {
  return handshakeMessage(HandshakeType.new_session_ticket, new Writer(t.ticket.length + 6).u32(t.lifetimeHint).vec16(t.ticket).finish());
}

export function parseNewSessionTicket12(body: Uint8Array): NewSessionTicket12 {
  const r = new Reader(body, 'NewSessionTicket');
  const t = { lifetimeHint: r.u32(), ticket: r.vec16() };
  r.end();
  return t;
}
