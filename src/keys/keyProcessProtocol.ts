import type { KeyErrorCode, SignPurpose } from './keyOperations.js';

/**
 * Wire format between the front and its key process, over a private socketpair that
 * only the two processes hold (stdio fd 3 of the child). Binary and tiny on purpose:
 * JSON over Node's IPC channel costs several times more per operation.
 *
 * Frame: u32 length (of everything after it) | u8 type | u32 id | payload.
 * Parent → child: SIGN, DECRYPT, CANCEL. Child → parent: READY (once), START_FAILED
 * (instead of READY), OK, ERROR. The id pairs a result with its request; many requests
 * may be in flight at once.
 */

export const FrameType = {
  sign: 1,
  decrypt: 2,
  cancel: 3,
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
  const head = Buffer.allocUnsafe(3);
  head.writeUInt16BE(scheme, 0);
  head[2] = encodePurpose(purpose);
  return encodeFrame(FrameType.sign, id, head, message);
}

/** DECRYPT payload: u16 client_version | ciphertext. */
export function encodeDecrypt(id: number, clientVersion: number, ciphertext: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(clientVersion & 0xffff, 0);
  return encodeFrame(FrameType.decrypt, id, head, ciphertext);
}

/** READY payload: u16 scheme count | schemes (u16 each) | SPKI DER. */
export function encodeReady(schemes: readonly number[], spki: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(2 + 2 * schemes.length);
  head.writeUInt16BE(schemes.length, 0);
  schemes.forEach((s, i) => head.writeUInt16BE(s, 2 + 2 * i));
  return encodeFrame(FrameType.ready, 0, head, spki);
}

export function decodeReady(payload: Buffer): { schemes: number[]; spki: Buffer } | undefined {
  if (payload.length < 2) return undefined;
  const n = payload.readUInt16BE(0);
  if (payload.length < 2 + 2 * n + 1) return undefined;
  const schemes: number[] = [];
  for (let i = 0; i < n; i++) schemes.push(payload.readUInt16BE(2 + 2 * i));
  return { schemes, spki: Buffer.from(payload.subarray(2 + 2 * n)) };
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
 */
export class FrameDecoder {
  #pending: Buffer | undefined;

  push(chunk: Buffer, onFrame: (f: Frame) => void): void {
    let buf = chunk;
    if (this.#pending) {
      buf = Buffer.concat([this.#pending, chunk]);
      this.#pending = undefined;
    }
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len < 5 || len > MAX_FRAME) throw new Error(`bad frame length ${len}`);
      if (buf.length - off < 4 + len) break;
      onFrame({ type: buf[off + 4], id: buf.readUInt32BE(off + 5), payload: buf.subarray(off + FRAME_HEADER, off + 4 + len) });
      off += 4 + len;
    }
    if (off < buf.length) this.#pending = Buffer.from(buf.subarray(off));
  }
}

/**
 * Coalesces frames written in one turn of the event loop into one write, so a burst of
 * operations costs one syscall instead of one each.
 */
export class FrameWriter {
  #queue: Buffer[] = [];
  #scheduled = false;

  constructor(private readonly write: (b: Buffer) => void) {}

  send(frame: Buffer): void {
    this.#queue.push(frame);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  #flush = (): void => {
    this.#scheduled = false;
    const q = this.#queue;
    if (q.length === 0) return;
    this.#queue = [];
    this.write(q.length === 1 ? q[0] : Buffer.concat(q));
  };

  /** Drops anything not yet written (the channel is gone). */
  clear(): void {
    this.#queue = [];
  }
}
