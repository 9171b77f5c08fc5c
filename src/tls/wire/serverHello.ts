/**
 * ServerHello and HelloRetryRequest (RFC 8446 4.1.3/4.1.4, RFC 5246 7.4.1.3): one
 * structure, told apart by the HelloRetryRequest random. Parse decodes the extensions of
 * both versions; in a TLS 1.3 ServerHello or HelloRetryRequest an extension the RFC does
 * not allow there is illegal_parameter.
 */
import { ExtensionType, HandshakeType, HRR_RANDOM, TLS12, TLS13 } from './constants.js';
import { decodeError } from './errors.js';
import {
  alpnSelectedExt,
  cookieExt,
  ecPointFormatsExt,
  extendedMasterSecretExt,
  keyShareHrrExt,
  keyShareServerExt,
  recordSizeLimitExt,
  renegotiationInfoExt,
  serverNameAckExt,
  sessionTicketExt,
  statusRequestAckExt,
  supportedVersionsServerExt,
  type KeyShareEntry,
} from './extensionCodecs.js';
import { checkAllowed13, readExtensions, writeExtensions, type Extension } from './extensions.js';
import { handshakeMessage } from './framing.js';
import { preSharedKeySelectedExt } from './preSharedKey.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

/** What a server puts in its ServerHello (legacy_version 0x0303 and null compression are fixed). */
export interface ServerHelloFields {
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuite: number;
  extensions: readonly Extension[];
}

/** Encodes a framed ServerHello / HelloRetryRequest (RFC 8446 4.1.3); an empty extension list leaves the block out (TLS 1.2). */
export function encodeServerHello(f: ServerHelloFields): Uint8Array {
  const w = new Writer(128);
  w.u16(TLS12).bytes(f.random).vec8(f.sessionId).u16(f.cipherSuite).u8(0);
  if (f.extensions.length > 0) writeExtensions(w, f.extensions);
  return handshakeMessage(HandshakeType.server_hello, w.finish());
}

/** A parsed ServerHello or HelloRetryRequest. */
export interface ServerHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuite: number;
  readonly compressionMethod: number;
  /** All extensions in order, unknown ones included (the client refuses unsolicited ones). */
  readonly extensions: readonly Extension[];
  /** random is the HelloRetryRequest value (RFC 8446 4.1.3). */
  readonly isHelloRetryRequest: boolean;
  /** supported_versions: the version chosen, when the server speaks TLS 1.3. */
  readonly selectedVersion?: number;
  /** key_share of a ServerHello: the server's share. */
  readonly keyShare?: KeyShareEntry;
  /** key_share of a HelloRetryRequest: the group the client must use. */
  readonly selectedGroup?: number;
  /** cookie of a HelloRetryRequest. */
  readonly cookie?: Uint8Array;
  /** pre_shared_key: the index of the identity chosen. */
  readonly selectedIdentity?: number;
  // TLS 1.2 ServerHello extensions
  readonly serverNameAck: boolean;
  readonly alpn?: string;
  readonly renegotiationInfo?: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly ecPointFormats?: Uint8Array;
  /** SessionTicket: a NewSessionTicket will follow (RFC 5077 3.2). */
  readonly sessionTicket: boolean;
  /** status_request: a CertificateStatus will follow (RFC 6066 8). */
  readonly statusRequest: boolean;
  readonly recordSizeLimit?: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function decodeExtension(sh: Mutable<ServerHello>, e: Extension): void {
  const data = e.data;
  switch (e.type) {
    case ExtensionType.supported_versions:
      sh.selectedVersion = supportedVersionsServerExt.parse(data);
      break;
    case ExtensionType.key_share:
      if (sh.isHelloRetryRequest) sh.selectedGroup = keyShareHrrExt.parse(data);
      else sh.keyShare = keyShareServerExt.parse(data);
      break;
    case ExtensionType.cookie:
      sh.cookie = cookieExt.parse(data);
      break;
    case ExtensionType.pre_shared_key:
      sh.selectedIdentity = preSharedKeySelectedExt.parse(data);
      break;
    case ExtensionType.server_name:
      sh.serverNameAck = serverNameAckExt.parse(data);
      break;
    case ExtensionType.application_layer_protocol_negotiation:
      sh.alpn = alpnSelectedExt.parse(data);
      break;
    case ExtensionType.renegotiation_info:
      sh.renegotiationInfo = renegotiationInfoExt.parse(data);
      break;
    case ExtensionType.extended_master_secret:
      sh.extendedMasterSecret = extendedMasterSecretExt.parse(data);
      break;
    case ExtensionType.ec_point_formats:
      sh.ecPointFormats = ecPointFormatsExt.parse(data);
      break;
    case ExtensionType.session_ticket:
      if (sessionTicketExt.parse(data).length !== 0) throw decodeError('a ServerHello SessionTicket must be empty');
      sh.sessionTicket = true;
      break;
    case ExtensionType.status_request:
      sh.statusRequest = statusRequestAckExt.parse(data);
      break;
    case ExtensionType.record_size_limit:
      sh.recordSizeLimit = recordSizeLimitExt.parse(data);
      break;
    default:
      break;
  }
}

/** Decodes a ServerHello or HelloRetryRequest body (without the handshake header). */
export function parseServerHello(body: Uint8Array): ServerHello {
  const r = new Reader(body, 'ServerHello');
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec8();
  if (sessionId.length > 32) throw decodeError('legacy_session_id_echo longer than 32 bytes');
  const sh: Mutable<ServerHello> = {
    legacyVersion,
    random,
    sessionId,
    cipherSuite: r.u16(),
    compressionMethod: r.u8(),
    extensions: [],
    isHelloRetryRequest: sameBytes(random, HRR_RANDOM),
    serverNameAck: false,
    extendedMasterSecret: false,
    sessionTicket: false,
    statusRequest: false,
  };
  if (r.atEnd()) return sh;
  const extensions = readExtensions(r, sh.isHelloRetryRequest ? 'HelloRetryRequest' : 'ServerHello');
  r.end();
  for (const e of extensions) decodeExtension(sh, e);
  if (sh.selectedVersion === TLS13) checkAllowed13(extensions, sh.isHelloRetryRequest ? 'HRR' : 'SH');
  sh.extensions = extensions;
  return sh;
}
