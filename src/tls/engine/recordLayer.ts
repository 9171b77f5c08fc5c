import { RecordAead } from '../crypto/aead.js';
import { AlertDescription } from '../wire/alerts.js';
import { ContentType, HandshakeType, MAX_CIPHERTEXT_12, MAX_CIPHERTEXT_13, MAX_PLAINTEXT, TLS12 } from '../wire/constants.js';
import { TlsAlertError, decodeError, unexpectedMessage } from '../wire/errors.js';
import { protocolMaxBody } from '../wire/limits.js';

export interface PlainRecord {
  type: ContentType;
  fragment: Uint8Array;
  /** Whether the record arrived protected. */
  encrypted: boolean;
}

const HEADER = 5;
/**
 * Where a protected record that arrived split across reads is gathered to be decrypted:
 * shared by every connection, as the engine is synchronous and nothing keeps a view of
 * it once the record is opened (a new buffer per split record cost ~5 µs, one in four
 * records of a bulk upload).
 */
const SCRATCH = Buffer.allocUnsafe(HEADER + MAX_CIPHERTEXT_12);
const SKIPPED = Symbol('skipped');
/** Records we read before a key is set may be at most this (plus a little slack for SSLv3-era clients). */
const MAX_RECORD_BODY = MAX_CIPHERTEXT_12;

/**
 * TLS record layer for one connection: framing, protection with the current epoch's
 * AEAD, sequence numbers, padding removal, and the per-version rules of RFC 8446 5
 * and RFC 5246 6. Versions differ only in nonce and AAD construction.
 */
export class RecordLayer {
  /** Received bytes not yet framed: a queue of chunks, so a partial record costs no copy of the rest. */
  private chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  private readAead: RecordAead | null = null;
  private writeAead: RecordAead | null = null;
  private readSeq = 0;
  private writeSeq = 0;
  /** Protection format: TLS 1.3 hides the content type inside; 1.2 does not. */
  private mode: 'tls13' | 'tls12' = 'tls13';
  /** Version written in record headers. 0x0303 except for the very first records of a 1.2- handshake. */
  outerVersion = TLS12;
  /** Largest plaintext we send per record (peer's record_size_limit). */
  maxSendFragment = MAX_PLAINTEXT;
  /** Largest plaintext we accept per record (our own record_size_limit). */
  maxReceiveFragment = MAX_PLAINTEXT;

  private skipBudget = 0;

  /** Allows skipping up to `bytes` of records that fail to decrypt (early data we did not accept). */
  skipUndecryptableBytes(bytes: number): void {
    this.skipBudget = bytes;
  }

  setMode(mode: 'tls13' | 'tls12'): void {
    this.mode = mode;
  }

  get readProtected(): boolean {
    return this.readAead !== null;
  }

  get writeProtected(): boolean {
    return this.writeAead !== null;
  }

  get writeSequence(): number {
    return this.writeSeq;
  }

  setReadKey(aead: RecordAead): void {
    this.readAead = aead;
    this.readSeq = 0;
  }

  setWriteKey(aead: RecordAead): void {
    this.writeAead = aead;
    this.writeSeq = 0;
  }

  /** Appends bytes received from the network. */
  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.buffered += data.length;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * The next `n` buffered bytes, as a view when they lie in one chunk, else gathered; null
   * if fewer. `transient`: the caller is done with the bytes before it returns (it decrypts
   * them), so a record split across two reads is gathered into the shared scratch buffer
   * instead of a new one.
   */
  private peek(n: number, transient = false): Buffer | null {
    if (this.buffered < n) return null;
    const first = this.chunks[0];
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = transient ? SCRATCH.subarray(0, n) : Buffer.allocUnsafe(n);
    let o = 0;
    for (let i = 0, off = this.head; o < n; i++, off = 0) {
      const c = this.chunks[i];
      const take = Math.min(c.length - off, n - o);
      c.copy(out, o, off, off + take);
      o += take;
    }
    return out;
  }

