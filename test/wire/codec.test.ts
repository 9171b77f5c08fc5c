// The codec every parser sits on: a read past the end, a length prefix that points past
// the end, and trailing bytes are all decode_error; Writer blocks are back-patched and
// refuse lengths that do not fit their prefix.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertDescription } from '../../src/tls/wire/alerts.js';
import { TlsAlertError } from '../../src/tls/wire/errors.js';
import { Reader } from '../../src/tls/wire/reader.js';
import { Writer } from '../../src/tls/wire/writer.js';

function bytes(...b: number[]): Uint8Array {
  return Uint8Array.from(b);
}

/** Asserts `fn` throws a decode_error TlsAlertError (and returns it for further checks). */
function assertDecodeError(fn: () => unknown, message?: RegExp): TlsAlertError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TlsAlertError, `expected TlsAlertError, got ${String(caught)}`);
  assert.equal(caught.alert, AlertDescription.decode_error);
  assert.equal(caught.name, 'TlsAlertError');
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('Reader: integers', () => {
  it('reads big-endian u8, u16, u24, u32 and tracks offset/remaining', () => {
    const r = new Reader(bytes(0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xff, 0xfe, 0xfd, 0xfc));
    assert.equal(r.remaining, 10);
    assert.equal(r.u8(), 0x01);
    assert.equal(r.u16(), 0x0203);
    assert.equal(r.offset, 3);
    assert.equal(r.u24(), 0x040506);
    assert.equal(r.u32(), 0xfffefdfc, 'u32 stays unsigned above 2^31');
    assert.equal(r.remaining, 0);
    assert.equal(r.atEnd(), true);
    r.end();
  });

  it('every integer read past the end throws decode_error and does not advance', () => {
    const cases: Array<[number, (r: Reader) => unknown]> = [
      [0, (r) => r.u8()],
      [1, (r) => r.u16()],
      [2, (r) => r.u24()],
      [3, (r) => r.u32()],
    ];
    for (const [len, read] of cases) {
      const r = new Reader(new Uint8Array(len), 'TestMessage');
      assertDecodeError(() => read(r), /decode_error: TestMessage truncated/);
      assert.equal(r.offset, 0, 'a failed read consumes nothing');
    }
  });

  it('the empty input is at its end and every read fails', () => {
    const r = new Reader(new Uint8Array(0));
    assert.equal(r.atEnd(), true);
    r.end();
    assert.equal(r.rest().length, 0);
    assertDecodeError(() => r.bytes(1));
    assertDecodeError(() => r.vec8());
  });
});

