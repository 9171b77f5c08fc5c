/**
 * Extension blocks (RFC 8446 4.2, RFC 5246 7.4.1.4): `Extension extensions<0..2^16-1>`
 * of `{ uint16 extension_type; opaque extension_data<0..2^16-1>; }`, and the rules every
 * block shares: no type twice, and in TLS 1.3 a known type only in the messages RFC 8446
 * 4.2's table lists it for. The typed bodies are in extensionCodecs.ts.
 */
import { AlertDescription } from './alerts.js';
import { ExtensionType } from './constants.js';
import { TlsAlertError, illegalParameter } from './errors.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** One extension as sent: its type and its undecoded body (a view of the message). */
export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

/** An extension to send (the same shape; kept as a name the engine already uses). */
export type ExtensionOut = Extension;

/**
 * Reads an extension block (u16 length, then entries) from `r`. A type seen twice is
 * illegal_parameter (RFC 8446 4.2: "There MUST NOT be more than one extension of the
 * same type in a given extension block"); a malformed entry is decode_error. Unknown
 * types are kept opaque: callers ignore what they do not know.
 */
export function readExtensions(r: Reader, what: string): Extension[] {
  const block = r.sub16(`${what} extensions`);
  const seen = new Set<number>();
  const out: Extension[] = [];
  while (!block.atEnd()) {
    const type = block.u16();
    const data = block.vec16();
    if (seen.has(type)) throw illegalParameter(`${what} repeats extension ${type}`);
    seen.add(type);
    out.push({ type, data });
  }
  return out;
}

/** Writes an extension block: u16 length, then each extension in the order given. */
export function writeExtensions(w: Writer, exts: readonly Extension[]): void {
  w.block(2, () => {
    for (const e of exts) w.u16(e.type).vec16(e.data);
  });
}

/** The body of the extension of `type`, if present. */
export function findExtension(exts: readonly Extension[], type: number): Uint8Array | undefined {
  for (const e of exts) if (e.type === type) return e.data;
  return undefined;
}

/** The TLS 1.3 messages that carry extensions (RFC 8446 4.2's table columns). */
export type ExtensionContext13 = 'CH' | 'SH' | 'HRR' | 'EE' | 'CT' | 'CR' | 'NST';

/**
 * Where each extension keyward recognises may appear in TLS 1.3 (RFC 8446 4.2, RFC 8449
 * for record_size_limit, RFC 8879 for compress_certificate, RFC 9345 for
 * delegated_credential). The TLS 1.2-only extensions have no TLS 1.3 message.
 */
const ALLOWED_13: ReadonlyMap<number, readonly ExtensionContext13[]> = new Map<number, readonly ExtensionContext13[]>([
  [ExtensionType.server_name, ['CH', 'EE']],
  [ExtensionType.max_fragment_length, ['CH', 'EE']],
  [ExtensionType.status_request, ['CH', 'CR', 'CT']],
  [ExtensionType.supported_groups, ['CH', 'EE']],
  [ExtensionType.signature_algorithms, ['CH', 'CR']],
  [ExtensionType.use_srtp, ['CH', 'EE']],
  [ExtensionType.heartbeat, ['CH', 'EE']],
  [ExtensionType.application_layer_protocol_negotiation, ['CH', 'EE']],
  [ExtensionType.signed_certificate_timestamp, ['CH', 'CR', 'CT']],
  [ExtensionType.padding, ['CH']],
  [ExtensionType.compress_certificate, ['CH', 'CR']],
  [ExtensionType.record_size_limit, ['CH', 'EE']],
  [ExtensionType.delegated_credential, ['CH', 'CR', 'CT']],
  [ExtensionType.pre_shared_key, ['CH', 'SH']],
  [ExtensionType.early_data, ['CH', 'EE', 'NST']],
  [ExtensionType.supported_versions, ['CH', 'SH', 'HRR']],
  [ExtensionType.cookie, ['CH', 'HRR']],
  [ExtensionType.psk_key_exchange_modes, ['CH']],
  [ExtensionType.certificate_authorities, ['CH', 'CR']],
  [ExtensionType.oid_filters, ['CR']],
  [ExtensionType.post_handshake_auth, ['CH']],
  [ExtensionType.signature_algorithms_cert, ['CH', 'CR']],
  [ExtensionType.key_share, ['CH', 'SH', 'HRR']],
  [ExtensionType.ec_point_formats, []],
  [ExtensionType.encrypt_then_mac, []],
  [ExtensionType.extended_master_secret, []],
  [ExtensionType.session_ticket, []],
  [ExtensionType.renegotiation_info, []],
]);

/**
 * RFC 8446 4.2: an extension keyward recognises in a TLS 1.3 message it is not specified
 * for is illegal_parameter. Unknown types pass (they are ignored, or refused as
 * unsolicited by checkSolicited).
 */
export function checkAllowed13(exts: readonly Extension[], context: ExtensionContext13): void {
  for (const e of exts) {
    const allowed = ALLOWED_13.get(e.type);
    if (allowed && !allowed.includes(context)) throw illegalParameter(`extension ${e.type} is not allowed in a TLS 1.3 ${context}`);
  }
}

/**
 * RFC 8446 4.2 / RFC 5246 7.4.1.4: a response extension the peer did not ask for is
 * unsupported_extension. `offered` are the types of the request (ClientHello or
 * CertificateRequest); `except` the types a responder may send unasked (cookie in a
 * HelloRetryRequest).
 */
export function checkSolicited(received: readonly Extension[], offered: Iterable<number>, what: string, except: readonly number[] = []): void {
  const asked = new Set(offered);
  for (const e of received) {
    if (!asked.has(e.type) && !except.includes(e.type)) {
      throw new TlsAlertError(AlertDescription.unsupported_extension, `${what} carries extension ${e.type}, which was not offered`);
    }
  }
}
