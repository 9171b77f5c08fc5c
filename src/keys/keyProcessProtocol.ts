import { encodeCredential, parseCredential } from '../tls/wire/delegatedCredential.js';
import type { DelegatedCredentialRequest } from './delegatedCredentialIssuer.js';
import type { KeyErrorCode, PskMasterSecretRequest, SignPurpose } from './keyOperations.js';
import type { Tls13PskHash } from './tls13PskSchedule.js';
import type { Tls13PskStep } from './tls13PskSteps.js';

/**
 * Wire format between the front and its key process, over a private socketpair that
 * only the two processes hold (stdio fd 3 of the child). Binary and tiny on purpose:
 * JSON over Node's IPC channel costs several times more per operation.
 *
 * Frame: u32 length (of everything after it) | u8 type | u32 id | payload.
 * Parent → child: SIGN, DECRYPT, PSK_MASTER_SECRET, ISSUE_DC, TLS13_PSK, CANCEL. Child → parent: READY (once),
 * START_FAILED (instead of READY), OK, ERROR. The id pairs a result with its request; many requests
 * may be in flight at once.
 */

export const FrameType = {
  sign: 1,
  decrypt: 2,
  cancel: 3,
  pskMasterSecret: 4,
  issueDc: 5,
  tls13Psk: 6,
  ready: 0x10,
  startFailed: 0x11,
  ok: 0x12,
  error: 0x13,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Bytes before the payload: length, type, id. */
export const FRAME_HEADER = 9;
/**
 * Upper bound on one frame. Handshake inputs and RSA ciphertexts are at most a few
 * hundred bytes; anything near this limit means a broken or hostile peer.
 */
export const MAX_FRAME = 64 * 1024;
/** Largest message or ciphertext a request may carry (checked by the child). */
export const MAX_OPERATION_INPUT = 16 * 1024;

const PURPOSES: readonly (SignPurpose | undefined)[] = [
  undefined,
  'tls13-server-certificate-verify',
  'tls13-client-certificate-verify',
  'tls12-server-key-exchange',
  'tls12-client-certificate-verify',
];

export function encodePurpose(p: SignPurpose | undefined): number {
  const i = PURPOSES.indexOf(p);
  return i < 0 ? 0 : i;
}

export function decodePurpose(code: number): SignPurpose | undefined | null {
  return code < PURPOSES.length ? PURPOSES[code] : null;
}

const ERROR_CODES: readonly KeyErrorCode[] = [
  'internal',
  'aborted',
  'timeout',
  'unavailable',
  'refused',
  'unknown-key',
  'unsupported',
  'bad-request',
  'rate-limited',
];

/**
 * ERROR code byte for "unknown PSK identity" (a 'refused' the front must turn into the
 * unknown_psk_identity alert); outside the KeyErrorCode table on purpose.
 */
export const UNKNOWN_PSK_IDENTITY = 0x40;

export function encodeErrorCode(code: KeyErrorCode): number {
  const i = ERROR_CODES.indexOf(code);
  return i < 0 ? 0 : i;
}

export function decodeErrorCode(n: number): KeyErrorCode {
  return ERROR_CODES[n] ?? 'internal';
}

/** Builds one frame: header followed by `parts`. */
export function encodeFrame(type: FrameType, id: number, ...parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const frame = Buffer.allocUnsafe(FRAME_HEADER + len);
  frame.writeUInt32BE(5 + len, 0);
  frame[4] = type;
  frame.writeUInt32BE(id >>> 0, 5);
  let off = FRAME_HEADER;
  for (const p of parts) {
    frame.set(p, off);
    off += p.length;
  }
  return frame;
}

/** SIGN payload: u16 scheme | u8 purpose | message. */
export function encodeSign(id: number, scheme: number, purpose: SignPurpose | undefined, message: Uint8Array): Buffer {
  // One per handshake: written in place rather than joined from parts.
  const frame = Buffer.allocUnsafe(FRAME_HEADER + 3 + message.length);
  frame.writeUInt32BE(5 + 3 + message.length, 0);
  frame[4] = FrameType.sign;
  frame.writeUInt32BE(id >>> 0, 5);
  frame.writeUInt16BE(scheme, FRAME_HEADER);
  frame[FRAME_HEADER + 2] = encodePurpose(purpose);
  frame.set(message, FRAME_HEADER + 3);
  return frame;
}

/** DECRYPT payload: u16 client_version | ciphertext. */
export function encodeDecrypt(id: number, clientVersion: number, ciphertext: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(clientVersion & 0xffff, 0);
  return encodeFrame(FrameType.decrypt, id, head, ciphertext);
}

/** Largest certificate an ISSUE_DC request may carry. */
export const MAX_DC_CERTIFICATE = MAX_OPERATION_INPUT;
/** Largest encoded Credential (an SPKI of a signature key is at most a few hundred bytes). */
export const MAX_DC_CREDENTIAL = 4096;

const DC_SIDES: readonly DelegatedCredentialRequest['side'][] = ['server', 'client'];

/** ISSUE_DC payload: u8 side (1 server, 2 client) | u16 algorithm | u32 certificate length | certificate | encoded Credential. */
export function encodeIssueDc(id: number, req: DelegatedCredentialRequest): Buffer {
  const head = Buffer.allocUnsafe(7);
  head[0] = DC_SIDES.indexOf(req.side) + 1;
  head.writeUInt16BE(req.algorithm, 1);
  head.writeUInt32BE(req.certificate.length, 3);
  return encodeFrame(FrameType.issueDc, id, head, req.certificate, encodeCredential(req.credential));
}

/** Parses an ISSUE_DC payload, bounds-checked; returns a reason instead when it is malformed. */
export function decodeIssueDc(p: Buffer): DelegatedCredentialRequest | { error: string } {
  if (p.length < 7) return { error: 'truncated delegated credential request' };
  const side = DC_SIDES[p[0] - 1];
  if (!side) return { error: 'unknown delegated credential side' };
  const certLen = p.readUInt32BE(3);
  if (certLen === 0 || certLen > MAX_DC_CERTIFICATE || 7 + certLen > p.length) return { error: 'bad certificate length' };
  const credBytes = p.subarray(7 + certLen);
  if (credBytes.length > MAX_DC_CREDENTIAL) return { error: 'credential too long' };
  try {
    return { side, algorithm: p.readUInt16BE(1), certificate: p.subarray(7, 7 + certLen), credential: parseCredential(credBytes) };
  } catch {
    return { error: 'the credential is not an RFC 9345 Credential' };
  }
}

/** Largest PSK identity (RFC 4279: opaque psk_identity<0..2^16-1>). */
export const MAX_PSK_IDENTITY = 0xffff;
/** Largest "other secret" (an ECDHE shared secret: 66 bytes for P-521); more is not TLS. */
export const MAX_PSK_OTHER_SECRET = 512;

const PSK_HASHES = ['sha256', 'sha384'] as const;

/**
 * PSK_MASTER_SECRET payload: u8 flags (bit 0 extended, bit 1 other secret present) | u8 hash
 * (1 sha256, 2 sha384) | u16 identity length | identity | u16 other length | other | seed.
 */
export function encodePskMasterSecret(id: number, req: PskMasterSecretRequest): Buffer {
  const head = Buffer.allocUnsafe(4);
  head[0] = (req.extended ? 1 : 0) | (req.otherSecret ? 2 : 0);
  head[1] = PSK_HASHES.indexOf(req.hash) + 1;
  head.writeUInt16BE(req.identity.length, 2);
  const other = req.otherSecret ?? new Uint8Array(0);
  const otherLen = Buffer.allocUnsafe(2);
  otherLen.writeUInt16BE(other.length, 0);
  return encodeFrame(FrameType.pskMasterSecret, id, head, req.identity, otherLen, other, req.seed);
}

/**
 * Parses a PSK_MASTER_SECRET payload and checks its shape: a known hash, lengths that fit
 * the payload exactly, a seed of the two randoms (64 bytes) or, when extended, a session
 * hash of the suite's hash length. Returns a reason instead when it is not that shape.
 */
export function decodePskMasterSecret(p: Buffer): PskMasterSecretRequest | { error: string } {
  if (p.length < 6) return { error: 'truncated PSK request' };
  const flags = p[0];
  if (flags & ~3) return { error: 'unknown PSK request flags' };
  const hash = PSK_HASHES[p[1] - 1];
  if (!hash) return { error: 'PSK master secret hash must be sha256 or sha384' };
  const idLen = p.readUInt16BE(2);
  if (4 + idLen + 2 > p.length) return { error: 'truncated PSK identity' };
  const identity = p.subarray(4, 4 + idLen);
  const otherLen = p.readUInt16BE(4 + idLen);
  const otherAt = 6 + idLen;
  if (otherAt + otherLen > p.length) return { error: 'truncated PSK other secret' };
  const hasOther = (flags & 2) !== 0;
  if (!hasOther && otherLen !== 0) return { error: 'other secret given without its flag' };
  if (hasOther && (otherLen === 0 || otherLen > MAX_PSK_OTHER_SECRET)) return { error: 'bad ECDHE shared secret length' };
  const seed = p.subarray(otherAt + otherLen);
  const extended = (flags & 1) !== 0;
  const seedLen = extended ? (hash === 'sha256' ? 32 : 48) : 64;
  if (seed.length !== seedLen) return { error: extended ? 'the session hash has the wrong length' : 'the seed must be the two 32-byte randoms' };
  return { identity, otherSecret: hasOther ? p.subarray(otherAt, otherAt + otherLen) : null, hash, extended, seed };
}

/** TLS13_PSK steps, by their number on the wire (index + 1). */
export const TLS13_PSK_STEPS: readonly Tls13PskStep[] = ['binder', 'verify-binder', 'handshake-secrets', 'application-secrets', 'resumption-master-secret'];

/** A TLS 1.3 PSK request as it crosses the channel; `binder` for verify-binder only. */
export interface Tls13PskFrame {
  step: Tls13PskStep;
  identity: Uint8Array;
  hash: Tls13PskHash;
  transcriptHash: Uint8Array;
  dheSecret: Uint8Array | null;
  binder?: Uint8Array;
}

/**
 * TLS13_PSK payload: u8 step | u8 hash (1 sha256, 2 sha384) | u8 flags (bit 0: an (EC)DHE
 * secret follows) | u16 identity length | identity | u8 transcript hash length | transcript
 * hash | u16 (EC)DHE length | (EC)DHE secret | the binder (verify-binder only).
 */
export function encodeTls13Psk(id: number, r: Tls13PskFrame): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = TLS13_PSK_STEPS.indexOf(r.step) + 1;
  head[1] = PSK_HASHES.indexOf(r.hash) + 1;
  head[2] = r.dheSecret ? 1 : 0;
  head.writeUInt16BE(r.identity.length, 3);
  const dhe = r.dheSecret ?? new Uint8Array(0);
  const mid = Buffer.allocUnsafe(3);
  mid[0] = r.transcriptHash.length;
  mid.writeUInt16BE(dhe.length, 1);
  return encodeFrame(FrameType.tls13Psk, id, head, r.identity, mid.subarray(0, 1), r.transcriptHash, mid.subarray(1), dhe, r.binder ?? new Uint8Array(0));
}

