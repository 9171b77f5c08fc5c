import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { secureRandom } from '../crypto/random.js';

/** Bytes that name a ticket key in every ticket it seals (public: they only pick the key). */
export const TICKET_KEY_NAME_LENGTH = 16;
/** AES-256-GCM. */
export const TICKET_KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
/** name || iv || tag around the sealed state. */
export const TICKET_OVERHEAD = TICKET_KEY_NAME_LENGTH + IV_LENGTH + TAG_LENGTH;

/** A ticket key as keyd hands it to a fleet of fronts (and as tests make them). */
export interface TicketKeyMaterial {
  readonly name: Uint8Array;
  /** 32 bytes; `install` copies them into a KeyObject (the caller wipes its own copy). */
  readonly secret: Uint8Array;
  /** ms since the epoch; a key is accepted until createdAt + rotateEvery + ticket lifetime. */
  readonly createdAt: number;
}

interface TicketKey {
  readonly name: Buffer;
  readonly key: KeyObject;
  readonly createdAt: number;
}

/** Options of a `TicketKeyRing`. */
export interface TicketKeyRingOptions {
  /** ms between new keys when the ring makes its own (default one hour). */
  rotateEvery?: number;
  /** Seconds a ticket is valid; a retired key opens tickets this long after it last sealed one (default 7200). */
  ticketLifetime?: number;
  /** Clock, ms since the epoch (tests inject one). */
  now?: () => number;
  /** Random bytes for key names, keys and IVs (tests inject one). */
  random?: (n: number) => Uint8Array;
}

/** What `open` found: the sealed bytes, and whether the key that sealed them still seals (else reissue). */
export interface OpenedTicket {
  readonly plaintext: Buffer;
  readonly currentKey: boolean;
}

/**
 * The keys that seal session tickets: AES-256-GCM under a 16-byte key name, rotated, in
 * memory only. Key bytes live in KeyObjects (native memory, never printed by inspect);
 * nothing here writes them anywhere. A ring either makes its own keys (one front) or is
 * given them (`install`, from keyd, so a fleet of fronts resumes each other's sessions).
 *
 * A ticket is name (16) || IV (12) || ciphertext || tag (16), with the name as AAD. Any
 * failure to open — unknown or retired key, tampered bytes — is `null`, and the caller goes
 * on with a full handshake as RFC 8446 4.6.1 and RFC 5077 3.4 ask.
 */
export class TicketKeyRing {
  readonly rotateEvery: number;
  readonly ticketLifetime: number;
  private readonly now: () => number;
  private readonly random: (n: number) => Uint8Array;
  /** Newest first: keys[0] seals; the rest only open. */
  private keys: TicketKey[] = [];
  /** Set by `install`: the ring no longer makes keys of its own. */
  private external = false;

  constructor(opts: TicketKeyRingOptions = {}) {
    this.rotateEvery = opts.rotateEvery ?? 3_600_000;
    this.ticketLifetime = opts.ticketLifetime ?? 7200;
    if (!(this.rotateEvery > 0) || !Number.isFinite(this.rotateEvery)) throw new RangeError('ticket key rotateEvery must be a positive number of ms');
    if (!Number.isInteger(this.ticketLifetime) || this.ticketLifetime < 1 || this.ticketLifetime > 604_800) {
      throw new RangeError('ticket lifetime must be 1..604800 seconds (RFC 8446 4.6.1)');
    }
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? secureRandom;
  }

  /**
   * Replaces the ring's keys with `keys` (the first seals, the others still open) and stops
   * it making keys of its own. Used with keys fetched from keyd.
   */
  install(keys: readonly TicketKeyMaterial[]): void {
    if (keys.length === 0) throw new RangeError('install needs at least one ticket key');
    const made = keys.map((k) => {
      if (k.name.length !== TICKET_KEY_NAME_LENGTH) throw new RangeError(`a ticket key name must be ${TICKET_KEY_NAME_LENGTH} bytes`);
      if (k.secret.length !== TICKET_KEY_LENGTH) throw new RangeError(`a ticket key must be ${TICKET_KEY_LENGTH} bytes`);
      return { name: Buffer.from(k.name), key: createSecretKey(k.secret), createdAt: k.createdAt };
    });
    this.keys = made;
    this.external = true;
  }

