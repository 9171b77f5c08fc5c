/**
 * Typed extension bodies: one encode/parse pair per extension keyward sends or reads
 * (RFC 8446 4.2 and the RFCs each names). `codec.encode(value)` gives the extension to
 * send; `codec.parse(data)` reads a received body, decode_error for a bad shape (trailing
 * bytes included) and illegal_parameter for a well-formed but forbidden value.
 * pre_shared_key and delegated_credential have modules of their own.
 */
import { ExtensionType } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import type { Extension } from './extensions.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** An extension's body codec: `In` is what encode takes, `Out` what parse returns. */
export interface ExtensionCodec<In, Out = In> {
  readonly type: ExtensionType;
  /** The extension carrying `value`. */
  encode(value: In): Extension;
  /** The value of a received body; throws TlsAlertError on anything the RFC forbids. */
  parse(data: Uint8Array): Out;
}

/** Builds a codec from a writer and a reader of the body; parse refuses trailing bytes. */
export function extensionCodec<In, Out = In>(
  type: ExtensionType,
  write: (w: Writer, value: In) => void,
  read: (r: Reader) => Out,
): ExtensionCodec<In, Out> {
  const what = ExtensionType[type] ?? `extension ${type}`;
  return {
    type,
    encode(value) {
      const w = new Writer(64);
      write(w, value);
      return { type, data: w.finish() };
    },
    parse(data) {
      const r = new Reader(data, what);
      const v = read(r);
      r.end();
      return v;
    },
  };
}

/** An extension whose body is empty in the messages it appears in; parse returns true. */
function emptyCodec(type: ExtensionType): ExtensionCodec<void, true> {
  return extensionCodec<void, true>(
    type,
    () => undefined,
    () => true,
  );
}

function writeU16List(w: Writer, lengthBytes: 1 | 2, values: readonly number[]): void {
  w.block(lengthBytes, () => {
    for (const v of values) w.u16(v);
  });
}

/** A list of u16 values under a 1- or 2-byte length, with at least `min` entries. */
function readU16List(r: Reader, lengthBytes: 1 | 2, min: number, what: string): number[] {
  if (lengthBytes === 2) return r.u16List(min);
  const v = r.vec8();
  if (v.length % 2 !== 0) throw decodeError(`${what}: odd-length u16 list (${v.length} bytes)`);
  if (v.length < 2 * min) throw decodeError(`${what}: list shorter than ${min}`);
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2) out.push((v[i] << 8) | v[i + 1]);
  return out;
}

function u16ListCodec(type: ExtensionType, lengthBytes: 1 | 2 = 2): ExtensionCodec<readonly number[], number[]> {
  return extensionCodec<readonly number[], number[]>(
    type,
    (w, v) => writeU16List(w, lengthBytes, v),
    (r) => readU16List(r, lengthBytes, 1, ExtensionType[type]),
  );
}

// ---- server_name (RFC 6066 3) ----

/** Host names per RFC 6066 3 / RFC 5890: ASCII; compared in lower case; no trailing dot. */
function decodeHostName(raw: Uint8Array): string {
  if (raw.length === 0 || raw.length > 255) throw decodeError('server_name host_name length');
  for (const b of raw) {
    // Printable ASCII only; NUL and control bytes are the classic SNI-smuggling trick.
    if (b <= 0x20 || b >= 0x7f) throw illegalParameter('server_name host_name is not an ASCII host name');
  }
  const name = Buffer.from(raw).toString('latin1').toLowerCase();
  if (name.endsWith('.')) throw illegalParameter('server_name host_name ends with a dot');
  return name;
}

const HOST_NAME = 0;

/**
 * server_name in a ClientHello: a ServerNameList<1..2^16-1> with one host_name. Parse
 * returns the host name (lower case) or undefined when the list names none; other name
 * types are skipped; two host names are illegal_parameter.
 */
