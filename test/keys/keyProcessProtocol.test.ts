import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  FrameDecoder,
  FrameType,
  MAX_FRAME,
  decodeErrorCode,
  decodePurpose,
  decodeReady,
  encodeDecrypt,
  encodeError,
  encodeFrame,
  encodePurpose,
  encodeReady,
  encodeSign,
  type Frame,
} from '../../src/keys/keyProcessProtocol.js';

function collect(chunks: Buffer[]): Frame[] {
  const d = new FrameDecoder();
  const out: Frame[] = [];
  for (const c of chunks) d.push(c, (f) => out.push({ ...f, payload: Buffer.from(f.payload) }));
  return out;
}

describe('key process protocol', () => {
  test('frames survive any split of the stream', () => {
    const msg = randomBytes(130);
    const stream = Buffer.concat([
      encodeSign(7, 0x0403, 'tls13-server-certificate-verify', msg),
      encodeDecrypt(0xfffffffe, 0x0303, randomBytes(256)),
      encodeFrame(FrameType.cancel, 7),
      encodeError(9, 'refused', 'not a TLS handshake signature input'),
    ]);
    const whole = collect([stream]);
    assert.deepEqual(whole.map((f) => [f.type, f.id]), [
      [FrameType.sign, 7],
      [FrameType.decrypt, 0xfffffffe],
      [FrameType.cancel, 7],
      [FrameType.error, 9],
    ]);
    assert.equal(whole[0].payload.readUInt16BE(0), 0x0403);
    assert.equal(decodePurpose(whole[0].payload[2]), 'tls13-server-certificate-verify');
    assert.deepEqual(whole[0].payload.subarray(3), msg);
    assert.equal(decodeErrorCode(whole[3].payload[0]), 'refused');
    for (let cut = 1; cut < stream.length; cut += 7) {
      assert.deepEqual(collect([stream.subarray(0, cut), stream.subarray(cut)]), whole, `split at ${cut}`);
    }
    // One byte at a time.
    assert.deepEqual(collect([...stream].map((b) => Buffer.of(b))), whole);
  });

  test('a largest frame trickling in byte by byte is assembled once, then wiped', () => {
    const big = encodeFrame(FrameType.ok, 3, randomBytes(MAX_FRAME - 5));
    const small = encodeFrame(FrameType.error, 4, Buffer.of(2));
    const stream = Buffer.concat([big, small]);
    const d = new FrameDecoder();
    const seen: { id: number; copy: Buffer; view: Buffer }[] = [];
    // Each chunk a fresh 1-byte buffer: re-joining the partial frame on every one was quadratic.
    for (const b of stream) d.push(Buffer.of(b), (f) => seen.push({ id: f.id, copy: Buffer.from(f.payload), view: f.payload }));
    assert.deepEqual(seen.map((f) => f.id), [3, 4]);
    assert.deepEqual(seen[0].copy, big.subarray(9));
    assert.deepEqual(seen[1].copy, Buffer.of(2));
    // The assembly buffer is zeroed once the frame is handed out (PSK frames carry secrets).
    assert.ok(seen[0].view.every((b) => b === 0));
    // Whole frames inside one chunk are views of it, and the chunk is left alone.
    const chunk = Buffer.concat([small, big.subarray(0, 100)]);
    const copy = Buffer.from(chunk);
    let view: Buffer | undefined;
    d.push(chunk, (f) => (view = f.payload));
    assert.equal(view?.buffer, chunk.buffer);
    assert.deepEqual(chunk, copy);
  });

  test('a frame length that is too small or too large is a protocol error', () => {
    const tooBig = Buffer.alloc(9);
    tooBig.writeUInt32BE(MAX_FRAME + 1, 0);
    assert.throws(() => collect([tooBig]), /bad frame length/);
    const tooSmall = Buffer.alloc(9);
    tooSmall.writeUInt32BE(4, 0);
    assert.throws(() => collect([tooSmall]), /bad frame length/);
    // Also when the length field itself is split across reads.
    assert.throws(() => collect([tooBig.subarray(0, 2), tooBig.subarray(2)]), /bad frame length/);
    // An incomplete frame just waits for more.
    assert.deepEqual(collect([encodeFrame(FrameType.ok, 1, Buffer.alloc(10)).subarray(0, 12)]), []);
  });

  test('READY carries schemes and the SPKI; truncated READY is rejected', () => {
    const spki = randomBytes(91);
    const [f] = collect([encodeReady([0x0403, 0x0807], spki, { nonDumpable: true })]);
    assert.deepEqual(decodeReady(f.payload), { schemes: [0x0403, 0x0807], spki, nonDumpable: true });
    const [g] = collect([encodeReady([], Buffer.alloc(0), { nonDumpable: false })]);
    assert.deepEqual(decodeReady(g.payload), { schemes: [], spki: Buffer.alloc(0), nonDumpable: false });
    assert.equal(decodeReady(Buffer.alloc(0)), undefined);
    assert.equal(decodeReady(Buffer.of(0, 5, 4, 3)), undefined);
    // Unknown flags are refused, not ignored.
    assert.equal(decodeReady(Buffer.of(0, 0, 0x80)), undefined);
  });

  test('purpose and error codes round-trip; unknown values are safe', () => {
    for (const p of [undefined, 'tls13-server-certificate-verify', 'tls13-client-certificate-verify', 'tls12-server-key-exchange'] as const) {
      assert.equal(decodePurpose(encodePurpose(p)), p);
    }
    assert.equal(decodePurpose(200), null);
    assert.equal(decodeErrorCode(200), 'internal');
  });
});