describe('Reader: bytes and vectors', () => {
  it('bytes(n) returns a view and bounds-checks n', () => {
    const input = bytes(1, 2, 3, 4);
    const r = new Reader(input);
    const b = r.bytes(3);
    assert.deepEqual([...b], [1, 2, 3]);
    assert.equal(b.buffer, input.buffer, 'a view, not a copy');
    assertDecodeError(() => r.bytes(2));
    assert.deepEqual([...r.bytes(1)], [4]);
    assert.equal(r.bytes(0).length, 0);
  });

  it('rest() takes everything left', () => {
    const r = new Reader(bytes(9, 8, 7));
    r.u8();
    assert.deepEqual([...r.rest()], [8, 7]);
    assert.equal(r.atEnd(), true);
  });

  it('vec8/vec16/vec24 read length-prefixed data', () => {
    const r = new Reader(bytes(2, 0xaa, 0xbb, 0, 1, 0xcc, 0, 0, 3, 1, 2, 3));
    assert.deepEqual([...r.vec8()], [0xaa, 0xbb]);
    assert.deepEqual([...r.vec16()], [0xcc]);
    assert.deepEqual([...r.vec24()], [1, 2, 3]);
    r.end();
  });

  it('a length prefix pointing past the end is decode_error', () => {
    assertDecodeError(() => new Reader(bytes(3, 1, 2)).vec8());
    assertDecodeError(() => new Reader(bytes(0, 3, 1, 2)).vec16());
    assertDecodeError(() => new Reader(bytes(0, 0, 3, 1, 2)).vec24());
    assertDecodeError(() => new Reader(bytes(0xff, 0xff)).vec16(), /truncated/);
    assertDecodeError(() => new Reader(bytes(0xff, 0xff, 0xff)).vec24(), /truncated/);
  });

  it('a truncated length prefix is decode_error', () => {
    assertDecodeError(() => new Reader(bytes()).vec8());
    assertDecodeError(() => new Reader(bytes(0)).vec16());
    assertDecodeError(() => new Reader(bytes(0, 0)).vec24());
  });

  it('a vector shorter than its minimum is decode_error', () => {
    assertDecodeError(() => new Reader(bytes(0)).vec8(1), /shorter than 1/);
    assertDecodeError(() => new Reader(bytes(0, 1, 9)).vec16(2), /shorter than 2/);
    assertDecodeError(() => new Reader(bytes(0, 0, 0)).vec24(1), /shorter than 1/);
    assert.deepEqual([...new Reader(bytes(1, 7)).vec8(1)], [7]);
  });

  it('sub-readers are confined to their block and carry their own name', () => {
    const r = new Reader(bytes(0, 2, 0xde, 0xad, 0x55), 'Outer');
    const sub = r.sub16('Inner');
    assert.equal(sub.u16(), 0xdead);
    assertDecodeError(() => sub.u8(), /Inner truncated/);
    assert.equal(r.u8(), 0x55, 'the outer reader continues after the block');
    r.end();

    const s8 = new Reader(bytes(1, 0x42, 0x43)).sub8();
    assert.equal(s8.u8(), 0x42);
    assert.equal(s8.atEnd(), true);
    const s24 = new Reader(bytes(0, 0, 1, 0x44)).sub24();
    assert.equal(s24.u8(), 0x44);
    assertDecodeError(() => new Reader(bytes(0, 5, 1)).sub16());
  });

  it('u16List reads a u16 vector and rejects odd lengths, overruns and short lists', () => {
    assert.deepEqual(new Reader(bytes(0, 4, 0x13, 0x01, 0x13, 0x02)).u16List(), [0x1301, 0x1302]);
    assert.deepEqual(new Reader(bytes(0, 0)).u16List(), []);
    assertDecodeError(() => new Reader(bytes(0, 3, 0x13, 0x01, 0x13)).u16List(), /odd-length/);
    assertDecodeError(() => new Reader(bytes(0, 4, 0x13, 0x01)).u16List(), /truncated/);
    assertDecodeError(() => new Reader(bytes(0, 0)).u16List(1), /shorter than 1/);
  });

  it('end() detects trailing bytes', () => {
    const r = new Reader(bytes(1, 2, 3), 'ServerHello');
    r.u8();
    assertDecodeError(() => r.end(), /ServerHello has 2 trailing bytes/);
    r.u16();
    r.end();
  });

  it('a reader over a subarray cannot see the bytes around it', () => {
    const backing = bytes(0xff, 0, 1, 0xee, 0xff);
    const r = new Reader(backing.subarray(1, 4));
    assert.deepEqual([...r.vec16()], [0xee]);
    assertDecodeError(() => r.u8());
  });

  it('random garbage never escapes as anything but TlsAlertError', () => {
    // Deterministic pseudo-random inputs through a typical parse shape.
    let seed = 0x1234567;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    for (let i = 0; i < 500; i++) {
      const input = Uint8Array.from({ length: next() % 24 }, () => next() & 0xff);
      try {
        const r = new Reader(input);
        r.u16();
        r.vec8();
        const ext = r.sub16();
        while (!ext.atEnd()) {
          ext.u16();
          ext.vec16();
        }
        r.u16List();
        r.end();
      } catch (e) {
        assert.ok(e instanceof TlsAlertError, `unexpected ${String(e)}`);
        assert.equal(e.alert, AlertDescription.decode_error);
      }
    }
  });
});