/** Parses a TLS13_PSK payload, bounds-checked; a reason instead when it is not that shape (the values are then checked by Tls13PskSteps). */
export function decodeTls13Psk(p: Buffer): Tls13PskFrame | { error: string } {
  if (p.length < 5) return { error: 'truncated TLS 1.3 PSK request' };
  const step = TLS13_PSK_STEPS[p[0] - 1];
  if (!step) return { error: 'unknown TLS 1.3 PSK step' };
  const hash = PSK_HASHES[p[1] - 1];
  if (!hash) return { error: 'TLS 1.3 PSK hash must be sha256 or sha384' };
  if (p[2] & ~1) return { error: 'unknown TLS 1.3 PSK request flags' };
  const idLen = p.readUInt16BE(3);
  let o = 5 + idLen;
  if (o + 1 > p.length) return { error: 'truncated PSK identity' };
  const identity = p.subarray(5, o);
  const thLen = p[o];
  o += 1;
  if (o + thLen + 2 > p.length) return { error: 'truncated transcript hash' };
  const transcriptHash = p.subarray(o, o + thLen);
  o += thLen;
  const dheLen = p.readUInt16BE(o);
  o += 2;
  if (o + dheLen > p.length) return { error: 'truncated (EC)DHE secret' };
  const hasDhe = (p[2] & 1) !== 0;
  if (!hasDhe && dheLen !== 0) return { error: '(EC)DHE secret given without its flag' };
  const dheSecret = hasDhe ? p.subarray(o, o + dheLen) : null;
  o += dheLen;
  const rest = p.subarray(o);
  if (step === 'verify-binder') return { step, identity, hash, transcriptHash, dheSecret, binder: rest };
  if (rest.length > 0) return { error: 'trailing bytes after a TLS 1.3 PSK request' };
  return { step, identity, hash, transcriptHash, dheSecret };
}

