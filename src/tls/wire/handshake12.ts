/**
 * Compatibility names for server12's current imports. The TLS 1.2 codecs live in
 * messages12.ts (and finished.ts, extensionCodecs.ts); new code imports those. Delete
 * this file once nothing imports it.
 */
import type { Extension } from './extensions.js';
import { ecPointFormatsExt, extendedMasterSecretExt, renegotiationInfoExt } from './extensionCodecs.js';

export {
  CURVE_TYPE_NAMED,
  encodeCertificate12,
  encodeEcdhParams,
  encodeServerHelloDone,
  encodeServerKeyExchangePsk,
  encodeServerKeyExchangeSigned,
  parseClientKeyExchange,
  type ClientKeyExchange12,
} from './messages12.js';
export { VERIFY_DATA_LENGTH_12 } from './finished.js';

/** renegotiation_info with an empty renegotiated_connection (RFC 5746 3.6, initial handshake). */
export const extRenegotiationInfoEmpty = (): Extension => renegotiationInfoExt.encode(new Uint8Array(0));
/** extended_master_secret (RFC 7627 5.1): empty. */
export const extExtendedMasterSecret = (): Extension => extendedMasterSecretExt.encode();
/** ec_point_formats (RFC 8422 5.2): uncompressed only. */
export const extEcPointFormatsUncompressed = (): Extension => ecPointFormatsExt.encode(Uint8Array.of(0));
