import type { KeyOperations, PskOperations, Tls13PskOperations } from '../../keys/keyOperations.js';
import { suiteInfo, type CipherSuite } from '../crypto/cipherSuites.js';
import { isKnownGroup, type KeyExchange, type NamedGroup } from '../crypto/groups.js';
import { DEFAULT_GROUPS, DEFAULT_MAX_EARLY_DATA_SKIP, DEFAULT_MAX_HANDSHAKE_MESSAGE, DEFAULT_TLS12_SUITES, DEFAULT_TLS13_SUITES } from './defaults.js';
import type { SessionCache12 } from '../resumption/sessionCache12.js';
import type { TicketKeyRing } from '../resumption/ticketKeys.js';
import { encodeCertificate13 } from '../wire/certificate13.js';
import type { CertifiedKey } from './certificates.js';
import { checkCompressionAlgorithms, compressCertificateMessage, DEFAULT_CERTIFICATE_COMPRESSION, type SupportedCompressionAlgorithm } from './certificateCompression.js';

/** Where the engine gets randomness; tests inject a fixed one to replay RFC 8448. */
export type RandomSource = (length: number) => Uint8Array;

/** Makes the server's ephemeral key share; tests inject fixed private keys. */
export type KeyShareFactory = (group: NamedGroup) => KeyExchange;

/** TLS 1.2 PSK suites (RFC 4279, RFC 5489): the PSKs live in `holder`, never in the engine. */
export interface PskConfig {
  holder: PskOperations;
  /** psk_identity_hint sent in ServerKeyExchange; none by default. */
  identityHint?: string;
}

/**
 * TLS 1.3 external PSKs (RFC 8446 4.2.11) whose key schedule runs in `holder`: the PSK,
 * Early Secret, binder key and Handshake/Master Secrets never enter the engine
 * (docs/tls13-psk.md).
 */
export interface Tls13PskServerConfig {
  holder: Tls13PskOperations;
  /** The hash the external PSKs are used with (each PSK has one: RFC 8446 4.2.11); default sha256. */
  hash?: 'sha256' | 'sha384';
  /**
   * The identities this server takes (exact bytes; a string is UTF-8). An offered identity
   * not listed is a PSK this server cannot use, ignored as RFC 8446 4.2.11 allows: the
   * handshake goes on with a certificate, or fails with handshake_failure without one.
   * Required with certificates (else a client's stale ticket would end in decrypt_error
   * instead of a certificate handshake). Absent on a PSK-only server: every offered
   * identity that is not one of this server's tickets goes to the holder, and an unknown
   * one ends in decrypt_error exactly like a wrong binder.
   */
  identities?: readonly (string | Uint8Array)[];
  /** Accept psk_ke (no (EC)DHE, no forward secrecy) when the client offers it and no (EC)DHE can be had. Default false. */
  allowPskOnly?: boolean;
}

