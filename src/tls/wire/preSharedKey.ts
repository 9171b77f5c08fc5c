/**
 * pre_shared_key (RFC 8446 4.2.11) and what the binders need: the offer in a ClientHello
 * (identities with obfuscated ticket ages, binders), the selected identity in a
 * ServerHello, and the binder offset: binders are HMACs over the ClientHello truncated
 * just before the binders list (4.2.11.2), and the extension is always last in the
 * ClientHello, so the binders list is the tail of the message.
 */
import { ExtensionType } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import { extensionCodec } from './extensionCodecs.js';
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/** PskKeyExchangeMode (RFC 8446 4.2.9). */
export enum PskKeyExchangeMode {
  psk_ke = 0,
  psk_dhe_ke = 1,
}

/** PskIdentity: opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age (0 for external PSKs). */
export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

/** OfferedPsks: the identities and one binder (<32..255>) per identity, in the same order. */
export interface PskOffer {
  readonly identities: readonly PskIdentity[];
  readonly binders: readonly Uint8Array[];
}

/** A received offer, with the size of its binders list (length prefix included). */
export interface ParsedPskOffer extends PskOffer {
  readonly bindersLength: number;
}

/** Bytes of the binders list (its u16 length and each u8-prefixed binder) for binders of these lengths. */
export function pskBindersLength(binderLengths: readonly number[]): number {
  return binderLengths.reduce((n, len) => n + 1 + len, 2);
}

function writeOffer(w: Writer, offer: PskOffer): void {
  if (offer.identities.length === 0 || offer.identities.length !== offer.binders.length) {
    throw new RangeError('a PSK offer needs one binder per identity, and at least one identity');
  }
  w.block(2, () => offer.identities.forEach((id) => w.vec16(id.identity).u32(id.obfuscatedTicketAge)));
  w.block(2, () => offer.binders.forEach((b) => w.vec8(b)));
}

function readOffer(r: Reader): ParsedPskOffer {
  const ids = r.sub16('pre_shared_key identities');
  const identities: PskIdentity[] = [];
  while (!ids.atEnd()) identities.push({ identity: ids.vec16(1), obfuscatedTicketAge: ids.u32() });
  if (identities.length === 0) throw decodeError('pre_shared_key offers no identity');
  const start = r.offset;
  const list = r.sub16('pre_shared_key binders');
  const binders: Uint8Array[] = [];
  while (!list.atEnd()) {
    const b = list.vec8();
    if (b.length < 32) throw decodeError(`PSK binder of ${b.length} bytes (at least 32)`);
    binders.push(b);
  }
  if (binders.length !== identities.length) throw illegalParameter(`pre_shared_key has ${identities.length} identities but ${binders.length} binders`);
  return { identities, binders, bindersLength: r.offset - start };
}

/** pre_shared_key in a ClientHello: OfferedPsks. */
export const preSharedKeyOfferExt = extensionCodec<PskOffer, ParsedPskOffer>(ExtensionType.pre_shared_key, writeOffer, readOffer);

/** pre_shared_key in a ServerHello: uint16 selected_identity. */
export const preSharedKeySelectedExt = extensionCodec<number>(
  ExtensionType.pre_shared_key,
  (w, i) => w.u16(i),
  (r) => r.u16(),
);

/**
 * Where the binders list starts in a framed ClientHello (handshake header included) whose
 * pre_shared_key carries binders of these lengths: the binders are computed over
 * `message.subarray(0, offset)`.
 */
export function pskBindersOffset(clientHello: Uint8Array, binderLengths: readonly number[]): number {
  const offset = clientHello.length - pskBindersLength(binderLengths);
  if (offset < 4) throw new RangeError('the ClientHello is shorter than its binders');
  return offset;
}

/**
 * Writes the real binders over the placeholders of a framed ClientHello encoded with
 * binders of the same lengths (a client encodes, hashes the prefix, then fills in).
 * Throws RangeError if the tail is not a binders list of those lengths.
 */
export function writePskBinders(clientHello: Uint8Array, binders: readonly Uint8Array[]): void {
  let pos = pskBindersOffset(
    clientHello,
    binders.map((b) => b.length),
  );
  const listLength = (clientHello[pos] << 8) | clientHello[pos + 1];
  if (listLength !== clientHello.length - pos - 2) throw new RangeError('the ClientHello does not end with a binders list of these lengths');
  pos += 2;
  for (const b of binders) {
    if (clientHello[pos] !== b.length) throw new RangeError('a binder placeholder has another length');
    clientHello.set(b, pos + 1);
    pos += 1 + b.length;
  }
}
