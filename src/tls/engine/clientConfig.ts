import { DC_KEY_KINDS } from '../../keys/delegatedCredentialIssuer.js';
import type { PskOperations, Tls13PskOperations } from '../../keys/keyOperations.js';
import { suiteInfo, type CipherSuite } from '../crypto/cipherSuites.js';
import { isKnownGroup, type NamedGroup } from '../crypto/groups.js';
import { schemeInfo } from '../crypto/signatureSchemes.js';
import type { Extension } from '../wire/extensions.js';
import type { ClientSession } from '../resumption/clientSession.js';
import type { CertifiedKey } from './certificates.js';
import { checkCompressionAlgorithms, DEFAULT_CERTIFICATE_COMPRESSION, type SupportedCompressionAlgorithm } from './certificateCompression.js';
import { DEFAULT_GROUPS, DEFAULT_MAX_HANDSHAKE_MESSAGE, DEFAULT_TLS12_SUITES, DEFAULT_TLS13_SUITES, VERIFIED_SIGNATURE_SCHEMES } from './defaults.js';

/**
 * TLS 1.2 suites a client offers by default: the server defaults' forward-secret ECDHE
 * suites (RSA key exchange, done with the server's public key, is not offered).
 */
export const DEFAULT_CLIENT_TLS12_SUITES: readonly CipherSuite[] = DEFAULT_TLS12_SUITES.filter((s) => suiteInfo(s)!.keyExchange.startsWith('ECDHE_') && !suiteInfo(s)!.keyExchange.endsWith('PSK'));

/** TLS 1.2 PSK suites a PSK client offers by default, in the server defaults' order (ECDHE_PSK first). */
export const DEFAULT_CLIENT_PSK_SUITES: readonly CipherSuite[] = DEFAULT_TLS12_SUITES.filter((s) => suiteInfo(s)!.keyExchange.endsWith('PSK'));

/** TLS 1.2 PSK for a client (RFC 4279, RFC 5489): the PSK stays in `holder`, which returns only master secrets. */
export interface ClientPskConfig {
  holder: PskOperations;
  /** The identity sent in ClientKeyExchange (UTF-8 string or bytes). */
  identity: string | Uint8Array;
}

/**
 * TLS 1.3 external PSK for a client (RFC 8446 4.2.11): `holder` computes the binder and
 * every secret of the key schedule; the PSK, the Early Secret and the binder key never
 * enter the engine (docs/tls13-psk.md).
 */
export interface ClientTls13PskConfig {
  holder: Tls13PskOperations;
  /** The identity offered (UTF-8 string or bytes), matched by the server byte for byte. */
  identity: string | Uint8Array;
  /** The PSK's hash (RFC 8446 4.2.11); default sha256. Only TLS 1.3 suites of this hash are offered by default. */
  hash?: 'sha256' | 'sha384';
  /** The mode offered: psk_dhe_ke (default, forward secrecy) or psk_ke (no (EC)DHE, no forward secrecy). */
  keyExchange?: 'psk_dhe_ke' | 'psk_ke';
}

