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

  test('a frame length that is too small or too large is a protocol error', () => {
    const tooBig = Buffer.alloc(9);
    tooBig.writeUInt32BE(MAX_FRAME + 1, 0);
    assert.throws(() => collect([tooBig]), /bad frame length/);
    const tooSmall = Buffer.alloc(9);
    tooSmall.writeUInt32BE(4, 0);
    assert.throws(() => collect([tooSmall]), /bad frame length/);
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
