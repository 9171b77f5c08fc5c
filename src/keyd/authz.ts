/**
 * Who may do what in keyd. A front is known by the identities its transport proves:
 * for mutual TLS, "cn:<subject CN>" and "sha256:<certificate fingerprint>"; for the Unix
 * socket (Node cannot read SO_PEERCRED), the identity configured for the socket, whose
 * file permissions decide who can connect. The first rule matching any of a peer's
 * identities applies; a peer no rule matches may do nothing.
 */
import type { PeerCertificate } from 'node:tls';
import { wildcardMatches } from './registry.js';

/** Token bucket parameters: `perSecond` sustained, `burst` at once. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** One authorization rule, as configured. */
export interface ClientRule {
  /** "cn:NAME", "sha256:HEX" (colons allowed), or the Unix socket's configured identity. */
  id: string;
  /** Key ids (64 hex), server names (exact, or "*.example.com" for one label), or "*". */
  keys: readonly string[];
  /** PSK identities (UTF-8 text, or "hex:..." for binary ones), or "*". */
  psks: readonly string[];
  /** May provision keys (put, list, delete, generate, PSKs). */
  admin: boolean;
  /**
   * Bound mode: this front's sign requests must carry the handshake messages, from which
   * keyd recomputes what it signs (boundSignInput.ts). Default false (structural checks).
   */
  bound?: boolean;
  /**
   * May obtain delegated credentials (RFC 9345) for the keys it may use. Default false: a
   * credential keeps signing for hours after keyd stops answering this front, so it is a
   * grant of its own.
   */
  delegatedCredentials?: boolean;
  /**
   * May fetch the session ticket keys keyd rotates (GET_TICKET_KEYS, mutual TLS only).
   * Default false: whoever holds a ticket key can open the tickets of every front of the
   * fleet (docs/resumption.md), so it is a grant of its own.
   */
  ticketKeys?: boolean;
  rateLimit?: RateLimit;
}

/** The identities a connection proved, and the one to show in logs and audit lines. */
export interface PeerIdentity {
  ids: string[];
  display: string;
}

/** What a key looks like to authorization: its id and the names it serves. */
export interface KeyRef {
  keyId: string;
  serverNames: readonly string[];
}

/** Normalises an identity for comparison: lower case, fingerprint colons dropped. */
export function normalizeIdentity(id: string): string {
  const i = id.trim();
  if (/^sha256:/i.test(i)) return 'sha256:' + i.slice(7).replace(/:/g, '').toLowerCase();
  if (/^cn:/i.test(i)) return 'cn:' + i.slice(3);
  return i;
}

/** Identities of a TLS client certificate. */
export function identityOfCertificate(cert: PeerCertificate): PeerIdentity {
  const ids: string[] = [];
  const cn = cert.subject?.CN;
  const cnValue = Array.isArray(cn) ? cn[0] : cn;
  if (typeof cnValue === 'string' && cnValue.length > 0) ids.push(`cn:${cnValue}`);
  if (cert.fingerprint256) ids.push(normalizeIdentity(`sha256:${cert.fingerprint256}`));
  return { ids, display: ids[0] ?? 'unknown-certificate' };
}

class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly limit: RateLimit) {
    this.tokens = limit.burst;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) / 1000) * this.limit.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

function nameMatches(pattern: string, name: string): boolean {
  return pattern === name || wildcardMatches(pattern, name);
}

/** What a matched rule grants one peer. Shared by all connections of that identity. */
export class Grant {
  readonly #bucket: TokenBucket | undefined;
  readonly #allKeys: boolean;
  readonly #keyIds: Set<string>;
  readonly #names: string[];
  readonly #allPsks: boolean;
  readonly #psks: Set<string>;

  constructor(readonly rule: ClientRule) {
    this.#bucket = rule.rateLimit ? new TokenBucket(rule.rateLimit) : undefined;
    this.#allKeys = rule.keys.includes('*');
    this.#keyIds = new Set(rule.keys.filter((k) => /^[0-9a-fA-F]{64}$/.test(k)).map((k) => k.toLowerCase()));
    this.#names = rule.keys.filter((k) => k !== '*' && !/^[0-9a-fA-F]{64}$/.test(k)).map((k) => k.toLowerCase().replace(/\.$/, ''));
    this.#allPsks = rule.psks.includes('*');
    this.#psks = new Set(rule.psks.filter((p) => p !== '*').map((p) => (p.startsWith('hex:') ? p.slice(4).toLowerCase() : Buffer.from(p, 'utf8').toString('hex'))));
  }

  get admin(): boolean {
    return this.rule.admin;
  }

  /** Sign requests must be bound (see ClientRule.bound). */
  get bound(): boolean {
    return this.rule.bound === true;
  }

  /** May obtain delegated credentials (see ClientRule.delegatedCredentials). */
  get delegatedCredentials(): boolean {
    return this.rule.delegatedCredentials === true;
  }

  /** May fetch the fleet's session ticket keys (see ClientRule.ticketKeys). */
  get ticketKeys(): boolean {
    return this.rule.ticketKeys === true;
  }

  /** May this peer use `key`? By id, or by any name the key serves. */
  mayUseKey(key: KeyRef): boolean {
    if (this.#allKeys || this.#keyIds.has(key.keyId)) return true;
    return this.#names.some((p) => key.serverNames.some((n) => nameMatches(p, n)));
  }

  /** May this peer use the PSK with `identity`? */
  mayUsePsk(identity: Uint8Array): boolean {
    return this.#allPsks || this.#psks.has(Buffer.from(identity).toString('hex'));
  }

  /** Takes one token from the peer's rate limit; false when it is exhausted. */
  takeToken(): boolean {
    return this.#bucket ? this.#bucket.take() : true;
  }
}

/** Maps peer identities to grants. */
export class Authorizer {
  readonly #grants: Array<{ id: string; grant: Grant }>;

  constructor(rules: readonly ClientRule[]) {
    this.#grants = rules.map((r) => ({ id: normalizeIdentity(r.id), grant: new Grant(r) }));
  }

  /** The grant of the first rule matching any of the peer's identities, or undefined. */
  resolve(peer: PeerIdentity): Grant | undefined {
    const ids = new Set(peer.ids.map(normalizeIdentity));
    return this.#grants.find((g) => ids.has(g.id))?.grant;
  }
}
