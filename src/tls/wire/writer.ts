/**
 * `n` bytes for a writer to fill, from Node's shared Buffer pool when small: a handshake
 * encodes a dozen messages and extensions, and a typed array of its own for each (malloc,
 * zero-fill, an ArrayBuffer for the GC to sweep) cost more than writing them. A plain
 * Uint8Array view, so callers see the type they always did. What finish() returns is a view
 * of that shared memory: an encoding an application keeps (a client session) is copied
 * out, and one holding a secret is wiped by its caller.
 */
function allocate(n: number): Uint8Array {
  const b = Buffer.allocUnsafe(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/**
 * Growable byte writer with length-prefixed blocks that are back-patched on close.
 */
export class Writer {
  private buf: Uint8Array;
  private pos = 0;
  /** Whether `buf` is what finish() returned. */
  private handedOut = false;

  constructor(initial = 256) {
    this.buf = allocate(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, 64);
    while (size < this.pos + n) size *= 2;
    const next = allocate(size);
    next.set(this.buf.subarray(0, this.pos));
    // The outgrown bytes stay in the shared pool: wipe them, they may hold a secret (a
    // session state); not those finish() handed out, which are the caller's.
    if (!this.handedOut) this.buf.fill(0, 0, this.pos);
    this.handedOut = false;
    this.buf = next;
  }

  get length(): number {
    return this.pos;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u24(v: number): this {
    this.ensure(3);
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf[this.pos++] = (v >>> 24) & 0xff;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Writes a length-prefixed block: `size` is 1, 2 or 3 bytes of length. */
  block(size: 1 | 2 | 3, body: (w: this) => void): this {
    this.ensure(size);
    const start = this.pos;
    this.pos += size;
    body(this);
    const len = this.pos - start - size;
    if (len >= 1 << (8 * size)) throw new RangeError(`block of ${len} bytes does not fit a ${size}-byte length`);
    for (let i = size - 1, v = len; i >= 0; i--, v >>>= 8) this.buf[start + i] = v & 0xff;
    return this;
  }

  vec8(b: Uint8Array): this {
    return this.block(1, (w) => w.bytes(b));
  }

  vec16(b: Uint8Array): this {
    return this.block(2, (w) => w.bytes(b));
  }

  vec24(b: Uint8Array): this {
    return this.block(3, (w) => w.bytes(b));
  }

  /**
   * The written bytes, handed over without a copy: the writer lets go of them, and a write
   * after this one continues in a new buffer, so what was returned never changes.
   */
  finish(): Uint8Array {
    const out = this.buf.subarray(0, this.pos);
    // Full: the next write (if any) grows into a new buffer, copying these bytes.
    this.buf = out;
    this.handedOut = true;
    return out;
  }
}