export const serverNameExt = extensionCodec<string, string | undefined>(
  ExtensionType.server_name,
  (w, name) => w.block(2, () => w.u8(HOST_NAME).vec16(Buffer.from(name, 'latin1'))),
  (r) => {
    const list = r.sub16('server_name list');
    if (list.atEnd()) throw decodeError('empty server_name list');
    let host: string | undefined;
    while (!list.atEnd()) {
      const type = list.u8();
      const name = list.vec16();
      if (type !== HOST_NAME) continue;
      if (host !== undefined) throw illegalParameter('two host_name entries in server_name');
      host = decodeHostName(name);
    }
    return host;
  },
);

/** server_name in a ServerHello (TLS 1.2) or EncryptedExtensions: empty, "I used your SNI" (RFC 6066 3). */
export const serverNameAckExt = emptyCodec(ExtensionType.server_name);

// ---- lists of code points ----

/** supported_groups (RFC 8446 4.2.7): NamedGroup named_group_list<2..2^16-1>. */
export const supportedGroupsExt = u16ListCodec(ExtensionType.supported_groups);
/** signature_algorithms (RFC 8446 4.2.3): SignatureScheme list<2..2^16-2>. */
export const signatureAlgorithmsExt = u16ListCodec(ExtensionType.signature_algorithms);
/** signature_algorithms_cert (RFC 8446 4.2.3): the same shape. */
export const signatureAlgorithmsCertExt = u16ListCodec(ExtensionType.signature_algorithms_cert);
/** delegated_credential in a ClientHello or CertificateRequest (RFC 9345 4.1.1): SignatureScheme list<2..2^16-2>. */
export const delegatedCredentialSchemesExt = u16ListCodec(ExtensionType.delegated_credential);
/** compress_certificate (RFC 8879 3): CertificateCompressionAlgorithm algorithms<2..2^8-2>. */
export const compressCertificateExt = u16ListCodec(ExtensionType.compress_certificate, 1);

// ---- supported_versions (RFC 8446 4.2.1) ----

/** supported_versions in a ClientHello: ProtocolVersion versions<2..254>. */
export const supportedVersionsClientExt = u16ListCodec(ExtensionType.supported_versions, 1);

/** supported_versions in a ServerHello or HelloRetryRequest: the selected version. */
export const supportedVersionsServerExt = extensionCodec<number>(
  ExtensionType.supported_versions,
  (w, v) => w.u16(v),
  (r) => r.u16(),
);

// ---- ALPN (RFC 7301 3.1) ----

function writeProtocolNames(w: Writer, names: readonly string[]): void {
  w.block(2, () => {
    for (const n of names) w.vec8(Buffer.from(n, 'latin1'));
  });
}

function readProtocolNames(r: Reader): string[] {
  const list = r.sub16('ALPN protocol_name_list');
  if (list.atEnd()) throw decodeError('empty ALPN list');
  const out: string[] = [];
  while (!list.atEnd()) out.push(Buffer.from(list.vec8(1)).toString('latin1'));
  return out;
}

/** application_layer_protocol_negotiation in a ClientHello: ProtocolName list<2..2^16-1>, each <1..2^8-1>. */
export const alpnExt = extensionCodec<readonly string[], string[]>(ExtensionType.application_layer_protocol_negotiation, writeProtocolNames, readProtocolNames);

/** ALPN in a ServerHello (TLS 1.2) or EncryptedExtensions: exactly one name (RFC 7301 3.1). */
export const alpnSelectedExt = extensionCodec<string>(
  ExtensionType.application_layer_protocol_negotiation,
  (w, name) => writeProtocolNames(w, [name]),
  (r) => {
    const names = readProtocolNames(r);
    if (names.length !== 1) throw illegalParameter(`the server's ALPN names ${names.length} protocols, not one`);
    return names[0];
  },
);

// ---- key_share (RFC 8446 4.2.8) ----

