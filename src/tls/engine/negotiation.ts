import { CipherSuite, suiteInfo } from '../crypto/cipherSuites.js';
import { NamedGroup } from '../crypto/groups.js';
import { AlertDescription } from '../wire/alerts.js';
import type { ClientHello, KeyShareEntry } from '../wire/clientHello.js';
import { TLS12, TLS13 } from '../wire/constants.js';
import { TlsAlertError } from '../wire/errors.js';
import type { ServerConfig } from './config.js';

/**
 * Version negotiation shared by every server handshake (RFC 8446 4.2.1, 4.1.3;
 * RFC 5246 E.1): supported_versions when present, else legacy_version.
 */
export function chooseVersion(ch: ClientHello, config: Pick<ServerConfig, 'minVersion' | 'maxVersion'>): 'TLSv1.3' | 'TLSv1.2' {
  const max = config.maxVersion === 'TLSv1.3' ? TLS13 : TLS12;
  const min = config.minVersion === 'TLSv1.3' ? TLS13 : TLS12;
  // RFC 8446 D.2 / RFC 5246 E.1: a legacy_version below TLS 1.0 (SSL 3.0 and older, or
  // garbage) is refused even beside supported_versions, as OpenSSL and node:tls do.
  if (ch.legacyVersion < 0x0301) {
    throw new TlsAlertError(AlertDescription.protocol_version, `ClientHello legacy_version 0x${ch.legacyVersion.toString(16).padStart(4, '0')} is below TLS 1.0`);
  }
  let offered: readonly number[];
  if (ch.supportedVersions) offered = ch.supportedVersions;
  else offered = ch.legacyVersion >= TLS12 ? [TLS12] : [];
  for (const v of [TLS13, TLS12]) {
    if (v <= max && v >= min && offered.includes(v)) return v === TLS13 ? 'TLSv1.3' : 'TLSv1.2';
  }
  throw new TlsAlertError(AlertDescription.protocol_version, 'no protocol version in common');
}

/** First suite of the server's order the client offers. */
export function chooseSuite(clientSuites: readonly number[], serverSuites: readonly CipherSuite[]): CipherSuite | undefined {
  return serverSuites.find((s) => clientSuites.includes(s) && suiteInfo(s) !== undefined);
}

export type GroupChoice = { share: KeyShareEntry } | { retryWith: NamedGroup } | null;

/**
 * Chooses the key-exchange group: the server's most preferred group for which the
 * client already sent a share (no extra round trip); otherwise the server's most
 * preferred group the client supports, which costs a HelloRetryRequest.
 */
export function chooseGroup(ch: ClientHello, serverGroups: readonly NamedGroup[]): GroupChoice {
  const shares = ch.keyShares ?? [];
  for (const g of serverGroups) {
    const share = shares.find((s) => s.group === g);
    if (share) return { share };
  }
  const supported = ch.supportedGroups ?? [];
  const retry = serverGroups.find((g) => supported.includes(g));
  return retry !== undefined ? { retryWith: retry } : null;
}

/** ALPN (RFC 7301 3.2): the server's first protocol the client offers; none in common is fatal. */
export function chooseAlpn(clientProtocols: readonly string[] | undefined, serverProtocols: readonly string[]): string | undefined {
  if (!clientProtocols || serverProtocols.length === 0) return undefined;
  const p = serverProtocols.find((s) => clientProtocols.includes(s));
  if (p === undefined) throw new TlsAlertError(AlertDescription.no_application_protocol, 'no ALPN protocol in common');
  return p;
}