/** READY flags: bit 0, the key process is non-dumpable (see keyProcessHardening). */
const READY_NON_DUMPABLE = 0x01;

/** READY payload: u16 scheme count | schemes (u16 each) | u8 flags | SPKI DER (empty for a PSK-only process). */
export function encodeReady(schemes: readonly number[], spki: Uint8Array, opts: { nonDumpable: boolean }): Buffer {
  const head = Buffer.allocUnsafe(2 + 2 * schemes.length + 1);
  head.writeUInt16BE(schemes.length, 0);
  schemes.forEach((s, i) => head.writeUInt16BE(s, 2 + 2 * i));
  head[head.length - 1] = opts.nonDumpable ? READY_NON_DUMPABLE : 0;
  return encodeFrame(FrameType.ready, 0, head, spki);
}

export function decodeReady(payload: Buffer): { schemes: number[]; spki: Buffer; nonDumpable: boolean } | undefined {
  if (payload.length < 3) return undefined;
  const n = payload.readUInt16BE(0);
  const flagsAt = 2 + 2 * n;
  if (payload.length < flagsAt + 1) return undefined;
  const schemes: number[] = [];
  for (let i = 0; i < n; i++) schemes.push(payload.readUInt16BE(2 + 2 * i));
  const flags = payload[flagsAt];
  if ((flags & ~READY_NON_DUMPABLE) !== 0) return undefined;
  return { schemes, spki: Buffer.from(payload.subarray(flagsAt + 1)), nonDumpable: (flags & READY_NON_DUMPABLE) !== 0 };
}