/** Configuration of a TLS client engine. Build it with `resolveClientConfig`. */
export interface ClientConfig {
  /** SNI and the name the server's certificate is checked against; none for an IP address. */
  serverName?: string;
  alpnProtocols: readonly string[];
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  maxVersion: 'TLSv1.2' | 'TLSv1.3';
  tls13CipherSuites: readonly CipherSuite[];
  tls12CipherSuites: readonly CipherSuite[];
  /** Groups in preference order. Like browsers, the client sends a key share for the first only. */
  groups: readonly NamedGroup[];
  /** Schemes offered in signature_algorithms and accepted from the server (default: VERIFIED_SIGNATURE_SCHEMES). */
  signatureSchemes: readonly number[];
  /** Client certificate and its key holder, sent when the server asks for one. */
  certificate?: CertifiedKey;
  /** TLS 1.2 PSK suites; when set, only PSK suites are offered in TLS 1.2 (and TLS 1.2 only, unless tls13Psk is set too). */
  psk?: ClientPskConfig;
  /**
   * TLS 1.3 external PSK, offered in every ClientHello. A server that does not take it and
   * sends a certificate is verified as usual (with no trust anchors, the driver refuses it).
   * Not with `session`. TLS 1.3 only unless `psk` is set too.
   */
  tls13Psk?: ClientTls13PskConfig;
  /** Send a 32-byte legacy_session_id and a ChangeCipherSpec, as RFC 8446 D.4 middlebox compatibility. Default true. */
  compatibilityMode: boolean;
  maxHandshakeMessage: number;
  /**
   * Last word on the ClientHello's extensions, in order (fingerprint control, tests that
   * replay a trace). It sees the list the client built and returns the one to send; the
   * client still only accepts answers to what it can act on.
   */
  helloExtensions?: (built: Extension[]) => Extension[];
  /** A session from an earlier connection (a `session` event) to offer for resumption. */
  session?: ClientSession;
  /** RFC 8879: algorithms offered for the server's Certificate, in preference order (default brotli, zlib; []: none). */
  certificateCompression: readonly SupportedCompressionAlgorithm[];
  /**
   * RFC 9345: the schemes listed in the delegated_credential extension, so a server may
   * sign with a delegated credential (checked as 4.1.3 says); empty (the default): not offered.
   */
  delegatedCredentials: readonly number[];
}

/**
 * The options a user passes; everything has a default. `delegatedCredentials: true` offers
 * the TLS 1.3 ECDSA and Ed25519 schemes of `signatureSchemes`; a list offers those schemes.
 */
export type ClientConfigInput = Partial<Omit<ClientConfig, 'delegatedCredentials'>> & { delegatedCredentials?: boolean | readonly number[] };

/** Fills in defaults and checks the combination, with messages that name the problem. */
export function resolveClientConfig(input: ClientConfigInput = {}): ClientConfig {
  const { delegatedCredentials, ...defined } = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ClientConfigInput;
  const psk = defined.psk;
  const tls13Psk = defined.tls13Psk;
  const pskHash = tls13Psk?.hash ?? 'sha256';
  const config: ClientConfig = {
    alpnProtocols: [],
    // A TLS 1.3 PSK client offers TLS 1.2 only with a TLS 1.2 PSK as well (its fallback would otherwise be a certificate).
    minVersion: tls13Psk && !psk ? 'TLSv1.3' : 'TLSv1.2',
    maxVersion: psk && !tls13Psk ? 'TLSv1.2' : 'TLSv1.3',
    // 4.2.11: the PSK is usable only with a suite of its hash; offering others invites a suite that cannot take it.
    tls13CipherSuites: tls13Psk ? DEFAULT_TLS13_SUITES.filter((s) => suiteInfo(s)!.hash === pskHash) : DEFAULT_TLS13_SUITES,
    tls12CipherSuites: psk ? DEFAULT_CLIENT_PSK_SUITES : DEFAULT_CLIENT_TLS12_SUITES,
    groups: DEFAULT_GROUPS,
    signatureSchemes: VERIFIED_SIGNATURE_SCHEMES,
    compatibilityMode: true,
    maxHandshakeMessage: DEFAULT_MAX_HANDSHAKE_MESSAGE,
    certificateCompression: DEFAULT_CERTIFICATE_COMPRESSION,
    ...defined,
    delegatedCredentials: [],
  };
  config.delegatedCredentials = delegatedCredentialSchemes(delegatedCredentials, config.signatureSchemes);
  checkCompressionAlgorithms(config.certificateCompression, 'certificateCompression');
  for (const s of config.tls13CipherSuites) if (suiteInfo(s)?.version !== 'TLSv1.3') throw new Error(`not a TLS 1.3 cipher suite: 0x${Number(s).toString(16)}`);
  for (const s of config.tls12CipherSuites) {
    const info = suiteInfo(s);
    if (info?.version !== 'TLSv1.2') throw new Error(`not a TLS 1.2 cipher suite: 0x${Number(s).toString(16)}`);
    if (info.keyExchange === 'RSA') throw new Error(`${info.name}: the client does not offer RSA key exchange`);
    if ((info.keyExchange === 'PSK' || info.keyExchange === 'ECDHE_PSK') !== (psk !== undefined)) throw new Error(`${info.name}: PSK suites go with psk, and only they`);
  }
  if (config.groups.length === 0) throw new Error('no groups configured');
  for (const g of config.groups) if (!isKnownGroup(g)) throw new Error(`unsupported group ${g}`);
  for (const s of config.signatureSchemes) if (!schemeInfo(s)) throw new Error(`unsupported signature scheme 0x${s.toString(16)}`);
  for (const p of config.alpnProtocols) if (p.length === 0 || p.length > 255) throw new Error(`invalid ALPN protocol name "${p}"`);
  if (config.minVersion === 'TLSv1.3' && config.maxVersion === 'TLSv1.2') throw new Error('minVersion is above maxVersion');
  if (psk && config.maxVersion === 'TLSv1.3' && !tls13Psk) throw new Error('psk is a TLS 1.2 PSK: with maxVersion TLSv1.3 give tls13Psk as well');
  if (tls13Psk) checkTls13Psk(tls13Psk, config);
  if (config.maxVersion === 'TLSv1.3' && config.tls13CipherSuites.length === 0) throw new Error('no TLS 1.3 cipher suites configured');
  if (config.minVersion === 'TLSv1.2' && config.tls12CipherSuites.length === 0 && config.maxVersion === 'TLSv1.2') throw new Error('no TLS 1.2 cipher suites configured');
  return config;
}

