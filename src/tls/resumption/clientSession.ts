import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import { readTime, writeTime } from './sessionState.js';

/**
 * What a client keeps to resume a session later (node:tls's `session` Buffer, keyward's
 * `getSession()`/`session` option): one per TLS 1.3 NewSessionTicket, or one per TLS 1.2
 * session (its session id, and the RFC 5077 ticket when the server sent one).
 *
 * `secret` is the TLS 1.3 resumption PSK or the TLS 1.2 master secret: whoever holds an
 * encoded session can resume it, so applications store it as they would a password.
 */
export interface ClientSession {
  readonly version: 'TLSv1.3' | 'TLSv1.2';
  readonly cipherSuite: number;
  readonly secret: Uint8Array;
  /** TLS 1.3 ticket or RFC 5077 ticket; empty when a TLS 1.2 session resumes by id only. */
  readonly ticket: Uint8Array;
  /** TLS 1.2 session id; empty in TLS 1.3. */
  readonly sessionId: Uint8Array;
  /** When the ticket arrived, ms since the epoch: the base of the obfuscated age (RFC 8446 4.2.11.1). */
  readonly receivedAt: number;
  /** ticket_lifetime in seconds (TLS 1.3, RFC 5077 lifetime hint); 0 when unknown. */
  readonly lifetime: number;
  /** TLS 1.3 ticket_age_add; 0 in TLS 1.2. */
  readonly ageAdd: number;
  /** TLS 1.3 max_early_data_size from the ticket's early_data extension; 0 when absent. */
  readonly maxEarlyData: number;
  /** The server name the session was made for: it is offered only to the same name. */
  readonly serverName: string | undefined;
  readonly alpnProtocol: string | undefined;
  /** TLS 1.2: whether the session used the RFC 7627 extended master secret. */
  readonly extendedMasterSecret: boolean;
  /** The server's certificate chain (DER) as verified in the full handshake. */
  readonly peerCertificates: readonly Uint8Array[];
}

const FORMAT = 0x4b; // 'K': an encoding of another format or version is refused, not misread.
const VERSION_CODES = { 'TLSv1.3': 0x0304, 'TLSv1.2': 0x0303 } as const;

/** The bytes applications store (node:tls's `session` Buffer plays the same part). */
export function encodeClientSession(s: ClientSession): Uint8Array {
  const w = new Writer(256 + s.ticket.length);
  w.u8(FORMAT).u16(VERSION_CODES[s.version]).u16(s.cipherSuite);
  w.vec8(s.secret).vec16(s.ticket).vec8(s.sessionId);
  writeTime(w, s.receivedAt);
  w.u32(s.lifetime).u32(s.ageAdd >>> 0).u32(s.maxEarlyData).u8(s.extendedMasterSecret ? 1 : 0);
  w.vec8(Buffer.from(s.serverName ?? '', 'utf8'));
  w.vec8(Buffer.from(s.alpnProtocol ?? '', 'utf8'));
  w.block(3, (chain) => {
    for (const cert of s.peerCertificates) chain.vec24(cert);
  });
  // Applications keep these bytes: a buffer of their own, not a view of the Writer's
  // pooled memory, whose copy of the secret is wiped.
  const pooled = w.finish();
  const own = pooled.slice();
  pooled.fill(0);
  return own;
}

/** Parses `encodeClientSession`'s bytes; throws an Error naming the problem (never a partial session). */
export function parseClientSession(bytes: Uint8Array): ClientSession {
  try {
    const r = new Reader(bytes, 'session');
    if (r.u8() !== FORMAT) throw new Error('not a keyward session');
    const code = r.u16();
    const version = code === 0x0304 ? 'TLSv1.3' : code === 0x0303 ? 'TLSv1.2' : undefined;
    if (version === undefined) throw new Error('unknown protocol version');
    const cipherSuite = r.u16();
    const secret = Uint8Array.from(r.vec8());
    const ticket = Uint8Array.from(r.vec16());
    const sessionId = Uint8Array.from(r.vec8());
    const receivedAt = readTime(r);
    const lifetime = r.u32();
    const ageAdd = r.u32();
    const maxEarlyData = r.u32();
    const extendedMasterSecret = r.u8() === 1;
    const name = Buffer.from(r.vec8()).toString('utf8');
    const alpn = Buffer.from(r.vec8()).toString('utf8');
    const chainReader = new Reader(r.vec24());
    const peerCertificates: Uint8Array[] = [];
    while (!chainReader.atEnd()) peerCertificates.push(Uint8Array.from(chainReader.vec24()));
    r.end();
    if (secret.length === 0) throw new Error('no secret');
    if (version === 'TLSv1.3' && ticket.length === 0) throw new Error('a TLS 1.3 session without a ticket');
    if (version === 'TLSv1.2' && ticket.length === 0 && sessionId.length === 0) throw new Error('a TLS 1.2 session with neither ticket nor session id');
    return {
      version,
      cipherSuite,
      secret,
      ticket,
      sessionId,
      receivedAt,
      lifetime,
      ageAdd,
      maxEarlyData,
      extendedMasterSecret,
      serverName: name === '' ? undefined : name,
      alpnProtocol: alpn === '' ? undefined : alpn,
      peerCertificates,
    };
  } catch (e) {
    throw new Error(`invalid TLS session: ${(e as Error).message}`, { cause: e });
  }
}