/** ERROR payload: u8 code | UTF-8 message (never key material). */
export function encodeError(id: number, code: KeyErrorCode, message: string): Buffer {
  return encodeFrame(FrameType.error, id, Buffer.of(encodeErrorCode(code)), Buffer.from(message, 'utf8'));
}

export interface Frame {
  type: number;
  id: number;
  /** A view into the receive buffer: copy it if it must outlive the callback. */
  payload: Buffer;
}

/**
 * Reassembles frames from a byte stream. A frame shorter than its header or longer
 * than MAX_FRAME is a protocol violation: `push` throws and the caller drops the channel.
 *
 * Frames wholly inside a chunk are handed out as views of it, without a copy. A frame
 * that straddles chunks is assembled in a buffer of its own size, each byte copied once
 * (re-joining the partial frame on every chunk made a trickle of small reads quadratic),
 * and zeroed once delivered: PSK frames carry secrets.
 */
export class FrameDecoder {
  /** The straddling frame: its first `#have` bytes; sized to the whole frame once its length is in, else 4 bytes. */
  #partial: Buffer | undefined;
  #have = 0;

  push(chunk: Buffer, onFrame: (f: Frame) => void): void {
    let off = this.#partial ? this.#continue(chunk, onFrame) : 0;
    while (chunk.length - off >= 4) {
      const size = 4 + frameLength(chunk.readUInt32BE(off));
      if (chunk.length - off < size) break;
      deliver(chunk, off, size, onFrame);
      off += size;
    }
    if (off < chunk.length) {
      const rest = chunk.length - off;
      // The start of a frame that ends in a later chunk.
      this.#partial = Buffer.allocUnsafe(rest >= 4 ? 4 + frameLength(chunk.readUInt32BE(off)) : 4);
      this.#have = chunk.copy(this.#partial, 0, off);
    }
  }