/** Configuration of a TLS server engine. Build it with `resolveServerConfig`. */
export interface ServerConfig {
  /** Certificate chains with their keys, in preference order. */
  certificates: readonly CertifiedKey[];
  /** What to do when SNI names no certificate: use the default (first usable) chain, or refuse. */
  unknownServerName: 'default' | 'reject';
  /** TLS 1.3 cipher suites in server preference order. */
  tls13CipherSuites: readonly CipherSuite[];
  /**
   * TLS 1.2 cipher suites in server preference order. RSA key exchange suites are used
   * only with `rsaKeyExchange`, PSK suites only with `psk`.
   */
  tls12CipherSuites: readonly CipherSuite[];
  /** Enables TLS 1.2 RSA key exchange (no forward secrecy); needs a key with `decryptPremaster`. Default false. */
  rsaKeyExchange: boolean;
  /** Refuse TLS 1.2 clients that do not offer the RFC 7627 extended master secret (handshake_failure). Default false. */
  requireExtendedMasterSecret: boolean;
  /** TLS 1.2 PSK suites; off when absent. */
  psk?: PskConfig;
  /** TLS 1.3 external PSKs; off when absent. */
  tls13Psk?: Tls13PskServerConfig;
  /** Key-exchange groups in server preference order. */
  groups: readonly NamedGroup[];
  /** ALPN protocols in server preference order; empty: ALPN not used. */
  alpnProtocols: readonly string[];
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  maxVersion: 'TLSv1.2' | 'TLSv1.3';
  maxHandshakeMessage: number;
  /** Groups to list in EncryptedExtensions (RFC 8446 4.2.7), so clients learn our preference; none by default. */
  advertisedGroups?: readonly number[];
  /** Bytes of undecryptable (rejected 0-RTT) records skipped before failing. */
  maxEarlyDataSkip: number;
  /**
   * Mutual TLS: ask every client for a certificate (TLS 1.3 CertificateRequest with
   * signature_algorithms and certificate_authorities; TLS 1.2 CertificateRequest). The
   * chain, empty or not, goes to the driver as a verifyPeer event; the engine checks the
   * client's CertificateVerify against it.
   */
  clientAuth?: ClientAuthConfig;
  /** Cookie to put in a HelloRetryRequest; the second ClientHello must echo it. */
  helloRetryCookie?: (clientHello1Hash: Uint8Array) => Uint8Array;
  /**
   * Seals and opens session tickets: TLS 1.3 NewSessionTicket (RFC 8446 4.6.1) and TLS 1.2
   * RFC 5077 tickets. Absent: no tickets are issued and none are accepted.
   */
  ticketKeys?: TicketKeyRing;
  /**
   * TLS 1.3 NewSessionTickets sent after each full handshake (default 2, as node:tls; 0: none;
   * at most 16); after a resumption one, to replace the ticket the client used (node:tls
   * sends none then).
   */
  ticketCount: number;
  /** TLS 1.2 resumption by session id; absent: session ids are not cached. */
  sessionCache12?: SessionCache12;
  /** Accept TLS 1.3 psk_ke (resumption without (EC)DHE, no forward secrecy). Default false: psk_dhe_ke only. */
  allowPskOnlyKeyExchange: boolean;
  /**
   * RFC 8879: the algorithms a TLS 1.3 Certificate is compressed with, in preference order,
   * for a client that offers one of them (default brotli, then zlib; [] sends it plain).
   * Each chain is compressed once, when the configuration is resolved.
   */
  certificateCompression: readonly SupportedCompressionAlgorithm[];
}

/** What a server asking for client certificates sends. */
export interface ClientAuthConfig {
  /** DER distinguished names of the CAs whose clients are accepted, as hints to the client; may be empty. */
  readonly certificateAuthorities: readonly Uint8Array[];
}

/** The options a user passes; everything has a default but the certificates (empty for a PSK-only server). */
export type ServerConfigInput = Partial<ServerConfig> & { certificates: readonly CertifiedKey[] };

