/**
 * `--delegated-credentials` for `serve` and `proxy` (RFC 9345): for each certificate whose
 * key can sign credentials (in keyd, a key process, or this process), a
 * DelegatedCredentialManager that keeps one current; what to say at start about each
 * certificate (on, and until when, or why not); and the log lines of renewal failures and
 * expiries. Log lines carry dates, codes, reasons and the credential key's hash, never a key.
 */
import { DEFAULT_DC_MAX_VALIDITY_MS } from '../keys/delegatedCredentialIssuer.js';
import { checkCertificateCanDelegate, DelegatedCredentialManager, type DelegatedCredentialEvent } from '../keys/delegatedCredentials.js';
import { CliError, type OpenedKey } from './keySources.js';

/** Shortest and longest --dc-validity: room to renew before the last minute, and RFC 9345's 7 days. */
export const MIN_DC_VALIDITY_MS = 5 * 60_000;
export const MAX_DC_VALIDITY_MS = 7 * 24 * 3600_000;
/** Default --dc-validity. */
export const DEFAULT_DC_VALIDITY_MS = 3600_000;

/** Where the managers report (serve: stderr lines; proxy: its pino logger). */
export type DelegationLog = (level: 'info' | 'warn', message: string, fields: Record<string, unknown>) => void;

/** What --delegated-credentials did for one certificate. */
export interface CertificateDelegation {
  /** Present when credentials are on for it (the first one may still be coming). */
  manager?: DelegatedCredentialManager;
  /** One sentence for the start log. */
  status: string;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 24 * 3600_000 };

/** Parses --dc-validity: a whole number of s, m, h or d, from 5 minutes to 7 days. */
export function parseDcValidity(text: string, what = '--dc-validity'): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (!m) throw new CliError(`${what} ${text}: expected a duration such as 30m, 1h or 2d`);
  const ms = Number(m[1]) * UNITS[m[2]];
  if (ms < MIN_DC_VALIDITY_MS || ms > MAX_DC_VALIDITY_MS) throw new CliError(`${what} ${text}: a delegated credential is valid from 5 minutes to 7 days (RFC 9345)`);
  return ms;
}

/**
 * The longest validity a key process or in-process issuer should accept for credentials of
 * `validityMs`: the holders' default (6 h), or more when asked for more.
 */
export function holderMaxValidity(validityMs: number): number {
  return Math.max(DEFAULT_DC_MAX_VALIDITY_MS, validityMs);
}

function logEvent(log: DelegationLog, certPath: string, e: DelegatedCredentialEvent): void {
  if (e.type === 'issued') {
    log('info', 'delegated credential issued', { cert: certPath, expiresAt: new Date(e.expiresAt).toISOString(), dcKey: e.dcKeyId.slice(0, 16) });
  } else if (e.type === 'renewal-failed') {
    const next = e.serving ? 'the current credential is served until it expires' : 'handshakes are signed by the key holder meanwhile';
    log('warn', `delegated credential renewal failed: ${next}`, { cert: certPath, code: e.code, reason: e.message, retryAt: new Date(e.retryAt).toISOString() });
  } else {
    log('warn', 'delegated credential expired before a renewal succeeded: handshakes are signed by the key holder', { cert: certPath });
  }
}

/**
 * Starts delegated credentials for the certificate `certPath` (leaf `leafDer`) whose key
 * `opened` holds, waiting for the first issue. A certificate that cannot delegate, or a
 * key that cannot sign credentials, is answered with the reason and no manager; a first
 * issue that fails is retried in the background (and said so).
 */
export async function startDelegation(certPath: string, leafDer: Uint8Array, opened: Pick<OpenedKey, 'delegation'>, validityMs: number, log: DelegationLog): Promise<CertificateDelegation> {
  const d = opened.delegation;
  if (!d || 'unavailable' in d) return { status: `delegated credentials off: ${d ? d.unavailable : 'this key holder does not sign delegated credentials'}` };
  const can = checkCertificateCanDelegate(leafDer, d.issuer.publicKey);
  if (!can.ok) return { status: `delegated credentials off: ${can.reason}` };
  let started = false;
  const manager = new DelegatedCredentialManager({
    issuer: d.issuer,
    certificate: leafDer,
    validityMs,
    // The start line tells the first attempt's outcome; events after it are logged.
    onEvent: (e) => started && logEvent(log, certPath, e),
  });
  const ok = await manager.start();
  started = true;
  const dc = manager.current();
  if (ok && dc) return { manager, status: `delegated credentials on: the current one expires at ${new Date(dc.expiresAt).toISOString()} and is renewed before` };
  return { manager, status: `delegated credentials on, but the first could not be had (${manager.stats.lastError ?? 'unknown error'}): retried in the background; handshakes are signed by the key holder meanwhile` };
}
