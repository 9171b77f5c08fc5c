import { createHash, type Hash } from 'node:crypto';
import { HandshakeType } from '../wire/constants.js';
import { type HashName, hashLength } from './hash.js';

/** RFC 8446 4.4.1: handshake type of the synthetic message_hash message. */
export const MESSAGE_HASH_TYPE = HandshakeType.message_hash;

/**
 * The running transcript hash of a handshake (RFC 8446 4.4.1, RFC 5246 7.4.9).
 * Messages are fed whole, each with its 4-byte handshake header.
 */
export class Transcript {
  readonly hash: HashName;
  private ctx: Hash;
  private messages = 0;
  private replaced = false;
  /** current()'s answer until the next message: a server asks twice for Hash(ClientHello..server Finished). */
  private currentHash: Buffer | null = null;

  constructor(h: HashName) {
    hashLength(h); // rejects unknown names early
    this.hash = h;
    this.ctx = createHash(h);
  }

  /** Adds one complete handshake message (header included). */
  update(handshakeMessage: Uint8Array): void {
    this.ctx.update(handshakeMessage);
    this.messages++;
    this.currentHash = null;
  }

  /**
   * Transcript-Hash of everything added so far; the transcript continues. Asked again
   * before another message is added, it returns the same Buffer: callers do not modify it.
   */
  current(): Buffer {
    return (this.currentHash ??= this.ctx.copy().digest());
  }

  /**
   * Transcript-Hash of everything so far followed by `extra`, without adding `extra`.
   * For PSK binders (hash of a truncated ClientHello) and checks computed before a message is committed.
   */
  currentWith(extra: Uint8Array): Buffer {
    return this.ctx.copy().update(extra).digest();
  }

  /** A transcript that continues independently from this one's current state. */
  clone(): Transcript {
    const t = Object.create(Transcript.prototype) as Transcript;
    (t as { hash: HashName }).hash = this.hash;
    t.ctx = this.ctx.copy();
    t.messages = this.messages;
    t.replaced = this.replaced;
    t.currentHash = this.currentHash;
    return t;
  }

  /**
   * RFC 8446 4.4.1: after a HelloRetryRequest, ClientHello1 is replaced by
   * message_hash(254) || 00 00 Hash.length || Hash(ClientHello1).
   * Call it when exactly ClientHello1 has been added.
   */
  replaceWithMessageHash(): void {
    if (this.replaced) throw new Error('replaceWithMessageHash called twice (only one HelloRetryRequest is allowed)');
    if (this.messages !== 1) {
      throw new Error(`replaceWithMessageHash needs exactly ClientHello1 in the transcript, it holds ${this.messages} messages`);
    }
    const ch1 = this.ctx.digest();
    const header = Buffer.of(MESSAGE_HASH_TYPE, 0, 0, ch1.length);
    this.ctx = createHash(this.hash).update(header).update(ch1);
    this.replaced = true;
    this.currentHash = null;
  }
}