  private consume(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const avail = this.chunks[0].length - this.head;
      if (avail > n) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /**
   * Takes the next complete record, decrypting it when a read key is set.
   * Returns null when more bytes are needed.
   */
  nextRecord(): PlainRecord | null {
    for (;;) {
      const rec = this.nextRecordOrSkip();
      if (rec !== SKIPPED) return rec;
    }
  }

  private nextRecordOrSkip(): PlainRecord | null | typeof SKIPPED {
    const h = this.peek(HEADER);
    if (!h) return null;
    const type = h[0];
    if (type < ContentType.change_cipher_spec || type > ContentType.application_data) {
      throw unexpectedMessage(`record of unknown content type ${type}`);
    }
    if (h[1] !== 3) throw decodeError('record version is not 3.x');
    const len = (h[3] << 8) | h[4];
    const limit = this.readAead ? (this.mode === 'tls13' ? MAX_CIPHERTEXT_13 : MAX_CIPHERTEXT_12) : MAX_RECORD_BODY;
    if (len > limit) throw new TlsAlertError(AlertDescription.record_overflow, `record of ${len} bytes`);
    // A protected record is decrypted before this returns; only a plaintext one (or a TLS 1.3
    // outer alert) is handed out as the bytes themselves.
    const decrypts = this.readAead !== null && (this.mode === 'tls12' || type === ContentType.application_data);
    const b = this.peek(HEADER + len, decrypts);
    if (!b) return null;
    this.consume(HEADER + len);
    const header = b.subarray(0, HEADER);
    const body = b.subarray(HEADER);

    if (!this.readAead || (this.mode === 'tls13' && type === ContentType.change_cipher_spec)) {
      // After a HelloRetryRequest no key is set yet: rejected 0-RTT records are recognised by
      // their outer type alone and skipped within the same budget (RFC 8446 4.2.10).
      if (!this.readAead && this.mode === 'tls13' && type === ContentType.application_data && this.skipBudget > 0 && len <= this.skipBudget) {
        this.skipBudget -= len;
        return SKIPPED;
      }
      if (len > MAX_PLAINTEXT) throw new TlsAlertError(AlertDescription.record_overflow, 'plaintext record too long');
      // In TLS 1.3 only application_data records are protected; a stray plaintext
      // alert is still read so that a peer's failure reason reaches the log.
      if (this.readAead && type !== ContentType.change_cipher_spec && type !== ContentType.alert) {
        throw unexpectedMessage('plaintext record after keys were set');
      }
      return { type, fragment: body, encrypted: false };
    }
    return this.mode === 'tls13' ? this.open13(type, header, body) : this.open12(type, body);
  }

  private open13(type: number, header: Uint8Array, body: Uint8Array): PlainRecord | typeof SKIPPED {
    if (type !== ContentType.application_data) {
      if (type === ContentType.alert) return { type, fragment: body, encrypted: false };
      throw unexpectedMessage('protected record with an outer type other than application_data');
    }
    const plain = this.readAead!.open(this.readSeq, header, body);
    if (!plain) {
      // Rejected 0-RTT data is skipped, up to a budget (RFC 8446 4.2.10).
      // A budget of 0 skips nothing: an empty record is not rejected early data.
      if (this.skipBudget > 0 && body.length <= this.skipBudget) {
        this.skipBudget -= body.length;
        return SKIPPED;
      }
      throw new TlsAlertError(AlertDescription.bad_record_mac, 'record authentication failed');
    }
    this.skipBudget = 0;
    this.readSeq++;
    // Strip zero padding; the last non-zero byte is the real content type.
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) throw unexpectedMessage('protected record with no content type');
    if (end > this.maxReceiveFragment) throw new TlsAlertError(AlertDescription.record_overflow, 'inner plaintext too long');
    const inner = plain[end];
    if (inner < ContentType.change_cipher_spec || inner > ContentType.application_data) throw unexpectedMessage(`unknown inner content type ${inner}`);
    if (inner === ContentType.change_cipher_spec) throw unexpectedMessage('protected change_cipher_spec');
    return { type: inner, fragment: plain.subarray(0, end), encrypted: true };
  }

  private open12(type: number, body: Uint8Array): PlainRecord {
    const aead = this.readAead!;
    const plainLen = body.length - aead.explicitNonceLength - aead.tagLength;
    if (plainLen < 0) throw new TlsAlertError(AlertDescription.bad_record_mac, 'record too short');
    const plain = aead.open(this.readSeq, aad12(this.readSeq, type, plainLen), body);
    if (!plain) throw new TlsAlertError(AlertDescription.bad_record_mac, 'record authentication failed');
    this.readSeq++;
    if (plain.length > this.maxReceiveFragment) throw new TlsAlertError(AlertDescription.record_overflow, 'plaintext too long');
    return { type, fragment: plain, encrypted: true };
  }

  /**
   * Frames `data` of `type` into records (fragmenting at the send limit), protected
   * when a write key is set, and appends them to `out` (possibly as several pieces per
   * record: the caller writes them in order).
   */
  write(type: ContentType, data: Uint8Array, out: Uint8Array[]): void {
    const max = this.writeAead && this.mode === 'tls13' ? this.maxSendFragment : Math.min(this.maxSendFragment, MAX_PLAINTEXT);
    if (data.length === 0) {
      this.seal(type, data, out);
      return;
    }
    for (let off = 0; off < data.length; off += max) {
      this.seal(type, data.subarray(off, Math.min(off + max, data.length)), out);
    }
  }

