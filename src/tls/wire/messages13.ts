/**
 * TLS 1.3 handshake messages other than the hellos and certificates (RFC 8446 4.3.1,
 * 4.5, 4.6.1, 4.6.3, 4.4.1): EncryptedExtensions, EndOfEarlyData, NewSessionTicket,
 * KeyUpdate, and the synthetic message_hash of a transcript after HelloRetryRequest.
 */
import { ExtensionType, HandshakeType } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import {
  alpnSelectedExt,
  earlyDataExt,
  earlyDataMaxSizeExt,
  recordSizeLimitExt,
  serverNameAckExt,
  supportedGroupsExt,
} from './extensionCodecs.js';
import { checkAllowed13, findExtension, readExtensions, writeExtensions, type Extension } from './extensions.js';
import { handshakeMessage, parseEmptyBody } from './framing.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

// ---- EncryptedExtensions (4.3.1) ----

export function encodeEncryptedExtensions(exts: readonly Extension[]): Uint8Array {
  const w = new Writer(64);
  writeExtensions(w, exts);
  return handshakeMessage(HandshakeType.encrypted_extensions, w.finish());
}

/** A parsed EncryptedExtensions, with the extensions a client acts on decoded. */
export interface EncryptedExtensions {
  readonly extensions: readonly Extension[];
  /** server_name, empty: the server used the client's SNI. */
  readonly serverNameAck: boolean;
  /** The server's groups, in its preference (a hint for later connections). */
  readonly supportedGroups?: readonly number[];
  readonly alpn?: string;
  readonly recordSizeLimit?: number;
  /** early_data: the server accepted 0-RTT. */
  readonly earlyData: boolean;
}

/** Decodes an EncryptedExtensions body; an extension not allowed there is illegal_parameter (4.2). */
export function parseEncryptedExtensions(body: Uint8Array): EncryptedExtensions {
  const r = new Reader(body, 'EncryptedExtensions');
  const extensions = readExtensions(r, 'EncryptedExtensions');
  r.end();
  checkAllowed13(extensions, 'EE');
  const get = (t: ExtensionType) => findExtension(extensions, t);
  const sni = get(ExtensionType.server_name);
  const groups = get(ExtensionType.supported_groups);
  const alpn = get(ExtensionType.application_layer_protocol_negotiation);
  const limit = get(ExtensionType.record_size_limit);
  const early = get(ExtensionType.early_data);
  return {
    extensions,
    serverNameAck: sni !== undefined && serverNameAckExt.parse(sni),
    supportedGroups: groups && supportedGroupsExt.parse(groups),
    alpn: alpn && alpnSelectedExt.parse(alpn),
    recordSizeLimit: limit && recordSizeLimitExt.parse(limit),
    earlyData: early !== undefined && earlyDataExt.parse(early),
  };
}

// ---- EndOfEarlyData (4.5) ----

export function encodeEndOfEarlyData(): Uint8Array {
  return handshakeMessage(HandshakeType.end_of_early_data, new Uint8Array(0));
}

export function parseEndOfEarlyData(body: Uint8Array): void {
  parseEmptyBody(body, 'EndOfEarlyData');
}

// ---- NewSessionTicket (4.6.1) ----

/** NewSessionTicket fields; `maxEarlyDataSize` is the early_data extension when the ticket allows 0-RTT. */
export interface NewSessionTicket13 {
  /** ticket_lifetime in seconds (at most 604800: 4.6.1). */
  readonly lifetime: number;
  readonly ageAdd: number;
  /** ticket_nonce<0..255>. */
  readonly nonce: Uint8Array;
  /** ticket<1..2^16-1>: opaque to the client. */
  readonly ticket: Uint8Array;
  /** Every extension (early_data included when maxEarlyDataSize is set); on encode, extra ones to send. */
  readonly extensions: readonly Extension[];
  readonly maxEarlyDataSize?: number;
}

/**
 * Encodes a NewSessionTicket. `maxEarlyDataSize`, if set and `extensions` has no
 * early_data yet, is sent as early_data before the other extensions.
 */
export function encodeNewSessionTicket13(t: NewSessionTicket13): Uint8Array {
  const w = new Writer(64 + t.ticket.length);
  w.u32(t.lifetime).u32(t.ageAdd).vec8(t.nonce).vec16(t.ticket);
  const exts = t.maxEarlyDataSize === undefined || findExtension(t.extensions, ExtensionType.early_data) ? t.extensions : [earlyDataMaxSizeExt.encode(t.maxEarlyDataSize), ...t.extensions];
  writeExtensions(w, exts);
  return handshakeMessage(HandshakeType.new_session_ticket, w.finish());
}

export function parseNewSessionTicket13(body: Uint8Array): NewSessionTicket13 {
  const r = new Reader(body, 'NewSessionTicket');
  const lifetime = r.u32();
  const ageAdd = r.u32();
  const nonce = r.vec8();
  const ticket = r.vec16(1);
  const extensions = readExtensions(r, 'NewSessionTicket');
  r.end();
  checkAllowed13(extensions, 'NST');
  const early = findExtension(extensions, ExtensionType.early_data);
  return { lifetime, ageAdd, nonce, ticket, extensions, maxEarlyDataSize: early && earlyDataMaxSizeExt.parse(early) };
}

// ---- KeyUpdate (4.6.3) ----

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

// ---- message_hash (4.4.1) ----

/** The synthetic message that replaces ClientHello1 in the transcript after a HelloRetryRequest: message_hash, Hash(ClientHello1). */
export function encodeMessageHash(clientHello1Hash: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.message_hash, clientHello1Hash);
}

/** The hash a message_hash carries (it is never sent; this reads a transcript back, as bound mode does). */
export function parseMessageHash(body: Uint8Array, hashLength: number): Uint8Array {
  if (body.length !== hashLength) throw decodeError(`message_hash of ${body.length} bytes, not ${hashLength}`);
  return body;
}