/** Fills in defaults and checks the combination, with messages that name the problem. */
export function resolveServerConfig(input: ServerConfigInput): ServerConfig {
  // A PSK-only server (TLS 1.2 PSK suites, TLS 1.3 external PSKs) needs no certificate.
  if (input.certificates.length === 0 && !input.psk && !input.tls13Psk) throw new Error('a TLS server needs at least one certificate (or a PSK holder: psk, tls13Psk)');
  const config: ServerConfig = {
    unknownServerName: 'default',
    tls13CipherSuites: DEFAULT_TLS13_SUITES,
    tls12CipherSuites: DEFAULT_TLS12_SUITES,
    rsaKeyExchange: false,
    requireExtendedMasterSecret: false,
    groups: DEFAULT_GROUPS,
    alpnProtocols: [],
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    maxHandshakeMessage: DEFAULT_MAX_HANDSHAKE_MESSAGE,
    maxEarlyDataSkip: DEFAULT_MAX_EARLY_DATA_SKIP,
    ticketCount: 2,
    allowPskOnlyKeyExchange: false,
    certificateCompression: DEFAULT_CERTIFICATE_COMPRESSION,
    ...stripUndefined(input),
    certificates: input.certificates,
  };
  for (const s of config.tls13CipherSuites) {
    if (suiteInfo(s)?.version !== 'TLSv1.3') throw new Error(`not a TLS 1.3 cipher suite: 0x${Number(s).toString(16)}`);
  }
  for (const s of config.tls12CipherSuites) {
    if (suiteInfo(s)?.version !== 'TLSv1.2') throw new Error(`not a TLS 1.2 cipher suite: 0x${Number(s).toString(16)}`);
  }
  if (config.psk && typeof config.psk.holder?.tls12MasterSecret !== 'function') throw new Error('psk.holder must implement tls12MasterSecret');
  if (config.psk?.identityHint !== undefined && Buffer.byteLength(config.psk.identityHint, 'utf8') > 0xffff) throw new Error('psk.identityHint is too long');
  if (config.tls13Psk) checkTls13Psk(config.tls13Psk, config);
  // Without a certificate or a TLS 1.3 PSK there is nothing to answer a TLS 1.3 hello with.
  if (config.certificates.length === 0 && !config.tls13Psk) {
    if (input.minVersion === 'TLSv1.3') throw new Error('minVersion TLSv1.3 needs a certificate or tls13Psk');
    config.maxVersion = 'TLSv1.2';
  }
  for (const g of config.groups) if (!isKnownGroup(g)) throw new Error(`unsupported group ${g}`);
  if (config.groups.length === 0 || config.tls13CipherSuites.length === 0) throw new Error('no groups or no cipher suites configured');
  for (const p of config.alpnProtocols) if (p.length === 0 || p.length > 255) throw new Error(`invalid ALPN protocol name "${p}"`);
  if (config.minVersion === 'TLSv1.3' && config.maxVersion === 'TLSv1.2') throw new Error('minVersion is above maxVersion');
  if (!Number.isInteger(config.ticketCount) || config.ticketCount < 0 || config.ticketCount > MAX_TICKET_COUNT) {
    throw new Error(`ticketCount must be an integer from 0 to ${MAX_TICKET_COUNT}`);
  }
  checkCompressionAlgorithms(config.certificateCompression, 'certificateCompression');
  // Brotli at its best quality takes milliseconds per chain: paid here, not by the first handshake.
  if (config.maxVersion === 'TLSv1.3') {
    for (const c of config.certificates) for (const a of config.certificateCompression) compressCertificateMessage(encodeCertificate13(new Uint8Array(0), c.chain), a);
  }
  return config;
}

function checkTls13Psk(p: Tls13PskServerConfig, config: ServerConfig): void {
  for (const m of ['tls13VerifyBinder', 'tls13HandshakeSecrets', 'tls13ApplicationSecrets'] as const) {
    if (typeof p.holder?.[m] !== 'function') throw new Error(`tls13Psk.holder must implement ${m}`);
  }
  const hash = p.hash ?? 'sha256';
  if (hash !== 'sha256' && hash !== 'sha384') throw new Error('tls13Psk.hash must be sha256 or sha384');
  if (!config.tls13CipherSuites.some((s) => suiteInfo(s)!.hash === hash)) throw new Error(`tls13Psk: no TLS 1.3 cipher suite of the PSK hash ${hash}`);
  if (config.maxVersion !== 'TLSv1.3') throw new Error('tls13Psk needs maxVersion TLSv1.3');
  for (const id of p.identities ?? []) {
    const n = typeof id === 'string' ? Buffer.byteLength(id, 'utf8') : id.length;
    if (n === 0 || n > 0xffff) throw new Error('tls13Psk.identities: an identity is 1 to 65535 bytes');
  }
  if (config.certificates.length > 0 && p.identities === undefined) {
    throw new Error('tls13Psk.identities is required on a server that also has certificates: an identity not listed (a stale ticket, say) then gets the certificate handshake instead of decrypt_error');
  }
}

/** Most TLS 1.3 tickets sent after one handshake (each costs a seal and a record). */
export const MAX_TICKET_COUNT = 16;

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Per-connection inputs that are not configuration. */
export interface ConnectionOptions {
  random?: RandomSource;
  keyShareFactory?: KeyShareFactory;
  /** Remote address for key-holder audit and logs. */
  peerAddress?: string;
  connectionId?: string;
  /** Clock, ms since the epoch (ticket ages and lifetimes); Date.now by default. Tests inject one. */
  now?: () => number;
}

export type { KeyOperations };
