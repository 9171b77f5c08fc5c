/**
 * ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2): encode for the client, parse for the
 * server and for bound mode. The parser takes anything the protocol allows (up to
 * MAX_CLIENT_HELLO_BODY: 32,767 suites, 16,383 extensions, one 65,531-byte extension),
 * decodes the extensions keyward uses and keeps every other one opaque.
 */
import { ExtensionType, HandshakeType, TLS12 } from './constants.js';
import { decodeError, illegalParameter } from './errors.js';
import {
  alpnExt,
  certificateAuthoritiesExt,
  compressCertificateExt,
  cookieExt,
  delegatedCredentialSchemesExt,
  earlyDataExt,
  ecPointFormatsExt,
  extendedMasterSecretExt,
  keyShareClientExt,
  postHandshakeAuthExt,
  pskKeyExchangeModesExt,
  recordSizeLimitExt,
  renegotiationInfoExt,
  serverNameExt,
  sessionTicketExt,
  signatureAlgorithmsCertExt,
  signatureAlgorithmsExt,
  statusRequestExt,
  supportedGroupsExt,
  supportedVersionsClientExt,
  type KeyShareEntry,
  type StatusRequest,
} from './extensionCodecs.js';
import { readExtensions, writeExtensions, type Extension } from './extensions.js';
import { handshakeMessage } from './framing.js';
import { preSharedKeyOfferExt, type PskOffer } from './preSharedKey.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

export type { Extension } from './extensions.js';
export type { KeyShareEntry } from './extensionCodecs.js';

/** A received pre_shared_key offer and where its binders start. */
export interface ClientHelloPskOffer extends PskOffer {
  /**
   * Length of the prefix of the framed ClientHello (its 4-byte handshake header included)
   * that the binders cover: binders are HMACs over the hash of `message.subarray(0,
   * bindersOffset)` (RFC 8446 4.2.11.2).
   */
  readonly bindersOffset: number;
}

