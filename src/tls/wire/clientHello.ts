import { ExtensionType } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import { Reader } from './reader.js';

export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

/** A parsed ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2), with the extensions keyward uses decoded. */
export interface ClientHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  readonly compressionMethods: Uint8Array;
  /** All extensions, in the order sent; absent in some TLS 1.2 ClientHellos. */
  readonly extensions: readonly Extension[];
  readonly serverName?: string;
  readonly supportedGroups?: readonly number[];
  readonly signatureAlgorithms?: readonly number[];
  readonly signatureAlgorithmsCert?: readonly number[];
  readonly supportedVersions?: readonly number[];
  readonly keyShares?: readonly KeyShareEntry[];
  readonly pskKeyExchangeModes?: Uint8Array;
  readonly hasPreSharedKey: boolean;
  readonly alpn?: readonly string[];
  readonly cookie?: Uint8Array;
  readonly recordSizeLimit?: number;
  readonly earlyData: boolean;
  readonly ecPointFormats?: Uint8Array;
  readonly renegotiationInfo?: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly postHandshakeAuth: boolean;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Host names per RFC 6066 3 / RFC 5890: LDH labels, ASCII; compared in lower case. */
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

function parseServerName(data: Uint8Array): string | undefined {
  const r = new Reader(data, 'server_name');
  const list = r.sub16();
  r.end();
  if (list.atEnd()) throw decodeError('empty server_name list');
  let host: string | undefined;
  while (!list.atEnd()) {
    const type = list.u8();
    const name = list.vec16();
    if (type === 0) {
      if (host !== undefined) throw illegalParameter('two host_name entries in server_name');
      host = decodeHostName(name);
    }
  }
  return host;
}

function parseKeyShares(data: Uint8Array): KeyShareEntry[] {
  const r = new Reader(data, 'key_share');
  const list = r.sub16();
  r.end();
  const out: KeyShareEntry[] = [];
  const seen = new Set<number>();
  while (!list.atEnd()) {
    const group = list.u16();
    const keyExchange = list.vec16(1);
    if (seen.has(group)) throw illegalParameter('two key shares for one group');
    seen.add(group);
    out.push({ group, keyExchange });
  }
  return out;
}

function parseAlpn(data: Uint8Array): string[] {
  const r = new Reader(data, 'application_layer_protocol_negotiation');
  const list = r.sub16();
  r.end();
  if (list.atEnd()) throw decodeError('empty ALPN list');
  const out: string[] = [];
  while (!list.atEnd()) out.push(Buffer.from(list.vec8(1)).toString('latin1'));
  return out;
}

function u16ListExt(data: Uint8Array, what: string): number[] {
  const r = new Reader(data, what);
  const list = r.u16List(1);
  r.end();
  return list;
}

function vec8Ext(data: Uint8Array, what: string, min: number): Uint8Array {
  const r = new Reader(data, what);
  const v = r.vec8(min);
  r.end();
  return v;
}

function emptyExt(data: Uint8Array, what: string): true {
  if (data.length !== 0) throw decodeError(`${what} must be empty`);
  return true;
}

/**
 * Decodes a ClientHello body (without the 4-byte handshake header). Throws
 * TlsAlertError with decode_error for malformed encodings and illegal_parameter for
 * well-formed but forbidden content (duplicate extensions, pre_shared_key not last).
 */
export function parseClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body, 'ClientHello');
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec8();
  if (sessionId.length > 32) throw decodeError('legacy_session_id longer than 32 bytes');
  const suites = r.u16List(1);
  const compressionMethods = r.vec8(1);
  const ch: Mutable<ClientHello> = {
    legacyVersion,
    random,
    sessionId,
    cipherSuites: suites,
    compressionMethods,
    extensions: [],
    hasPreSharedKey: false,
    earlyData: false,
    extendedMasterSecret: false,
    postHandshakeAuth: false,
  };
  if (r.atEnd()) return ch;
  const extReader = r.sub16('ClientHello extensions');
  r.end();
  const seen = new Set<number>();
  const extensions: Extension[] = [];
  while (!extReader.atEnd()) {
    const type = extReader.u16();
    const data = extReader.vec16();
    if (seen.has(type)) throw illegalParameter(`duplicate extension ${type}`);
    if (ch.hasPreSharedKey) throw illegalParameter('pre_shared_key is not the last extension');
    seen.add(type);
    extensions.push({ type, data });
    switch (type) {
      case ExtensionType.server_name:
        ch.serverName = parseServerName(data);
        break;
      case ExtensionType.supported_groups:
        ch.supportedGroups = u16ListExt(data, 'supported_groups');
        break;
      case ExtensionType.signature_algorithms:
        ch.signatureAlgorithms = u16ListExt(data, 'signature_algorithms');
        break;
      case ExtensionType.signature_algorithms_cert:
        ch.signatureAlgorithmsCert = u16ListExt(data, 'signature_algorithms_cert');
        break;
      case ExtensionType.supported_versions: {
        const v = vec8Ext(data, 'supported_versions', 2);
        if (v.length % 2 !== 0) throw decodeError('odd supported_versions length');
        const versions: number[] = [];
        for (let i = 0; i < v.length; i += 2) versions.push((v[i] << 8) | v[i + 1]);
        ch.supportedVersions = versions;
        break;
      }
      case ExtensionType.key_share:
        ch.keyShares = parseKeyShares(data);
        break;
      case ExtensionType.psk_key_exchange_modes:
        ch.pskKeyExchangeModes = vec8Ext(data, 'psk_key_exchange_modes', 1);
        break;
      case ExtensionType.pre_shared_key:
        if (data.length < 2) throw decodeError('pre_shared_key truncated');
        ch.hasPreSharedKey = true;
        break;
      case ExtensionType.application_layer_protocol_negotiation:
        ch.alpn = parseAlpn(data);
        break;
      case ExtensionType.cookie: {
        const cr = new Reader(data, 'cookie');
        ch.cookie = cr.vec16(1);
        cr.end();
        break;
      }
      case ExtensionType.record_size_limit: {
        const lr = new Reader(data, 'record_size_limit');
        const limit = lr.u16();
        lr.end();
        // RFC 8449 4: a value below 64 is illegal_parameter.
        if (limit < 64) throw illegalParameter('record_size_limit below 64');
        ch.recordSizeLimit = limit;
        break;
      }
      case ExtensionType.early_data:
        ch.earlyData = emptyExt(data, 'early_data');
        break;
      case ExtensionType.ec_point_formats:
        ch.ecPointFormats = vec8Ext(data, 'ec_point_formats', 1);
        break;
      case ExtensionType.renegotiation_info:
        ch.renegotiationInfo = vec8Ext(data, 'renegotiation_info', 0);
        break;
      case ExtensionType.extended_master_secret:
        ch.extendedMasterSecret = emptyExt(data, 'extended_master_secret');
        break;
      case ExtensionType.post_handshake_auth:
        ch.postHandshakeAuth = emptyExt(data, 'post_handshake_auth');
        break;
      default:
        // Unknown extensions are ignored (RFC 8446 4.2), GREASE included.
        break;
    }
  }
  ch.extensions = extensions;
  return ch;
}