  /** Adds what `chunk` holds of the straddling frame, delivers it once whole; returns the bytes used. */
  #continue(chunk: Buffer, onFrame: (f: Frame) => void): number {
    let partial = this.#partial as Buffer;
    let off = 0;
    if (partial.length === 4 && this.#have < 4) {
      off = chunk.copy(partial, this.#have, 0, 4 - this.#have);
      this.#have += off;
      if (this.#have < 4) return off;
      const head = partial;
      partial = this.#partial = Buffer.allocUnsafe(4 + frameLength(head.readUInt32BE(0)));
      head.copy(partial);
    }
    const n = chunk.copy(partial, this.#have, off, off + partial.length - this.#have);
    this.#have += n;
    off += n;
    if (this.#have === partial.length) {
      this.#partial = undefined;
      this.#have = 0;
      try {
        deliver(partial, 0, partial.length, onFrame);
      } finally {
        partial.fill(0);
      }
    }
    return off;
  }
}

/** The length field's value, checked: at least the type and id, at most MAX_FRAME. */
function frameLength(len: number): number {
  if (len < 5 || len > MAX_FRAME) throw new Error(`bad frame length ${len}`);
  return len;
}

function deliver(buf: Buffer, off: number, size: number, onFrame: (f: Frame) => void): void {
  onFrame({ type: buf[off + 4], id: buf.readUInt32BE(off + 5), payload: buf.subarray(off + FRAME_HEADER, off + size) });
}

/**
 * Coalesces frames written in one turn of the event loop into one write, so a burst of
 * operations costs one syscall instead of one each. Inside {@link batch} nothing is
 * scheduled: what it sends leaves in one write when it returns.
 */
export class FrameWriter {
  #queue: Buffer[] = [];
  #scheduled = false;
  #batching = false;

  constructor(private readonly write: (b: Buffer) => void) {}

  send(frame: Buffer): void {
    this.#queue.push(frame);
    if (!this.#scheduled && !this.#batching) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /**
   * Runs `fn` and then writes what it sent, at once: for a loop that answers each read
   * in full, where an end-of-turn write would cost a wake-up of its own.
   */
  batch(fn: () => void): void {
    this.#batching = true;
    try {
      fn();
    } finally {
      this.#batching = false;
      this.#writeOut();
    }
  }

  #flush = (): void => {
    this.#scheduled = false;
    this.#writeOut();
  };

  #writeOut(): void {
    const q = this.#queue;
    if (q.length === 0) return;
    this.#queue = [];
    this.write(q.length === 1 ? q[0] : Buffer.concat(q));
  }

  /** Drops anything not yet written (the channel is gone). */
  clear(): void {
    this.#queue = [];
  }
}