/** A parsed ClientHello, with the extensions keyward uses decoded. */
export interface ClientHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  readonly compressionMethods: Uint8Array;
  /** All extensions, in the order sent (unknown ones included); absent in some TLS 1.2 ClientHellos. */
  readonly extensions: readonly Extension[];
  readonly serverName?: string;
  readonly supportedGroups?: readonly number[];
  readonly signatureAlgorithms?: readonly number[];
  readonly signatureAlgorithmsCert?: readonly number[];
  readonly supportedVersions?: readonly number[];
  readonly keyShares?: readonly KeyShareEntry[];
  readonly pskKeyExchangeModes?: Uint8Array;
  /** The pre_shared_key offer (always the last extension). */
  readonly pskOffer?: ClientHelloPskOffer;
  /** Whether pre_shared_key is present (the same as `pskOffer !== undefined`). */
  readonly hasPreSharedKey: boolean;
  readonly alpn?: readonly string[];
  readonly cookie?: Uint8Array;
  readonly recordSizeLimit?: number;
  readonly earlyData: boolean;
  readonly ecPointFormats?: Uint8Array;
  readonly renegotiationInfo?: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly postHandshakeAuth: boolean;
  /** SessionTicket (RFC 5077): present, possibly empty (asking for a ticket). */
  readonly sessionTicket?: Uint8Array;
  readonly statusRequest?: StatusRequest;
  /** DER distinguished names of the CAs the client trusts (RFC 8446 4.2.4). */
  readonly certificateAuthorities?: readonly Uint8Array[];
  /** Certificate compression algorithms offered (RFC 8879). */
  readonly compressCertificate?: readonly number[];
  /** Schemes the client accepts a delegated credential with (RFC 9345). */
  readonly delegatedCredentialSchemes?: readonly number[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Stores the decoded value of one extension keyward understands; unknown types are left opaque. */
function decodeExtension(ch: Mutable<ClientHello>, e: Extension, bodyLength: number): void {
  const data = e.data;
  switch (e.type) {
    case ExtensionType.server_name:
      ch.serverName = serverNameExt.parse(data);
      break;
    case ExtensionType.supported_groups:
      ch.supportedGroups = supportedGroupsExt.parse(data);
      break;
    case ExtensionType.signature_algorithms:
      ch.signatureAlgorithms = signatureAlgorithmsExt.parse(data);
      break;
    case ExtensionType.signature_algorithms_cert:
      ch.signatureAlgorithmsCert = signatureAlgorithmsCertExt.parse(data);
      break;
    case ExtensionType.supported_versions:
      ch.supportedVersions = supportedVersionsClientExt.parse(data);
      break;
    case ExtensionType.key_share:
      ch.keyShares = keyShareClientExt.parse(data);
      break;
    case ExtensionType.psk_key_exchange_modes:
      ch.pskKeyExchangeModes = pskKeyExchangeModesExt.parse(data);
      break;
    case ExtensionType.pre_shared_key: {
      const { identities, binders, bindersLength } = preSharedKeyOfferExt.parse(data);
      // pre_shared_key is last, so its binders are the tail of the body.
      ch.pskOffer = { identities, binders, bindersOffset: 4 + bodyLength - bindersLength };
      ch.hasPreSharedKey = true;
      break;
    }
    case ExtensionType.application_layer_protocol_negotiation:
      ch.alpn = alpnExt.parse(data);
      break;
    case ExtensionType.cookie:
      ch.cookie = cookieExt.parse(data);
      break;
    case ExtensionType.record_size_limit:
      ch.recordSizeLimit = recordSizeLimitExt.parse(data);
      break;
    case ExtensionType.early_data:
      ch.earlyData = earlyDataExt.parse(data);
      break;
    case ExtensionType.ec_point_formats:
      ch.ecPointFormats = ecPointFormatsExt.parse(data);
      break;
    case ExtensionType.renegotiation_info:
      ch.renegotiationInfo = renegotiationInfoExt.parse(data);
      break;
    case ExtensionType.extended_master_secret:
      ch.extendedMasterSecret = extendedMasterSecretExt.parse(data);
      break;
    case ExtensionType.post_handshake_auth:
      ch.postHandshakeAuth = postHandshakeAuthExt.parse(data);
      break;
    case ExtensionType.session_ticket:
      ch.sessionTicket = sessionTicketExt.parse(data);
      break;
    case ExtensionType.status_request:
      ch.statusRequest = statusRequestExt.parse(data);
      break;
    case ExtensionType.certificate_authorities:
      ch.certificateAuthorities = certificateAuthoritiesExt.parse(data);
      break;
    case ExtensionType.compress_certificate:
      ch.compressCertificate = compressCertificateExt.parse(data);
      break;
    case ExtensionType.delegated_credential:
      ch.delegatedCredentialSchemes = delegatedCredentialSchemesExt.parse(data);
      break;
    default:
      // Unknown extensions are ignored (RFC 8446 4.2), GREASE included.
      break;
  }
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
  const cipherSuites = r.u16List(1);
  const compressionMethods = r.vec8(1);
  const ch: Mutable<ClientHello> = {
    legacyVersion,
    random,
    sessionId,
    cipherSuites,
    compressionMethods,
    extensions: [],
    hasPreSharedKey: false,
    earlyData: false,
    extendedMasterSecret: false,
    postHandshakeAuth: false,
  };
  if (r.atEnd()) return ch;
  const extensions = readExtensions(r, 'ClientHello');
  r.end();
  for (let i = 0; i < extensions.length; i++) {
    if (extensions[i].type === ExtensionType.pre_shared_key && i !== extensions.length - 1) {
      throw illegalParameter('pre_shared_key is not the last extension');
    }
    decodeExtension(ch, extensions[i], body.length);
  }
  ch.extensions = extensions;
  return ch;
}

/** What a client puts in its ClientHello. */
export interface ClientHelloFields {
  /** legacy_version: 0x0303 unless set (RFC 8446 4.1.2). */
  readonly legacyVersion?: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  /** legacy_compression_methods: [null] unless set. */
  readonly compressionMethods?: Uint8Array;
  /** Extensions in order; pre_shared_key, if any, must be last. Undefined leaves the block out. */
  readonly extensions: readonly Extension[] | undefined;
}

const NULL_COMPRESSION = Uint8Array.of(0);

/**
 * Encodes a framed ClientHello (handshake header included, ready for the transcript).
 * With a pre_shared_key offer, encode it with placeholder binders of the final lengths,
 * hash `message.subarray(0, pskBindersOffset(...))`, then writePskBinders.
 */
export function encodeClientHello(f: ClientHelloFields): Uint8Array {
  const exts = f.extensions;
  if (exts?.some((e, i) => e.type === ExtensionType.pre_shared_key && i !== exts.length - 1)) {
    throw new RangeError('pre_shared_key must be the last ClientHello extension');
  }
  const w = new Writer(512);
  w.u16(f.legacyVersion ?? TLS12).bytes(f.random).vec8(f.sessionId);
  w.block(2, () => f.cipherSuites.forEach((s) => w.u16(s)));
  w.vec8(f.compressionMethods ?? NULL_COMPRESSION);
  if (exts) writeExtensions(w, exts);
  return handshakeMessage(HandshakeType.client_hello, w.finish());
}
