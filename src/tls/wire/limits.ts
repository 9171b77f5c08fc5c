/**
 * The largest handshake message bodies the protocol itself allows, computed from the
 * vector bounds of RFC 8446 4.1.2/4.1.3 (and RFC 5246 7.4.1, which are no larger). A
 * receiver that caps a hello below these refuses legal peers; one that caps above them
 * only buffers bytes the parser must reject anyway.
 */
import { HandshakeType } from './constants.js';

/**
 * ClientHello: legacy_version(2) random(32) legacy_session_id<0..32>(1+32)
 * cipher_suites<2..2^16-2>(2+65534) legacy_compression_methods<1..2^8-1>(1+255)
 * extensions<8..2^16-1>(2+65535) = 131,396 bytes.
 */
export const MAX_CLIENT_HELLO_BODY = 2 + 32 + (1 + 32) + (2 + 0xfffe) + (1 + 0xff) + (2 + 0xffff);

/**
 * ServerHello / HelloRetryRequest: legacy_version(2) random(32) legacy_session_id_echo
 * (1+32) cipher_suite(2) compression(1) extensions<6..2^16-1>(2+65535) = 65,607 bytes.
 */
export const MAX_SERVER_HELLO_BODY = 2 + 32 + (1 + 32) + 2 + 1 + (2 + 0xffff);

/**
 * TLS 1.3 NewSessionTicket: ticket_lifetime(4) ticket_age_add(4) ticket_nonce<0..255>(1+255)
 * ticket<1..2^16-1>(2+65535) extensions<0..2^16-2>(2+65534) = 131,337 bytes (RFC 5077's TLS
 * 1.2 one is smaller).
 */
export const MAX_NEW_SESSION_TICKET_BODY = 4 + 4 + (1 + 0xff) + (2 + 0xffff) + (2 + 0xfffe);

/** Any handshake message: its length field is 24 bits. */
export const MAX_HANDSHAKE_BODY = 0xffffff;

/**
 * The protocol's own bound on a handshake message body of `type`: exact for the hellos,
 * 2^24-1 for messages whose size the protocol leaves open (Certificate above all), where
 * the receiver must choose a cap of its own.
 */
export function protocolMaxBody(type: number): number {
  switch (type) {
    case HandshakeType.client_hello:
      return MAX_CLIENT_HELLO_BODY;
    case HandshakeType.server_hello:
      return MAX_SERVER_HELLO_BODY;
    case HandshakeType.new_session_ticket:
      return MAX_NEW_SESSION_TICKET_BODY;
    case HandshakeType.hello_request:
    case HandshakeType.server_hello_done:
    case HandshakeType.end_of_early_data:
      return 0;
    case HandshakeType.key_update:
      return 1;
    case HandshakeType.finished:
      // verify_data is the hash length in TLS 1.3 (SHA-384 at most) and 12 bytes in TLS 1.2.
      return 48;
    default:
      return MAX_HANDSHAKE_BODY;
  }
}
