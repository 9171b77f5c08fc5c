import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';

/**
 * What a server keeps of a session so that a later handshake can resume it: sealed into a
 * ticket (TLS 1.3 NewSessionTicket, TLS 1.2 RFC 5077) or held in the TLS 1.2 session cache.
 *
 * `secret` is the whole of the session's confidentiality: in TLS 1.3 the resumption PSK
 * (HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce)), in TLS 1.2 the
 * master secret itself. Whoever opens a ticket can decrypt the TLS 1.2 session it came from
 * and impersonate the server to its holder in either version; docs/resumption.md says so.
 */
export interface SessionState {
  readonly version: 'TLSv1.3' | 'TLSv1.2';
  readonly cipherSuite: number;
  readonly secret: Uint8Array;
  /** When this ticket (or cache entry) was issued, ms since the epoch: the base of its age. */
  readonly issuedAt: number;
  /**
   * When the full handshake this session descends from was authenticated, ms since the
   * epoch. A resumed session's new tickets keep it, so resumption cannot outlive the
   * maximum lifetime by chaining tickets (RFC 8446 4.6.1).
   */
  readonly authenticatedAt: number;
  /** Seconds the ticket may be used (at most 604800, RFC 8446 4.6.1). */
  readonly lifetime: number;
  /** TLS 1.3 ticket_age_add; 0 in TLS 1.2. */
  readonly ageAdd: number;
  /** The SNI of the original handshake (RFC 8446 4.2.11 binds resumption to it); undefined when absent. */
  readonly serverName: string | undefined;
  /** The ALPN protocol of the original handshake (needed to accept early data; reported on resumption). */
  readonly alpnProtocol: string | undefined;
  /** TLS 1.2: whether the session used the RFC 7627 extended master secret. */
  readonly extendedMasterSecret: boolean;
  /** The peer's certificate chain (DER), when it authenticated with one (mutual TLS). */
  readonly peerCertificates: readonly Uint8Array[];
  /** TLS 1.3: the external PSK identity the full handshake authenticated the client with (reported again on resumption). */
  readonly pskIdentity?: Uint8Array;
}

/** Format byte of the encoding below: a ticket of another format is not opened (full handshake). */
const FORMAT = 1;
const VERSION_CODES = { 'TLSv1.3': 0x0304, 'TLSv1.2': 0x0303 } as const;
/** RFC 8446 4.6.1: a ticket lifetime of at most seven days. */
export const MAX_TICKET_LIFETIME = 604_800;

/** The session state's bytes, sealed into tickets by `TicketKeyRing`. */
export function encodeSessionState(s: SessionState): Uint8Array {
  if (s.lifetime < 0 || s.lifetime > MAX_TICKET_LIFETIME || !Number.isInteger(s.lifetime)) {
    throw new RangeError(`session lifetime must be 0..${MAX_TICKET_LIFETIME} seconds`);
  }
  const w = new Writer(128 + s.secret.length);
  w.u8(FORMAT).u16(VERSION_CODES[s.version]).u16(s.cipherSuite).vec8(s.secret);
  writeTime(w, s.issuedAt);
  writeTime(w, s.authenticatedAt);
  w.u32(s.lifetime).u32(s.ageAdd >>> 0).u8(s.extendedMasterSecret ? 1 : 0);
  w.vec8(Buffer.from(s.serverName ?? '', 'utf8'));
  w.vec8(Buffer.from(s.alpnProtocol ?? '', 'utf8'));
  w.block(3, (chain) => {
    for (const cert of s.peerCertificates) chain.vec24(cert);
  });
  // Optional and last, so a state without it reads as before.
  if (s.pskIdentity) w.vec16(s.pskIdentity);
  return w.finish();
}

/**
 * Parses what `encodeSessionState` wrote. A ticket only ever holds what this server sealed,
 * so anything else (another format, a truncated or padded state) is `null`: the handshake
 * goes on as a full one, as for any ticket the server cannot use.
 */
export function parseSessionState(bytes: Uint8Array): SessionState | null {
  try {
    const r = new Reader(bytes, 'session state');
    if (r.u8() !== FORMAT) return null;
    const code = r.u16();
    const version = code === 0x0304 ? 'TLSv1.3' : code === 0x0303 ? 'TLSv1.2' : null;
    if (version === null) return null;
    const cipherSuite = r.u16();
    const secret = Buffer.from(r.vec8(1));
    const issuedAt = readTime(r);
    const authenticatedAt = readTime(r);
    const lifetime = r.u32();
    const ageAdd = r.u32();
    const flags = r.u8();
    const serverName = Buffer.from(r.vec8()).toString('utf8');
    const alpnProtocol = Buffer.from(r.vec8()).toString('utf8');
    const chain = r.sub24('session peer certificates');
    const peerCertificates: Uint8Array[] = [];
    while (!chain.atEnd()) peerCertificates.push(Buffer.from(chain.vec24(1)));
    const pskIdentity = r.atEnd() ? undefined : Buffer.from(r.vec16(1));
    r.end();
    if (lifetime > MAX_TICKET_LIFETIME || flags > 1) return null;
    return {
      version,
      cipherSuite,
      secret,
      issuedAt,
      authenticatedAt,
      lifetime,
      ageAdd,
      serverName: serverName === '' ? undefined : serverName,
      alpnProtocol: alpnProtocol === '' ? undefined : alpnProtocol,
      extendedMasterSecret: flags === 1,
      peerCertificates,
      ...(pskIdentity ? { pskIdentity } : {}),
    };
  } catch {
    return null;
  }
}

// Milliseconds since the epoch as two u32 (a u48 would do; this keeps the Writer simple).
/** A time in ms since the epoch as two u32s. */
export function writeTime(w: Writer, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError('session time must be a non-negative integer of ms');
  w.u32(Math.floor(ms / 2 ** 32)).u32(ms % 2 ** 32);
}

export function readTime(r: Reader): number {
  return r.u32() * 2 ** 32 + r.u32();
}

/** How far the client's idea of a ticket's age may be from the server's (RFC 8446 8.3 suggests seconds). */
export const TICKET_AGE_WINDOW_MS = 10_000;

/**
 * Why `s` cannot be resumed at `now` (ms), or undefined when it can: expired by its own
 * lifetime, older than seven days since the full handshake, or (TLS 1.3, when the client
 * sent its obfuscated_ticket_age) a client age too far from the server's, which is what a
 * ticket replayed long after it was captured looks like (RFC 8446 4.2.11.1, 8.3).
 */
export function sessionAgeProblem(s: SessionState, now: number, obfuscatedTicketAge?: number, windowMs = TICKET_AGE_WINDOW_MS): string | undefined {
  const age = now - s.issuedAt;
  if (age < -windowMs) return 'ticket issued in the future';
  if (age > s.lifetime * 1000) return 'ticket lifetime over';
  if (now - s.authenticatedAt > MAX_TICKET_LIFETIME * 1000) return 'session older than seven days';
  if (obfuscatedTicketAge !== undefined) {
    const clientAge = (obfuscatedTicketAge - s.ageAdd) >>> 0;
    if (Math.abs(clientAge - age) > windowMs) return 'obfuscated ticket age does not match';
  }
  return undefined;
}