  /** Writes a record outside the current protection (the TLS 1.3 compatibility CCS). */
  writePlain(type: ContentType, data: Uint8Array, out: Uint8Array[]): void {
    out.push(frame(type, this.outerVersion, [data]));
  }

  private seal(type: ContentType, fragment: Uint8Array, out: Uint8Array[]): void {
    const aead = this.writeAead;
    if (!aead) {
      out.push(frame(type, this.outerVersion, [fragment]));
      return;
    }
    if (this.mode === 'tls13') {
      const len = aead.sealedLength(fragment.length + 1);
      const header = Buffer.from([ContentType.application_data, 3, 3, len >> 8, len & 0xff]);
      aead.sealParts(this.writeSeq++, header, [fragment, TYPE_BYTE[type]], header, out);
      return;
    }
    const len = aead.sealedLength(fragment.length);
    const header = Buffer.from([type, 3, 3, len >> 8, len & 0xff]);
    aead.sealParts(this.writeSeq, aad12(this.writeSeq++, type, fragment.length), [fragment], header, out);
  }
}

const TYPE_BYTE: Record<number, Uint8Array> = {
  [ContentType.change_cipher_spec]: Uint8Array.of(ContentType.change_cipher_spec),
  [ContentType.alert]: Uint8Array.of(ContentType.alert),
  [ContentType.handshake]: Uint8Array.of(ContentType.handshake),
  [ContentType.application_data]: Uint8Array.of(ContentType.application_data),
};

function frame(type: number, version: number, parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = Buffer.allocUnsafe(HEADER + len);
  out[0] = type;
  out[1] = version >> 8;
  out[2] = version & 0xff;
  out[3] = len >> 8;
  out[4] = len & 0xff;
  let off = HEADER;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** TLS 1.2 AEAD additional data: seq_num(8) type(1) version(2) length(2) (RFC 5246 6.2.3.3). */
function aad12(seq: number, type: number, length: number): Uint8Array {
  const a = Buffer.allocUnsafe(13);
  a.writeUInt32BE(Math.floor(seq / 0x100000000), 0);
  a.writeUInt32BE(seq >>> 0, 4);
  a[8] = type;
  a[9] = 3;
  a[10] = 3;
  a.writeUInt16BE(length, 11);
  return a;
}

/** Messages accepted up to the protocol's own bound, whatever maxMessage says: the hellos and NewSessionTicket. */
const BOUNDED_BY_PROTOCOL = new Set<number>([HandshakeType.client_hello, HandshakeType.server_hello, HandshakeType.new_session_ticket]);

/**
 * Reassembles handshake messages from handshake-record fragments (RFC 8446 5.1:
 * messages may be split across records and several may share one).
 */
export class HandshakeAssembler {
  /** Received handshake bytes not yet handed out, as they came: joined once per message. */
  private chunks: Buffer[] = [];
  private length = 0;
  /**
   * `maxMessage` caps the messages whose size the protocol leaves open (Certificate above
   * all); the hellos and NewSessionTicket get the protocol's own bound (a legal ClientHello
   * reaches 131,396 bytes) and the fixed-size messages theirs, whichever is smaller.
   */
  constructor(private readonly maxMessage: number) {}

  push(fragment: Uint8Array): void {
    if (fragment.length === 0) throw unexpectedMessage('zero-length handshake fragment');
    // A copy: the record layer reuses what it decrypted into.
    this.chunks.push(Buffer.from(fragment));
    this.length += fragment.length;
  }

  /** True when a partial message is waiting: keys must not change then. */
  get hasPartial(): boolean {
    return this.length > 0;
  }

  /** Next whole message (header included), or null. */
  next(): { type: number; body: Uint8Array; raw: Uint8Array } | null {
    if (this.length < 4) return null;
    const head = this.peek4();
    const type = head[0];
    const len = (head[1] << 16) | (head[2] << 8) | head[3];
    const protocolMax = protocolMaxBody(type);
    const limit = BOUNDED_BY_PROTOCOL.has(type) ? protocolMax : Math.min(this.maxMessage, protocolMax);
    if (len > limit) throw new TlsAlertError(AlertDescription.decode_error, `handshake message of type ${type} and ${len} bytes exceeds the limit of ${limit}`);
    if (this.length < 4 + len) return null;
    // Joined once, when whole: a message that came in many small records costs one copy.
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    const raw = all.subarray(0, 4 + len);
    const rest = all.subarray(4 + len);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return { type, body: raw.subarray(4), raw };
  }

  /** The first four buffered bytes (the caller has checked there are four). */
  private peek4(): Uint8Array {
    const first = this.chunks[0];
    if (first.length >= 4) return first;
    const head = new Uint8Array(4);
    let n = 0;
    for (const c of this.chunks) {
      for (let i = 0; i < c.length && n < 4; i++) head[n++] = c[i];
      if (n === 4) break;
    }
    return head;
  }
}
