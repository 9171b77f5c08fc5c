/**
 * Compatibility names for the engine's current imports (server13, serverConnection,
 * signingPolicy, bench). The codecs live in their own modules now (framing, serverHello,
 * messages13, certificate13, certificateVerify, finished, extensionCodecs); new code
 * imports those. Delete this file once nothing imports it.
 */
import type { Extension } from './extensions.js';
import {
  alpnSelectedExt,
  cookieExt,
  keyShareHrrExt,
  keyShareServerExt,
  recordSizeLimitExt,
  serverNameAckExt,
  supportedGroupsExt,
  supportedVersionsServerExt,
} from './extensionCodecs.js';

export { handshakeMessage } from './framing.js';
export type { ExtensionOut } from './extensions.js';
export { encodeServerHello, type ServerHelloFields } from './serverHello.js';
export { encodeEncryptedExtensions, encodeKeyUpdate, parseKeyUpdate } from './messages13.js';
export { encodeCertificate13 } from './certificate13.js';
export { CERTIFICATE_VERIFY_CONTEXT, certificateVerifyContent, encodeCertificateVerify } from './certificateVerify.js';
export { encodeFinished, parseFinished } from './finished.js';

export const extSupportedVersionsServer = (version: number): Extension => supportedVersionsServerExt.encode(version);
export const extKeyShareServer = (group: number, key: Uint8Array): Extension => keyShareServerExt.encode({ group, keyExchange: key });
/** key_share in a HelloRetryRequest: just the selected group. */
export const extKeyShareHrr = (group: number): Extension => keyShareHrrExt.encode(group);
export const extCookie = (cookie: Uint8Array): Extension => cookieExt.encode(cookie);
export const extAlpn = (protocol: string): Extension => alpnSelectedExt.encode(protocol);
export const extSupportedGroups = (groups: readonly number[]): Extension => supportedGroupsExt.encode(groups);
export const extRecordSizeLimit = (limit: number): Extension => recordSizeLimitExt.encode(limit);
/** Empty server_name: the server used the client's SNI (RFC 6066 3). */
export const extServerNameAck = (): Extension => serverNameAckExt.encode();
