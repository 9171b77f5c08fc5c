/** Finished (RFC 8446 4.4.4, RFC 5246 7.4.9): verify_data, the whole body. */
import { HandshakeType } from './constants.js';
import { decodeError } from './errors.js';
import { handshakeMessage } from './framing.js';

/** Length of TLS 1.2 Finished verify_data (RFC 5246 7.4.9). */
export const VERIFY_DATA_LENGTH_12 = 12;

export function encodeFinished(verifyData: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.finished, verifyData);
}

/** Finished body: exactly `expectedLength` bytes (the hash length in TLS 1.3, 12 in TLS 1.2). */
export function parseFinished(body: Uint8Array, expectedLength: number): Uint8Array {
  if (body.length !== expectedLength) throw decodeError('Finished has the wrong length');
  return body;
}
