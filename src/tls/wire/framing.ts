/**
 * The handshake message frame (RFC 8446 4, RFC 5246 7.4): msg_type(1) length(3) body.
 * Reassembly across records is the record layer's job; this module frames and unframes
 * whole messages.
 */
import type { HandshakeType } from './constants.js';
import { decodeError } from './errors.js';

/** One whole handshake message: its type, its body, and the framed bytes (for transcripts). */
export interface HandshakeMessage {
  readonly type: number;
  readonly body: Uint8Array;
  readonly raw: Uint8Array;
}

/** Frames a handshake message: msg_type(1) length(3) body. */
export function handshakeMessage(type: HandshakeType, body: Uint8Array): Uint8Array {
  if (body.length >= 1 << 24) throw new RangeError(`handshake body of ${body.length} bytes does not fit a 24-bit length`);
  // From the Buffer pool (see writer.ts), as a plain Uint8Array.
  const b = Buffer.allocUnsafe(4 + body.length);
  const out = new Uint8Array(b.buffer, b.byteOffset, b.length);
  out[0] = type;
  out[1] = (body.length >>> 16) & 0xff;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, 4);
  return out;
}

/**
 * Unframes exactly one handshake message: the header's length must cover the rest of
 * `raw`, no more and no less (decode_error otherwise). The body is a view of `raw`.
 */
export function parseHandshakeMessage(raw: Uint8Array, what = 'handshake message'): HandshakeMessage {
  if (raw.length < 4) throw decodeError(`${what} is shorter than its header`);
  const len = (raw[1] << 16) | (raw[2] << 8) | raw[3];
  if (len !== raw.length - 4) throw decodeError(`${what} has length ${len} in its header but ${raw.length - 4} body bytes`);
  return { type: raw[0], body: raw.subarray(4), raw };
}

/**
 * Splits a run of whole handshake messages (a flight, already reassembled). A message
 * cut off at the end is decode_error.
 */
export function splitHandshakeMessages(data: Uint8Array): HandshakeMessage[] {
  const out: HandshakeMessage[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data.length - pos < 4) throw decodeError('handshake message header truncated');
    const len = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3];
    if (len > data.length - pos - 4) throw decodeError('handshake message truncated');
    out.push(parseHandshakeMessage(data.subarray(pos, pos + 4 + len)));
    pos += 4 + len;
  }
  return out;
}

/** The body of a message that has none (ServerHelloDone, HelloRequest, EndOfEarlyData). */
export function parseEmptyBody(body: Uint8Array, what: string): void {
  if (body.length !== 0) throw decodeError(`${what} has a body of ${body.length} bytes; it must be empty`);
}