/** KeyShareEntry: NamedGroup group; opaque key_exchange<1..2^16-1>. */
export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

function readKeyShareEntry(r: Reader): KeyShareEntry {
  const group = r.u16();
  return { group, keyExchange: r.vec16(1) };
}

/** key_share in a ClientHello: KeyShareEntry client_shares<0..2^16-1>; a group twice is illegal_parameter. */
export const keyShareClientExt = extensionCodec<readonly KeyShareEntry[], KeyShareEntry[]>(
  ExtensionType.key_share,
  (w, shares) => w.block(2, () => shares.forEach((s) => w.u16(s.group).vec16(s.keyExchange))),
  (r) => {
    const list = r.sub16('key_share client_shares');
    const out: KeyShareEntry[] = [];
    const seen = new Set<number>();
    while (!list.atEnd()) {
      const entry = readKeyShareEntry(list);
      if (seen.has(entry.group)) throw illegalParameter('two key shares for one group');
      seen.add(entry.group);
      out.push(entry);
    }
    return out;
  },
);

/** key_share in a ServerHello: one KeyShareEntry. */
export const keyShareServerExt = extensionCodec<KeyShareEntry>(
  ExtensionType.key_share,
  (w, s) => w.u16(s.group).vec16(s.keyExchange),
  readKeyShareEntry,
);

/** key_share in a HelloRetryRequest: NamedGroup selected_group. */
export const keyShareHrrExt = extensionCodec<number>(
  ExtensionType.key_share,
  (w, g) => w.u16(g),
  (r) => r.u16(),
);

// ---- small ones ----

/** psk_key_exchange_modes (RFC 8446 4.2.9): PskKeyExchangeMode ke_modes<1..255>. */
export const pskKeyExchangeModesExt = extensionCodec<Uint8Array>(
  ExtensionType.psk_key_exchange_modes,
  (w, modes) => w.vec8(modes),
  (r) => r.vec8(1),
);

/** early_data in a ClientHello or EncryptedExtensions (RFC 8446 4.2.10): empty. */
export const earlyDataExt = emptyCodec(ExtensionType.early_data);

/** early_data in a NewSessionTicket: uint32 max_early_data_size. */
export const earlyDataMaxSizeExt = extensionCodec<number>(
  ExtensionType.early_data,
  (w, n) => w.u32(n),
  (r) => r.u32(),
);

/** cookie (RFC 8446 4.2.2): opaque cookie<1..2^16-1>. */
export const cookieExt = extensionCodec<Uint8Array>(
  ExtensionType.cookie,
  (w, c) => w.vec16(c),
  (r) => r.vec16(1),
);

/** record_size_limit (RFC 8449 4): uint16; a value below 64 is illegal_parameter. */
export const recordSizeLimitExt = extensionCodec<number>(
  ExtensionType.record_size_limit,
  (w, n) => w.u16(n),
  (r) => {
    const limit = r.u16();
    if (limit < 64) throw illegalParameter('record_size_limit below 64');
    return limit;
  },
);

/** ec_point_formats (RFC 8422 5.1.2): ECPointFormat ec_point_format_list<1..2^8-1>. */
export const ecPointFormatsExt = extensionCodec<Uint8Array>(
  ExtensionType.ec_point_formats,
  (w, f) => w.vec8(f),
  (r) => r.vec8(1),
);

/** extended_master_secret (RFC 7627 5.1): empty in both hellos. */
export const extendedMasterSecretExt = emptyCodec(ExtensionType.extended_master_secret);

/** post_handshake_auth (RFC 8446 4.2.6): empty. */
export const postHandshakeAuthExt = emptyCodec(ExtensionType.post_handshake_auth);

/** renegotiation_info (RFC 5746 3.2): opaque renegotiated_connection<0..255> (empty on an initial handshake). */
export const renegotiationInfoExt = extensionCodec<Uint8Array>(
  ExtensionType.renegotiation_info,
  (w, v) => w.vec8(v),
  (r) => r.vec8(),
);

