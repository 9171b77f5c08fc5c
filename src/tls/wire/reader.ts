import { decodeError } from './errors.js';

/**
 * Bounds-checked reader over a byte slice. Every read past the end, and every
 * length prefix that points past it, throws a decode_error TlsAlertError.
 * Slices returned share memory with the input (no copies on the hot path).
 */
export class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array, private readonly what = 'message') {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  atEnd(): boolean {
    return this.pos === this.buf.length;
  }

  private need(n: number): void {
    if (n > this.buf.length - this.pos) throw decodeError(`${this.what} truncated`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u16(): number {
    this.need(2);
    const v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const b = this.buf;
    const v = (b[this.pos] << 16) | (b[this.pos + 1] << 8) | b[this.pos + 2];
    this.pos += 3;
    return v;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const v = b[this.pos] * 0x1000000 + ((b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3]);
    this.pos += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** opaque<min..2^8-1> */
  vec8(min = 0): Uint8Array {
    const n = this.u8();
    if (n < min) throw decodeError(`${this.what}: vector shorter than ${min}`);
    return this.bytes(n);
  }

  /** opaque<min..2^16-1> */
  vec16(min = 0): Uint8Array {
    const n = this.u16();
    if (n < min) throw decodeError(`${this.what}: vector shorter than ${min}`);
    return this.bytes(n);
  }

  /** opaque<min..2^24-1> */
  vec24(min = 0): Uint8Array {
    const n = this.u24();
    if (n < min) throw decodeError(`${this.what}: vector shorter than ${min}`);
    return this.bytes(n);
  }

  /** A sub-reader over a u16-length-prefixed block. */
  sub16(what = this.what): Reader {
    return new Reader(this.vec16(), what);
  }

  sub8(what = this.what): Reader {
    return new Reader(this.vec8(), what);
  }

  sub24(what = this.what): Reader {
    return new Reader(this.vec24(), what);
  }

  /** A list of u16 values in a u16-length-prefixed vector. */
  u16List(min = 0): number[] {
    const r = this.sub16();
    if (r.remaining % 2 !== 0) throw decodeError(`${this.what}: odd-length u16 list`);
    const out: number[] = [];
    while (!r.atEnd()) out.push(r.u16());
    if (out.length < min) throw decodeError(`${this.what}: list shorter than ${min}`);
    return out;
  }

  /** Trailing bytes after a structure are an error, as in rustls. */
  end(): void {
    if (this.pos !== this.buf.length) throw decodeError(`${this.what} has ${this.remaining} trailing bytes`);
  }
}