  /**
   * Whether `seal` can seal now: false only for a ring fed by `install` whose keys have all
   * expired (keyd out of reach for longer than a rotation period and a ticket lifetime).
   */
  canSeal(): boolean {
    this.retire();
    return !this.external || this.keys.length > 0;
  }

  /** Seals `plaintext` under the current key (making or rotating it first when due). */
  seal(plaintext: Uint8Array): Buffer {
    const k = this.currentKey();
    const iv = Buffer.from(this.random(IV_LENGTH));
    const cipher = createCipheriv('aes-256-gcm', k.key, iv, { authTagLength: TAG_LENGTH });
    cipher.setAAD(k.name);
    const body = cipher.update(plaintext);
    cipher.final();
    return Buffer.concat([k.name, iv, body, cipher.getAuthTag()]);
  }

  /** Opens a ticket this ring (or its fleet) sealed; `null` for anything else. */
  open(ticket: Uint8Array): OpenedTicket | null {
    if (ticket.length < TICKET_OVERHEAD) return null;
    this.retire();
    const t = Buffer.from(ticket.buffer, ticket.byteOffset, ticket.byteLength);
    const name = t.subarray(0, TICKET_KEY_NAME_LENGTH);
    const index = this.keys.findIndex((k) => k.name.equals(name));
    if (index < 0) return null;
    const k = this.keys[index];
    const iv = t.subarray(TICKET_KEY_NAME_LENGTH, TICKET_KEY_NAME_LENGTH + IV_LENGTH);
    const body = t.subarray(TICKET_KEY_NAME_LENGTH + IV_LENGTH, t.length - TAG_LENGTH);
    try {
      const decipher = createDecipheriv('aes-256-gcm', k.key, iv, { authTagLength: TAG_LENGTH });
      decipher.setAAD(k.name);
      decipher.setAuthTag(t.subarray(t.length - TAG_LENGTH));
      const plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
      return { plaintext, currentKey: k === this.sealingKey() && !this.rotationDue(k) };
    } catch {
      return null;
    }
  }

  /** Names of the keys the ring holds, newest first (for logs and tests; never the keys). */
  keyNames(): string[] {
    this.retire();
    return this.keys.map((k) => k.name.toString('hex'));
  }

  private rotationDue(k: TicketKey): boolean {
    return !this.external && this.now() - k.createdAt >= this.rotateEvery;
  }

  /**
   * The key that seals now: the newest of a ring that makes its own; of an installed ring,
   * the newest whose sealing period has begun (keyd hands out the next key a period
   * ahead, so a front that cannot reach keyd still moves on to it when its time comes).
   */
  private sealingKey(): TicketKey | undefined {
    if (!this.external) return this.keys[0];
    const now = this.now();
    let best: TicketKey | undefined;
    for (const k of this.keys) if (k.createdAt <= now && (best === undefined || k.createdAt > best.createdAt)) best = k;
    return best ?? this.keys[0];
  }

  private currentKey(): TicketKey {
    this.retire();
    const newest = this.sealingKey();
    if (newest !== undefined && !this.rotationDue(newest)) return newest;
    if (this.external) {
      if (newest === undefined) throw new Error('no ticket key installed (the keyd ticket keys have expired)');
      return newest;
    }
    // createSecretKey copies into native memory; the random bytes are wiped where they were drawn.
    const secret = this.random(TICKET_KEY_LENGTH);
    const made: TicketKey = { name: Buffer.from(this.random(TICKET_KEY_NAME_LENGTH)), key: createSecretKey(secret), createdAt: this.now() };
    secret.fill(0);
    this.keys.unshift(made);
    return made;
  }

  /** Drops keys that can no longer have sealed a valid ticket: they stopped sealing a lifetime ago. */
  private retire(): void {
    const now = this.now();
    const horizon = this.rotateEvery + this.ticketLifetime * 1000;
    this.keys = this.keys.filter((k) => now - k.createdAt < horizon);
  }
}