describe('Writer', () => {
  it('writes big-endian integers and raw bytes, growing as needed', () => {
    const w = new Writer(1);
    w.u8(0x1ff).u16(0x0203).u24(0x040506).u32(0xfffefdfc).bytes(bytes(7, 8));
    assert.equal(w.length, 12);
    assert.deepEqual([...w.finish()], [0xff, 2, 3, 4, 5, 6, 0xff, 0xfe, 0xfd, 0xfc, 7, 8]);
  });

  it('vec8/vec16/vec24 prefix their lengths', () => {
    const w = new Writer();
    w.vec8(bytes(1)).vec16(bytes(2, 3)).vec24(bytes());
    assert.deepEqual([...w.finish()], [1, 1, 0, 2, 2, 3, 0, 0, 0]);
  });

  it('blocks are back-patched, also when nested and when the buffer grows inside them', () => {
    const w = new Writer(2);
    w.block(2, (outer) => {
      outer.u8(0xaa);
      outer.block(1, (inner) => inner.bytes(bytes(0, 0, 0)));
      outer.block(3, (inner) => inner.bytes(new Uint8Array(1000).fill(0x5a)));
    });
    const out = w.finish();
    assert.equal(out.length, 2 + 1 + 1 + 3 + 3 + 1000);
    assert.equal((out[0] << 8) | out[1], out.length - 2);
    assert.equal(out[2], 0xaa);
    assert.equal(out[3], 3);
    assert.equal((out[7] << 16) | (out[8] << 8) | out[9], 1000);
    assert.equal(out[10], 0x5a);
  });

  it('an empty block is a zero length', () => {
    const w = new Writer();
    w.block(2, () => {});
    assert.deepEqual([...w.finish()], [0, 0]);
  });

  it('rejects a block that overflows its length prefix', () => {
    assert.throws(() => new Writer().vec8(new Uint8Array(256)), RangeError);
    assert.throws(() => new Writer().block(1, (w) => w.bytes(new Uint8Array(256))), /256 bytes does not fit a 1-byte length/);
    assert.throws(() => new Writer().vec16(new Uint8Array(65536)), /does not fit a 2-byte length/);
    // The largest lengths that do fit are fine.
    assert.equal(new Writer().vec8(new Uint8Array(255)).length, 256);
    assert.equal(new Writer().vec16(new Uint8Array(65535)).length, 65537);
  });

  it('finish() returns a copy', () => {
    const w = new Writer();
    w.u8(1);
    const a = w.finish();
    w.u8(2);
    assert.deepEqual([...a], [1]);
    assert.deepEqual([...w.finish()], [1, 2]);
  });

  it('growing wipes the outgrown bytes (pooled memory), never what finish() handed out', () => {
    const w = new Writer(4);
    w.bytes(Uint8Array.of(9, 9, 9, 9));
    const outgrown = (w as unknown as { buf: Uint8Array }).buf;
    w.u8(7);
    assert.deepEqual([...outgrown], [0, 0, 0, 0]);
    assert.deepEqual([...w.finish()], [9, 9, 9, 9, 7]);
  });

  it('round-trips through Reader', () => {
    const w = new Writer();
    w.u16(0x0303)
      .vec8(bytes(1, 2, 3))
      .block(2, (ext) => {
        ext.u16(0x002b).vec16(bytes(2, 3, 4));
        ext.u16(0x000a).block(2, (l) => l.u16(0x001d).u16(0x0017));
      })
      .vec24(bytes(9));
    const r = new Reader(w.finish());
    assert.equal(r.u16(), 0x0303);
    assert.deepEqual([...r.vec8()], [1, 2, 3]);
    const ext = r.sub16();
    assert.equal(ext.u16(), 0x002b);
    assert.deepEqual([...ext.vec16()], [2, 3, 4]);
    assert.equal(ext.u16(), 0x000a);
    assert.deepEqual(ext.u16List(), [0x001d, 0x0017]);
    ext.end();
    assert.deepEqual([...r.vec24()], [9]);
    r.end();
  });
});
