/** Record content types (RFC 8446 5.1). */
export enum ContentType {
  change_cipher_spec = 20,
  alert = 21,
  handshake = 22,
  application_data = 23,
}

/** Handshake message types (RFC 8446 4, RFC 5246 7.4). */
export enum HandshakeType {
  hello_request = 0,
  client_hello = 1,
  server_hello = 2,
  new_session_ticket = 4,
  end_of_early_data = 5,
  encrypted_extensions = 8,
  certificate = 11,
  server_key_exchange = 12,
  certificate_request = 13,
  server_hello_done = 14,
  certificate_verify = 15,
  client_key_exchange = 16,
  finished = 20,
  certificate_status = 22,
  key_update = 24,
  compressed_certificate = 25,
  message_hash = 254,
}

/** Extension types keyward understands (RFC 8446 4.2 and friends). */
export enum ExtensionType {
  server_name = 0,
  max_fragment_length = 1,
  status_request = 5,
  supported_groups = 10,
  ec_point_formats = 11,
  signature_algorithms = 13,
  use_srtp = 14,
  heartbeat = 15,
  application_layer_protocol_negotiation = 16,
  signed_certificate_timestamp = 18,
  padding = 21,
  encrypt_then_mac = 22,
  extended_master_secret = 23,
  compress_certificate = 27,
  record_size_limit = 28,
  delegated_credential = 34,
  session_ticket = 35,
  pre_shared_key = 41,
  early_data = 42,
  supported_versions = 43,
  cookie = 44,
  psk_key_exchange_modes = 45,
  certificate_authorities = 47,
  oid_filters = 48,
  post_handshake_auth = 49,
  signature_algorithms_cert = 50,
  key_share = 51,
  renegotiation_info = 0xff01,
}

export const TLS12 = 0x0303;
export const TLS13 = 0x0304;

/** Largest TLSPlaintext fragment (RFC 8446 5.1). */
export const MAX_PLAINTEXT = 1 << 14;
/** Largest TLSCiphertext fragment in TLS 1.3: 2^14 + 256 (RFC 8446 5.2). */
export const MAX_CIPHERTEXT_13 = (1 << 14) + 256;
/** Largest TLSCiphertext fragment in TLS 1.2: 2^14 + 2048 (RFC 5246 6.2.3). */
export const MAX_CIPHERTEXT_12 = (1 << 14) + 2048;

/** ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 4.1.3). */
export const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');
/** Downgrade sentinels in the last 8 bytes of ServerHello.random (RFC 8446 4.1.3). */
export const DOWNGRADE_TLS12 = Buffer.from('444f574e47524401', 'hex');