/** The schemes a client offers for delegated credentials: `true` takes the signature schemes a credential key can use. */
function delegatedCredentialSchemes(option: boolean | readonly number[] | undefined, signatureSchemes: readonly number[]): readonly number[] {
  if (option === undefined || option === false) return [];
  if (option === true) return signatureSchemes.filter((s) => schemeInfo(s)!.tls13 && DC_KEY_KINDS.includes(schemeInfo(s)!.key));
  if (option.length === 0) throw new Error('delegatedCredentials: an empty scheme list (use false to not offer delegated credentials)');
  for (const s of option) if (!schemeInfo(s)?.tls13) throw new Error(`delegatedCredentials: 0x${s.toString(16)} is not a TLS 1.3 signature scheme keyward verifies`);
  return option;
}

function checkTls13Psk(p: ClientTls13PskConfig, config: ClientConfig): void {
  for (const m of ['tls13Binder', 'tls13HandshakeSecrets', 'tls13ApplicationSecrets'] as const) {
    if (typeof p.holder?.[m] !== 'function') throw new Error(`tls13Psk.holder must implement ${m}`);
  }
  const hash = p.hash ?? 'sha256';
  if (hash !== 'sha256' && hash !== 'sha384') throw new Error('tls13Psk.hash must be sha256 or sha384');
  const n = typeof p.identity === 'string' ? Buffer.byteLength(p.identity, 'utf8') : p.identity?.length;
  if (!n || n > 0xffff) throw new Error('tls13Psk.identity must be 1 to 65535 bytes');
  if (p.keyExchange !== undefined && p.keyExchange !== 'psk_dhe_ke' && p.keyExchange !== 'psk_ke') throw new Error('tls13Psk.keyExchange must be psk_dhe_ke or psk_ke');
  if (config.maxVersion !== 'TLSv1.3') throw new Error('tls13Psk is a TLS 1.3 PSK: maxVersion is TLSv1.2');
  if (!config.tls13CipherSuites.some((s) => suiteInfo(s)!.hash === hash)) throw new Error(`tls13Psk: no TLS 1.3 cipher suite of the PSK hash ${hash}`);
  if (config.session) throw new Error('tls13Psk and session are not offered together: give one PSK');
}
