/**
 * RFC 8448 section 3's NewSessionTicket and section 4 (Resumed 0-RTT Handshake): the
 * values keyward's resumption replays. Hex copied from the RFC.
 */

const hex = (...parts: string[]): Buffer => Buffer.from(parts.join(''), 'hex');

/** Section 3: the server's first ticket, and the secrets behind it. */
export const simple1RttTicket = {
  /** {server} construct a NewSessionTicket handshake message (205 octets): lifetime 30 s, age_add fad6aac5, nonce 0000, early_data 1024. */
  newSessionTicket: hex(
    '040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec9000000',
    '00262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785a',
    'bc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827',
    'db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529',
    '513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea61764',
    '6fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934a',
    'e4d3570008002a000400000400',
  ),
  /** {server} generate resumption secret "tls13 resumption": the PSK of the ticket with nonce 00 00 (32 octets). */
  psk: hex('4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3'),
} as const;

/** Section 4: the client resumes that ticket (with 0-RTT, which keyward never sends). */
export const resumed0Rtt = {
  /** {client} create an ephemeral x25519 key pair: private key (32 octets). */
  clientX25519Private: hex('bff91188283846dd6a2134ef7180ca2b0b14fb10dce707b5098c0dddc813b2df'),
  /** obfuscated_ticket_age the RFC's client sent: age_add + 6 ms. */
  obfuscatedTicketAge: 0xfad6aacb,
  /** {client} calculate PSK binder: ClientHello prefix (477 octets), the hello up to its binders (its random at 6..38). */
  clientHelloPrefix: hex(
    '010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc41',
    '9d7876487d95000006130113031302010001cd0000000b000900000673657276',
    '6572ff01000100000a00140012001d0017001800190100010101020103010400',
    '3300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe',
    '051a66b4f18d668f0b002a0000002b0003020304000d0020001e040305030603',
    '020308040805080604010501060102010402050206020202002d00020101001c',
    '0002400100150057000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '2900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a',
    '34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a98211',
    '7283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3',
    '664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b',
    '3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac5c03272e970727c6',
    '21a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb',
  ),
  /** {client} calculate PSK binder: binder hash, SHA-256 of the prefix (32 octets). */
  binderHash: hex('63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14'),
  /** {client} calculate PSK binder: finished (32 octets), the binder. */
  binder: hex('3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d'),
} as const;

/** The groups and signature schemes the RFC's client (NSS) lists in both sections' ClientHellos. */
export const rfcClientGroups = [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104];
export const rfcClientSchemes = [0x0403, 0x0503, 0x0603, 0x0203, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201, 0x0402, 0x0502, 0x0602, 0x0202];
