/**
 * TLS 1.2 handshake messages the server sends and reads (RFC 5246 7.4, RFC 8422 5,
 * RFC 4279 2, RFC 5489 2), as encode/decode pairs. ServerHello and Finished share their
 * encoders with TLS 1.3 (handshake.ts).
 */
import { ExtensionType, HandshakeType } from './constants.js';
import { handshakeMessage, type ExtensionOut } from './handshake.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** ECCurveType named_curve (RFC 8422 5.4). */
export const CURVE_TYPE_NAMED = 3;
/** Length of TLS 1.2 Finished verify_data (RFC 5246 7.4.9). */
export const VERIFY_DATA_LENGTH_12 = 12;

/** TLS 1.2 Certificate (RFC 5246 7.4.2): certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>. */
/** The message depends only on the chain: encoded once per chain. */
const certificate12 = new WeakMap<readonly Uint8Array[], Uint8Array>();

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

/** ServerECDHParams (RFC 8422 5.4): curve_type named_curve, the group, the public point. */
export function encodeEcdhParams(group: number, publicKey: Uint8Array): Uint8Array {
  return new Writer(publicKey.length + 4).u8(CURVE_TYPE_NAMED).u16(group).vec8(publicKey).finish();
}

/** ServerKeyExchange for ECDHE_ECDSA / ECDHE_RSA: params || DigitallySigned (scheme, signature<0..2^16-1>). */
export function encodeServerKeyExchangeSigned(params: Uint8Array, scheme: number, signature: Uint8Array): Uint8Array {
  const w = new Writer(params.length + signature.length + 4);
  w.bytes(params).u16(scheme).vec16(signature);
  return handshakeMessage(HandshakeType.server_key_exchange, w.finish());
}

/**
 * ServerKeyExchange for the PSK suites: psk_identity_hint<0..2^16-1>, followed by the
 * ServerECDHParams for ECDHE_PSK (RFC 5489 2; no signature).
 */
export function encodeServerKeyExchangePsk(identityHint: Uint8Array, ecdhParams?: Uint8Array): Uint8Array {
  const w = new Writer(identityHint.length + (ecdhParams?.length ?? 0) + 2);
  w.vec16(identityHint);
  if (ecdhParams) w.bytes(ecdhParams);
  return handshakeMessage(HandshakeType.server_key_exchange, w.finish());
}

export function encodeServerHelloDone(): Uint8Array {
  return handshakeMessage(HandshakeType.server_hello_done, new Uint8Array(0));
}

/** The ClientKeyExchange of each TLS 1.2 key exchange keyward implements. */
export type ClientKeyExchange12 =
  | { kind: 'ECDHE'; publicKey: Uint8Array }
  | { kind: 'RSA'; encryptedPremaster: Uint8Array }
  | { kind: 'PSK'; identity: Uint8Array }
  | { kind: 'ECDHE_PSK'; identity: Uint8Array; publicKey: Uint8Array };

/**
 * Decodes a ClientKeyExchange body for the negotiated key exchange. Malformed or trailing
 * bytes are decode_error; whether a point is valid is the group's question (illegal_parameter).
 */
export function parseClientKeyExchange(body: Uint8Array, kx: 'ECDHE' | 'RSA' | 'PSK' | 'ECDHE_PSK'): ClientKeyExchange12 {
  const r = new Reader(body, 'ClientKeyExchange');
  let out: ClientKeyExchange12;
  switch (kx) {
    case 'ECDHE':
      // RFC 8422 5.7: ClientECDiffieHellmanPublic, ecdh_Yc<1..2^8-1> (explicit form).
      out = { kind: 'ECDHE', publicKey: r.vec8(1) };
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

// ---- ServerHello extensions of TLS 1.2 ----

/** renegotiation_info with an empty renegotiated_connection (RFC 5746 3.6, initial handshake). */
export function extRenegotiationInfoEmpty(): ExtensionOut {
  return { type: ExtensionType.renegotiation_info, data: Uint8Array.of(0) };
}

/** extended_master_secret (RFC 7627 5.1): empty. */
export function extExtendedMasterSecret(): ExtensionOut {
  return { type: ExtensionType.extended_master_secret, data: new Uint8Array(0) };
}

/** ec_point_formats (RFC 8422 5.2): uncompressed only. */
export function extEcPointFormatsUncompressed(): ExtensionOut {
  return { type: ExtensionType.ec_point_formats, data: Uint8Array.of(1, 0) };
}