/**
 * SessionTicket (RFC 5077 3.2): the whole body is the ticket, empty to ask for one; in a
 * ServerHello it is empty and says a NewSessionTicket will follow.
 */
export const sessionTicketExt = extensionCodec<Uint8Array>(
  ExtensionType.session_ticket,
  (w, t) => w.bytes(t),
  (r) => r.rest(),
);

/** certificate_authorities (RFC 8446 4.2.4): DistinguishedName authorities<3..2^16-1>, each opaque<1..2^16-1> (DER). */
export const certificateAuthoritiesExt = extensionCodec<readonly Uint8Array[], Uint8Array[]>(
  ExtensionType.certificate_authorities,
  (w, names) => w.block(2, () => names.forEach((n) => w.vec16(n))),
  (r) => readDistinguishedNames(r, 1),
);

/** A DistinguishedName list (RFC 8446 4.2.4, RFC 5246 7.4.4): u16 length, then opaque<1..2^16-1> each. */
export function readDistinguishedNames(r: Reader, min: number): Uint8Array[] {
  const list = r.sub16('certificate_authorities');
  const out: Uint8Array[] = [];
  while (!list.atEnd()) out.push(list.vec16(1));
  if (out.length < min) throw decodeError('empty certificate_authorities');
  return out;
}

/** padding (RFC 7685 3): zero bytes; encode takes the body length, parse returns it (contents are ignored). */
export const paddingExt = extensionCodec<number>(
  ExtensionType.padding,
  (w, n) => w.bytes(new Uint8Array(n)),
  (r) => r.rest().length,
);

// ---- status_request (RFC 6066 8, RFC 8446 4.4.2.1) ----

/** CertificateStatusType ocsp. */
export const STATUS_TYPE_OCSP = 1;

/** A CertificateStatusRequest: for OCSP, the responder ids and DER request extensions. */
export interface StatusRequest {
  readonly statusType: number;
  readonly responderIds: readonly Uint8Array[];
  readonly requestExtensions: Uint8Array;
}

/**
 * status_request in a ClientHello or CertificateRequest. A status type other than OCSP
 * keeps its body unread (its shape is unknown); in a ServerHello (TLS 1.2) the extension
 * is empty: use statusRequestAckExt.
 */
export const statusRequestExt = extensionCodec<StatusRequest>(
  ExtensionType.status_request,
  (w, s) => {
    w.u8(s.statusType);
    w.block(2, () => s.responderIds.forEach((id) => w.vec16(id)));
    w.vec16(s.requestExtensions);
  },
  (r) => {
    const statusType = r.u8();
    if (statusType !== STATUS_TYPE_OCSP) {
      r.rest();
      return { statusType, responderIds: [], requestExtensions: new Uint8Array(0) };
    }
    const ids = r.sub16('status_request responder_id_list');
    const responderIds: Uint8Array[] = [];
    while (!ids.atEnd()) responderIds.push(ids.vec16(1));
    return { statusType, responderIds, requestExtensions: r.vec16() };
  },
);

/** status_request in a TLS 1.2 ServerHello: empty (the status follows in CertificateStatus). */
export const statusRequestAckExt = emptyCodec(ExtensionType.status_request);

/** status_request in a TLS 1.3 CertificateEntry (RFC 8446 4.4.2.1): CertificateStatus with an OCSPResponse<1..2^24-1>. */
export const certificateStatusExt = extensionCodec<{ statusType: number; response: Uint8Array }>(
  ExtensionType.status_request,
  (w, s) => w.u8(s.statusType).vec24(s.response),
  (r) => {
    const statusType = r.u8();
    if (statusType !== STATUS_TYPE_OCSP) throw illegalParameter(`CertificateStatus of unknown type ${statusType}`);
    return { statusType, response: r.vec24(1) };
  },
);
